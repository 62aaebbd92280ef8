"""Neural subset selection: EquiVSet and INSET set functions trained by mean-field VI, the
papers' reproducible tasks, and users' own (V, S*) pairs in a long table."""

from curate.subsets.data import SubsetData, build_pairs, split
from curate.subsets.long_format import long_pairs
from curate.subsets.models import MODELS, SetFunction, make_set_model
from curate.subsets.tasks import TASKS, anomaly_sets, gaussian_sets, moons_sets, synthetic_task
from curate.subsets.train import mean_jaccard, predict, random_mjc, top_k_mask, train_set_model

__all__ = ["MODELS", "TASKS", "SetFunction", "SubsetData", "anomaly_sets", "build_pairs",
           "gaussian_sets", "long_pairs", "make_set_model", "mean_jaccard", "moons_sets",
           "predict", "random_mjc", "split", "synthetic_task", "top_k_mask", "train_set_model"]
