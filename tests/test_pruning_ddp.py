"""Pruners under torch.distributed (gloo, 2 CPU processes): shards partition the plan and
``update`` keeps every rank's loss table identical."""

from __future__ import annotations

import os

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def _worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank,
                            world_size=world)
    from curate.pruning import SeTaPruner

    p = SeTaPruner(101, epochs=3, prune_ratio=0.2, seed=7)
    shard = p.sampler(0).plan
    losses = torch.as_tensor(shard, dtype=torch.float32) / 100.0
    p.update(torch.as_tensor(shard), losses)
    np.save(os.path.join(out_dir, f"shard{rank}.npy"), shard)
    np.save(os.path.join(out_dir, f"scores{rank}.npy"), p.scores)
    dist.destroy_process_group()


def test_shards_partition_the_plan_and_scores_agree(tmp_path):
    mp.spawn(_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    s0, s1 = (np.load(tmp_path / f"shard{r}.npy") for r in (0, 1))
    assert len(s0) == len(s1)                                  # equal steps on every rank
    from curate.pruning import SeTaPruner

    single = SeTaPruner(101, epochs=3, prune_ratio=0.2, seed=7).sampler(0).plan
    assert set(s0) | set(s1) == set(single.tolist())           # together: the whole plan
    c0, c1 = (np.load(tmp_path / f"scores{r}.npy") for r in (0, 1))
    assert np.array_equal(c0, c1)                              # gathered: identical tables
    seen = np.union1d(s0, s1)
    assert np.allclose(c0[seen], seen / 100.0)
