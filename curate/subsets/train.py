"""Training and evaluation of neural subset selectors.

Loss: binary cross-entropy between ψ and S* on the members of S* plus an equal number of
sampled non-members (the rest of V is masked out), as in EquiVSet's objective. Adam;
early stopping on the validation mean Jaccard coefficient (MJC) with ``patience`` epochs; the
best epoch's weights are kept. Inference: the top-|S*| items by ψ when the size is given
(``k="oracle"``), or ψ > 0.5 (at least one item).
MJC = mean over ground sets of |Ŝ ∩ S*| / |Ŝ ∪ S*|.
"""

from __future__ import annotations

import copy
import time

import numpy as np
import torch

from curate.checks import check_int, check_memory, check_number, check_seed
from curate.models import init_linear_layers
from curate.progress import bar
from curate.subsets.data import SubsetData
from curate.subsets.models import SetFunction, make_set_model


def predict(model: SetFunction, feats: np.ndarray, sizes: np.ndarray | None, *,
            seed: int = 0, batch: int = 256) -> np.ndarray:
    """(B, n) 0/1 predictions: top-k by ψ with k = ``sizes``, or ψ > 0.5 if sizes is None."""
    check_int("", "batch", batch)
    model.eval()
    gen = torch.Generator().manual_seed(check_seed(seed))
    out = []
    with torch.no_grad():
        for s in range(0, len(feats), batch):
            psi = model(torch.as_tensor(feats[s:s + batch]), generator=gen).numpy()
            if sizes is not None:
                out.append(top_k_mask(psi, np.asarray(sizes[s:s + batch])))
            else:  # ψ > 0.5, and at least the best item
                pred = (psi > 0.5).astype(psi.dtype)
                pred[np.arange(len(psi)), psi.argmax(1)] = 1
                out.append(pred)
    return np.concatenate(out)


def top_k_mask(scores: np.ndarray, k: np.ndarray) -> np.ndarray:
    """(B, n) 0/1: row b's ``k[b]`` highest scores (ties broken by position), vectorised."""
    order = np.argsort(-scores, axis=1, kind="stable")
    mask = np.zeros(scores.shape, dtype=np.float32)
    np.put_along_axis(mask, order, (np.arange(scores.shape[1])[None, :]
                                    < np.asarray(k)[:, None]).astype(np.float32), axis=1)
    return mask


def mean_jaccard(pred: np.ndarray, target: np.ndarray) -> float:
    inter = (pred * target).sum(1)
    union = np.clip(pred + target, 0, 1).sum(1)
    return float(np.mean(inter / np.maximum(union, 1)))


def random_mjc(target: np.ndarray, seed: int) -> float:
    """Random baseline: |S*| items drawn uniformly from each ground set."""
    rng = np.random.default_rng(check_seed(seed))
    return mean_jaccard(top_k_mask(rng.random(target.shape), target.sum(1)), target)


MAX_HIDDEN = 4096  # the set function's width: its ρ layers are hidden × hidden


def check_set_training(*, epochs: int, batch_size: int, lr: float, hidden: int, patience: int,
                       seed: int, ground_set: int = 30, samples: int = 5) -> int:
    """Validate the training parameters of a set function; return the seed as an int.
    The memory of one batch (~8 float32 tensors of batch × samples × items × hidden) is
    checked with ``check_memory``."""
    seed = check_seed(seed)
    check_int("", "epochs", epochs)
    check_int("", "batch_size", batch_size)
    check_int("", "hidden", hidden, 1, MAX_HIDDEN)
    check_int("", "patience", patience)
    check_number("", "lr", lr, 0.0, low_open=True)
    check_memory(f"subsets: batch_size={batch_size}, hidden={hidden}",
                 32.0 * batch_size * samples * ground_set * hidden + 48.0 * hidden * hidden,
                 "use a smaller batch_size or hidden")
    return seed


def train_set_model(kind: str, train: SubsetData, val: SubsetData, *, epochs: int = 30,
                    batch_size: int = 64, lr: float = 1e-3, hidden: int = 128,
                    patience: int = 5, seed: int = 0, progress: bool = False):
    """Train a set function; parameters are checked first (``check_set_training``)."""
    seed = check_set_training(epochs=epochs, batch_size=batch_size, lr=lr, hidden=hidden,
                              patience=patience, seed=seed, ground_set=train.targets.shape[-1])
    gen = torch.Generator().manual_seed(seed)
    model = init_linear_layers(make_set_model(kind, train.features.shape[-1], hidden), gen)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    rng = np.random.default_rng(seed)
    X, Y = torch.as_tensor(train.features), torch.as_tensor(train.targets)
    best, best_state, stale, history = -1.0, None, 0, []
    t0 = time.perf_counter()
    with bar(f"training {kind}", total=epochs, enabled=progress) as b:
        for _ in range(epochs):
            model.train()
            order = torch.as_tensor(rng.permutation(len(Y)))
            for s in range(0, len(Y), batch_size):
                idx = order[s:s + batch_size]
                x, y = X[idx], Y[idx]
                # members + as many sampled non-members
                noise = torch.rand(y.shape, generator=gen) * (1 - y)
                k = y.sum(1, keepdim=True)
                thresh = torch.sort(noise, dim=1, descending=True).values.gather(
                    1, (k.long() - 1).clamp(min=0))
                mask = y + ((noise >= thresh) & (noise > 0)).float()
                psi = model(x, generator=gen).clamp(1e-6, 1 - 1e-6)
                bce = -(y * torch.log(psi) + (1 - y) * torch.log(1 - psi))
                loss = (bce * mask).sum() / mask.sum()
                opt.zero_grad()
                loss.backward()
                opt.step()
            score = mean_jaccard(predict(model, val.features, val.targets.sum(1), seed=seed),
                                 val.targets)
            history.append(score)
            if score > best:
                best, best_state, stale = score, copy.deepcopy(model.state_dict()), 0
            else:
                stale += 1
            b.advance()
            if stale >= patience:
                break
    model.load_state_dict(best_state)
    return model, {"val_mjc": best, "epochs_run": len(history), "history": history,
                   "train_time_s": time.perf_counter() - t0}
