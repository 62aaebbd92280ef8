"""The duplicate groups a ``dedup`` selection recorded, with their rows' texts.

``dedup`` writes its groups into the selection's provenance (``info["groups"]``: lists of
``row_idx``, the kept row first). ``duplicate_groups`` joins the first few with the
dataset's samples so a person can judge them (``curate show`` prints them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from curate.api import load_selection, open_store
from stores import Store


def duplicate_groups(store: Store | str | Path | None, selection_id: str, n: int = 3
                     ) -> list[list[dict[str, Any]]]:
    """The first ``n`` groups (largest first) of a dedup selection: per group, one dict per
    row (``row_idx``, ``sample_id``, ``kept``, and the text column when there is one).
    Empty for a selection without groups."""
    st = open_store(store)
    sel = load_selection(st, selection_id)
    groups = sel.provenance.info.get("groups") or []
    groups = groups[:max(0, n)]
    if not groups:
        return []
    info = st.dataset_info(sel.provenance.dataset)
    cols = ["row_idx", "sample_id"] + ([info.text_column] if info.text_column else [])
    rows = np.concatenate([np.asarray(g, np.int64) for g in groups])
    want = pl.LazyFrame({"row_idx": rows})
    found = (st.dataset(info.name).select(cols)
             .join(want, on="row_idx", how="semi").collect())
    by_row = {r["row_idx"]: r for r in found.to_dicts()}
    return [[{**by_row[r], "kept": i == 0} for i, r in enumerate(g) if r in by_row]
            for g in groups]
