"""Dynamic (training-time) data pruning: the shared machinery.

A pruner decides, at the start of every epoch, which sample indices the epoch visits, and
learns from the per-sample losses the training loop reports back. The batches are slices of
the epoch's plan, so the loop indexes its tensors with them (no per-row Dataset)::

    pruner = SeTaPruner(n=len(y), epochs=E, prune_ratio=0.3, seed=0)
    for epoch in range(E):
        for idx in pruner.sampler(epoch).batches(B):   # int64 index tensors, in plan order
            per_sample = F.cross_entropy(model(X[idx]), y[idx], reduction="none")
            loss = pruner.update(idx, per_sample)       # weighted mean (InfoBatch rescales)
            loss.backward(); opt.step(); opt.zero_grad()
    pruner.saved_fraction                               # measured, not nominal

``sampler(epoch)`` is also a torch ``Sampler``, for a ``DataLoader`` over a dataset that
returns its index with each item (``IndexedTensors``). No monkey-patching of torch: the
batch carries its indices. Under DistributedDataParallel every rank computes the same epoch
plan (the generator is seeded by (seed, epoch) and the loss table is kept identical by
``all_gather`` in ``update``), and ``sampler`` hands each rank its own shard of the plan,
like ``DistributedSampler``; ``batches`` slices that shard, and every rank gets the same
number of batches of the same sizes (the gather needs them).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import Sampler

from curate.checks import check_int, check_number, check_seed
from curate.errors import InvalidParameterError

INITIAL_LOSS = 3.0  # unseen samples look hard (as the reference implementations do)


def _dist() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class PlanSampler(Sampler[int]):
    """Iterates this rank's shard of an epoch plan (indices already shuffled)."""

    def __init__(self, plan: np.ndarray, rank: int = 0, world: int = 1):
        if world > 1:  # pad so every rank gets the same number of steps
            per = -(-len(plan) // world)
            plan = np.resize(plan, per * world)[rank::world]
        self.plan = plan

    def __len__(self) -> int:
        return len(self.plan)

    def __iter__(self) -> Iterator[int]:
        return iter(self.plan.tolist())

    def batches(self, batch_size: int) -> Iterator[torch.Tensor]:
        """This rank's plan cut in order into int64 index tensors of ``batch_size`` (the
        last may be shorter), like a ``DataLoader`` over this sampler without
        ``drop_last``."""
        check_int("", "batch_size", batch_size)
        plan = torch.from_numpy(np.ascontiguousarray(self.plan, dtype=np.int64))
        return iter(plan.split(batch_size))


class DynamicPruner:
    """Base class: subclasses implement ``_plan(epoch, rng) -> indices`` (and may set
    ``self.weights`` for the epoch)."""

    name = "none"
    summary = ""

    def __init__(self, n: int, epochs: int, *, prune_ratio: float = 0.0, anneal: float = 0.875,
                 seed: int = 0):
        """``n`` samples, ``epochs`` ≥ 1, ``prune_ratio`` in [0, 1), ``anneal`` in [0, 1],
        ``seed`` in [0, 2**63); all checked (types included) here."""
        check_int(self.name, "n", n)
        check_int(self.name, "epochs", epochs)
        check_number(self.name, "prune_ratio", prune_ratio, 0.0, 1.0, high_open=True)
        check_number(self.name, "anneal", anneal, 0.0, 1.0)
        self.n, self.epochs, self.prune_ratio = int(n), int(epochs), float(prune_ratio)
        self.anneal, self.seed = float(anneal), check_seed(seed, f"{self.name}: seed")
        self.scores = np.full(n, INITIAL_LOSS, dtype=np.float64)
        self.weights = np.ones(n, dtype=np.float64)
        self.visits = 0          # sample-iterations planned so far (all ranks together)
        self.epochs_planned = 0
        self.history: list[dict] = []

    # -- per epoch ---------------------------------------------------------------------------
    def sampler(self, epoch: int) -> PlanSampler:
        """The sampler for ``epoch`` (call once per epoch, in order)."""
        rng = np.random.default_rng([self.seed, epoch])
        self.weights[:] = 1.0
        plan = np.asarray(self._plan(epoch, rng), dtype=np.int64)
        plan = rng.permutation(plan)
        self.visits += len(plan)
        self.epochs_planned += 1
        self.history.append({"epoch": epoch, "visited": len(plan)})
        return PlanSampler(plan, *_dist())

    def _plan(self, epoch: int, rng: np.random.Generator) -> np.ndarray:
        return np.arange(self.n)

    @property
    def pruning(self) -> bool:
        return True

    def is_annealing(self, epoch: int) -> bool:
        """The last (1 − anneal) of the epochs stop the method-specific pruning."""
        return epoch >= self.anneal * self.epochs

    # -- per batch ---------------------------------------------------------------------------
    def update(self, indices, losses: torch.Tensor) -> torch.Tensor:
        """Record per-sample losses; return the (weighted) mean loss to back-propagate."""
        idx = torch.as_tensor(indices).reshape(-1)
        if losses.ndim != 1 or len(losses) != len(idx):
            raise InvalidParameterError(f"{self.name}.update: got {len(idx)} indices but "
                                        f"losses of shape {tuple(losses.shape)}; pass "
                                        "per-sample losses (reduction='none')")
        if len(idx) and (int(idx.min()) < 0 or int(idx.max()) >= self.n):
            raise InvalidParameterError(f"{self.name}.update: indices must be in [0, {self.n})")
        values = losses.detach().to(torch.float64)
        gi, gv = idx.to(losses.device), values
        if _dist()[1] > 1:  # keep every rank's loss table identical
            both = torch.stack([gi.to(torch.float64), gv])
            parts = [torch.empty_like(both) for _ in range(dist.get_world_size())]
            dist.all_gather(parts, both)
            both = torch.cat(parts, dim=1)
            gi, gv = both[0].long(), both[1]
        self.scores[gi.cpu().numpy()] = gv.cpu().numpy()
        w = torch.as_tensor(self.weights[idx.cpu().numpy()], dtype=losses.dtype,
                            device=losses.device)
        return (losses * w).mean()

    # -- measurement -------------------------------------------------------------------------
    @property
    def saved_fraction(self) -> float:
        """1 − (sample-iterations visited) / (n × epochs planned): measured, not nominal."""
        if self.epochs_planned == 0:
            return 0.0
        return 1.0 - self.visits / (self.n * self.epochs_planned)
