"""Dynamic (training-time) data pruning: SeTa, InfoBatch, dynamic random."""

from curate.pruning.base import DynamicPruner, PlanSampler
from curate.pruning.pruners import (
    PRUNERS,
    DynamicRandomPruner,
    FullData,
    InfoBatchPruner,
    SeTaPruner,
    make_pruner,
)
from curate.pruning.train import IndexedTensors, train_dataset, train_with_pruner

__all__ = ["PRUNERS", "DynamicPruner", "DynamicRandomPruner", "FullData", "IndexedTensors",
           "InfoBatchPruner", "PlanSampler", "SeTaPruner", "make_pruner", "train_dataset",
           "train_with_pruner"]
