"""Check that the diffusion retriever's torch code runs on CUDA (run on a GPU machine).

Curate never needs a GPU; ``train_diffusion(..., device="cuda")`` and the sampler are the torch
paths a user with one would take. This trains the same small model on CPU and on CUDA from
the same seed (a toy conditional-set task), checks both learn (validation loss falls by half)
and that the CUDA model's samples match the task, and times sampling of a 64-query batch at
the WordNet shapes (k = 10, d = 384) on both devices. Prints one JSON object.

Where the store's own dependencies (faiss, duckdb, polars) are not installed — a bare GPU
image — they are replaced by empty modules: the code under test does not touch them.
"""

from __future__ import annotations

import importlib
import json
import sys
import time
import types
from pathlib import Path
from unittest import mock

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
for name in ("faiss", "duckdb", "polars"):
    try:
        importlib.import_module(name)
    except ImportError:
        sys.modules[name] = mock.MagicMock(spec=types.ModuleType(name))
if isinstance(sys.modules.get("faiss"), mock.MagicMock):       # the one faiss call on the path
    def _normalize_l2(x):
        x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    sys.modules["faiss"].normalize_L2 = _normalize_l2


from retrieval.diffusion import DiffusionConfig, SetDiffusion, train_diffusion  # noqa: E402


def toy(m=400, d=8, k=3, seed=0):
    rng = np.random.default_rng(seed)
    Q = rng.normal(size=(m, d))
    Q /= np.linalg.norm(Q, axis=1, keepdims=True)
    offsets = 0.6 * rng.normal(size=(k, d))
    T = np.stack([q + offsets[rng.permutation(k)] for q in Q])
    T /= np.linalg.norm(T, axis=2, keepdims=True)
    return Q.astype(np.float32), T.astype(np.float32), offsets


def main() -> None:
    out = {"torch": torch.__version__, "cuda": torch.cuda.is_available()}
    if not out["cuda"]:
        print(json.dumps(out))
        return
    out["gpu"] = torch.cuda.get_device_name(0)
    Q, T, offsets = toy()
    for dev in ("cpu", "cuda"):
        model, hist = train_diffusion(Q, T, epochs=25, batch=64, lr=2e-3, width=32, layers=2,
                                      seed=0, device=dev)
        out[f"{dev}_val_loss_first_last"] = [hist["val_loss"][0], hist["val_loss"][-1]]
        out[f"{dev}_learns"] = hist["val_loss"][-1] < 0.5 * hist["val_loss"][0]
        if dev == "cuda":
            Qt = torch.as_tensor(Q[:40]).cuda()
            y = model.sample(Qt, steps=8, generator=torch.Generator().manual_seed(0)).cpu()
            S = Q[:40, None] + y.numpy()
            S /= np.linalg.norm(S, axis=2, keepdims=True)
            truth = Q[:40, None] + offsets[None]
            truth /= np.linalg.norm(truth, axis=2, keepdims=True)
            out["cuda_sample_cos_to_truth"] = float(
                np.einsum("bid,bjd->bij", S, truth).max(2).mean())
    cfg = DiffusionConfig(dim=384, k=10, sigma_data=0.05)
    for dev in ("cpu", "cuda"):
        model = SetDiffusion(cfg, torch.Generator().manual_seed(0)).to(dev).eval()
        q = torch.randn(64, 384, generator=torch.Generator().manual_seed(1)).to(dev)
        model.sample(q, steps=6, generator=torch.Generator().manual_seed(0))   # warm-up
        times = []
        for _ in range(10):
            if dev == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            model.sample(q, steps=6, generator=torch.Generator().manual_seed(0))
            if dev == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
        out[f"{dev}_sample_ms_batch64_median"] = 1e3 * float(np.median(times))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
