"""Every selection method. Importing this package registers them all."""

from curate.methods.auto import AutoSelector
from curate.methods.autocoreset import AutoCoresetSelector
from curate.methods.baselines import RandomSelector, StratifiedSelector
from curate.methods.cld import CLDSelector
from curate.methods.dedup import Dedup
from curate.methods.el2n import EL2NSelector
from curate.methods.facility_location import FacilityLocationSelector
from curate.methods.forgetting import ForgettingSelector
from curate.methods.herding import HerdingSelector
from curate.methods.inset import InsetSelector
from curate.methods.kcenter import KCenterSelector
from curate.methods.label_issues import LabelIssues
from curate.methods.snp import SnPSelector
from curate.methods.uncertainty import UncertaintySelector

__all__ = [
    "AutoCoresetSelector", "AutoSelector", "CLDSelector", "Dedup", "EL2NSelector",
    "FacilityLocationSelector",
    "ForgettingSelector", "HerdingSelector", "InsetSelector", "KCenterSelector", "LabelIssues",
    "RandomSelector",
    "SnPSelector", "StratifiedSelector", "UncertaintySelector",
]
