"""Selections into training jobs: sampler, subset, HF indices."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from curate.selection import Provenance, Selection

PROV = Provenance(method="m", params={}, budget=3, n_selected=3, n_candidates=10, seed=0)


def test_unweighted_sampler_is_a_seeded_permutation():
    sel = Selection(indices=np.array([7, 2, 5]), provenance=PROV)
    a = list(sel.to_sampler(seed=1))
    assert sorted(a) == [2, 5, 7]
    assert a == list(sel.to_sampler(seed=1))
    assert len(list(sel.to_sampler(num_samples=7, seed=0))) == 7


def test_weighted_sampler_follows_weights():
    sel = Selection(indices=np.array([10, 20, 30]), weights=np.array([0.0, 1.0, 3.0]),
                    provenance=PROV)
    draws = np.array(list(sel.to_sampler(num_samples=4000, seed=0)))
    assert 10 not in draws
    assert abs((draws == 30).mean() - 0.75) < 0.03


def test_dataloader_and_subset_and_hf_indices():
    data = TensorDataset(torch.arange(10).float())
    sel = Selection(indices=np.array([1, 4, 8]), provenance=PROV)
    seen = torch.cat([b[0] for b in DataLoader(data, batch_size=2, sampler=sel.to_sampler())])
    assert sorted(seen.tolist()) == [1.0, 4.0, 8.0]
    assert [x[0].item() for x in sel.to_subset(data)] == [1.0, 4.0, 8.0]
    assert sel.hf_indices() == [1, 4, 8]
