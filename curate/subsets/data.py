"""(ground set V, optimal subset S*) pairs for neural subset selection, built from WordNet
the way the Amazon baby-registry benchmark is built (Tschiatschek et al.; EquiVSet §5).

For every hypernym whose direct hyponym set has 3–15 members: S* = those hyponyms; V = S*
plus distractor synsets drawn uniformly (seeded) from all synsets outside S* and the
hypernym, up to |V| = 30. Item features = the MiniLM embeddings of the glosses. The sets are
split train / val / test by hypernym (each hypernym's set lands in exactly one split), with
``numpy.random.default_rng(seed)``.

Arrays: ``features`` (B, 30, d) float32, ``targets`` (B, 30) float32 in {0, 1}; item order
inside each ground set is shuffled so S* is not a prefix.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from curate.checks import check_int, check_number, check_seed
from curate.errors import SchemaError

GROUND_SET_SIZE = 30
MIN_SET, MAX_SET = 3, 15


@dataclass(frozen=True)
class SubsetData:
    features: np.ndarray      # (B, V, d)
    targets: np.ndarray       # (B, V) 0/1
    items: np.ndarray         # (B, V) synset ids
    queries: np.ndarray       # (B,) hypernym ids

    def __len__(self) -> int:
        return len(self.targets)

    def take(self, idx: np.ndarray) -> SubsetData:
        return SubsetData(self.features[idx], self.targets[idx], self.items[idx],
                          self.queries[idx])


def build_pairs(sets: pl.DataFrame, ids: list[str], X: np.ndarray, *, seed: int = 0,
                size: int = GROUND_SET_SIZE, max_sets: int | None = None) -> SubsetData:
    """Pairs from ``sets`` (hyponym_sets.parquet rows); ``ids``/``X`` = synset ids and their
    embeddings (row-aligned).

    Checked first: ``seed``; ``size`` an integer ≥ MAX_SET + 1 that the items can fill (a
    ground set draws ``size − |S*|`` distinct distractors outside S* and the query, so at
    least ``size + 1`` items are needed, else the draw could never finish); ``max_sets`` an
    integer ≥ 1 or None; ``ids`` and ``X`` row-aligned."""
    seed = check_seed(seed)
    check_int("", "size", size, MAX_SET + 1)
    if max_sets is not None:
        check_int("", "max_sets", max_sets)
    need = {"set_id", "members", "size"}
    if not need <= set(sets.columns):
        raise SchemaError(f"hyponym sets need columns {sorted(need)}; got {sets.columns}")
    if len(ids) != len(X):
        raise SchemaError(f"build_pairs: {len(ids)} ids but {len(X)} feature rows")
    if len(ids) < size + 1:
        raise SchemaError(f"ground sets of {size} items need at least {size + 1} items to "
                          f"draw distractors from; the dataset has {len(ids)}")
    row_of = {s: i for i, s in enumerate(ids)}
    rng = np.random.default_rng(seed)
    keep = sets.filter((pl.col("size") >= MIN_SET) & (pl.col("size") <= MAX_SET))
    keep = keep.filter(pl.col("members").list.eval(pl.element().is_in(list(row_of)))
                       .list.all())
    if max_sets is not None and keep.height > max_sets:
        keep = keep[np.sort(rng.choice(keep.height, max_sets, replace=False))]
    n = len(ids)
    feats, targets, items, queries = [], [], [], []
    for set_id, members in zip(keep["set_id"], keep["members"].to_list(), strict=True):
        pos = [row_of[m] for m in members]
        banned = set(pos) | ({row_of[set_id]} if set_id in row_of else set())
        distract: list[int] = []
        while len(distract) < size - len(pos):
            for c in rng.integers(0, n, size=2 * size):
                if int(c) not in banned and int(c) not in distract:
                    distract.append(int(c))
                if len(distract) == size - len(pos):
                    break
        rows = np.array(pos + distract)
        y = np.r_[np.ones(len(pos)), np.zeros(len(distract))]
        order = rng.permutation(size)
        feats.append(X[rows[order]])
        targets.append(y[order])
        items.append(np.asarray(ids, dtype=object)[rows[order]])
        queries.append(set_id)
    return SubsetData(np.asarray(feats, dtype=np.float32), np.asarray(targets, np.float32),
                      np.asarray(items, dtype=object), np.asarray(queries, dtype=object))


def split(data: SubsetData, seed: int = 0, val: float = 0.1,
          test: float = 0.2) -> tuple[SubsetData, SubsetData, SubsetData]:
    """Split by hypernym (one set per hypernym, so a permutation of the sets)."""
    check_number("", "val", val, 0.0, 1.0, high_open=True)
    check_number("", "test", test, 0.0, 1.0, high_open=True)
    order = np.random.default_rng(check_seed(seed)).permutation(len(data))
    n_te, n_va = int(round(test * len(data))), int(round(val * len(data)))
    return (data.take(order[n_te + n_va:]), data.take(order[n_te:n_te + n_va]),
            data.take(order[:n_te]))
