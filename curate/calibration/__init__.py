"""Calibration-set selection (Liu et al., ACL 2023)."""

from curate.calibration.pipeline import calibrate_file, parse_metric_weights
from curate.calibration.select import (
    FAITHFULNESS,
    REFERENCE_POLICIES,
    RELEVANCE,
    select_calibration,
)

__all__ = ["FAITHFULNESS", "REFERENCE_POLICIES", "RELEVANCE", "calibrate_file",
           "parse_metric_weights", "select_calibration"]
