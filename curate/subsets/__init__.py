"""Neural subset selection: EquiVSet and INSET set functions trained by mean-field VI."""

from curate.subsets.data import SubsetData, build_pairs, split
from curate.subsets.models import MODELS, SetFunction, make_set_model
from curate.subsets.train import mean_jaccard, predict, random_mjc, train_set_model

__all__ = ["MODELS", "SetFunction", "SubsetData", "build_pairs", "make_set_model",
           "mean_jaccard", "predict", "random_mjc", "split", "train_set_model"]
