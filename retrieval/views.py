"""Query views: a query as V = 3 unit vectors the fan-out methods can mix.

A query text "head: body" (e.g. WordNet's "city, metropolis, urban center: a large and
densely populated urban area") gives the views (full text, head, body), each embedded with
MiniLM; a text without a colon, or a bare vector, gives three copies of the one vector, and the
view-mixing part of a fan-out then does nothing. Shapes: (B, V, d), view 0 is the full query.

Why: on the WordNet benchmark the sum of the full and first-lemma embeddings recalls 0.278 of the
hyponyms at k = 10 against 0.234 for the full text alone (benchmarks/fanout_ceiling.py). The
teacher's policy learns per-slot mixing weights over the views by RL instead of hard-coding
that sum (``retrieval.teacher``), and the diffusion retriever attends to all three.
"""

from __future__ import annotations

import numpy as np

from retrieval.index import normalise

VIEWS = ("full", "head", "body")


def split_query(text: str) -> tuple[str, str]:
    """(head, body) at the first colon; (text, text) when there is none or a side is empty."""
    head, sep, body = text.partition(":")
    if not sep or not head.strip() or not body.strip():
        return text, text
    return head.strip(), body.strip()


def query_texts(text: str, views: bool = True) -> tuple[str, ...]:
    """The strings to embed for one query: (full, head, body), or (full,) without views."""
    return (text, *split_query(text)) if views else (text,)


def embed_groups(groups: list[tuple[str, ...]], progress: bool = False,
                 backend: str | None = None) -> list[np.ndarray]:
    """MiniLM vectors of groups of strings, one (len(group), 384) float32 array per group, in
    one encoder call (each distinct string embedded once; the service's encoder batches).
    ``backend``: the encoder backend (``None``: the default)."""
    from core.encoders import DEFAULT_BACKEND, embed_texts

    unique = sorted({s for g in groups for s in g})
    E = embed_texts(unique, progress=progress, backend=backend or DEFAULT_BACKEND)
    at = {s: i for i, s in enumerate(unique)}
    return [E[[at[s] for s in g]] for g in groups]


def as_views(queries: np.ndarray, views: int | None = None) -> np.ndarray:
    """(B, d) vectors → (B, V, d) copies (V = ``views``, default ``len(VIEWS)``); (B, V, d)
    views pass through (normalised) — a single view (B, 1, d) is repeated to ``views``.
    Raises ``InvalidParameterError`` when the views given are not the number asked for."""
    from core.errors import InvalidParameterError

    Q = np.asarray(queries, dtype=np.float32)
    if Q.ndim == 1:
        Q = Q[None]
    if Q.ndim == 2:
        Q = Q[:, None, :]
    B, V, d = Q.shape
    out = normalise(Q.reshape(B * V, d)).reshape(B, V, d)
    want = len(VIEWS) if views is None and V == 1 else views
    if want is None or want == V:
        return out
    if V == 1:
        return np.repeat(out, want, axis=1)
    raise InvalidParameterError(f"the queries have {V} views; the model takes {want}")
