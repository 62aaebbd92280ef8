"""Every selection method. Importing this package registers them all."""

from curate.methods.baselines import RandomSelector, StratifiedSelector
from curate.methods.cld import CLDSelector

__all__ = ["CLDSelector", "RandomSelector", "StratifiedSelector"]
