"""Calibration-set selection (Liu et al., ACL 2023)."""

from curate.calibration.select import (
    FAITHFULNESS,
    REFERENCE_POLICIES,
    RELEVANCE,
    select_calibration,
)

__all__ = ["FAITHFULNESS", "REFERENCE_POLICIES", "RELEVANCE", "select_calibration"]
