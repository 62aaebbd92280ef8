"""Notebook 01 executes on the bundled data (tests/notebooks/runner.py)."""

import pytest

from tests.notebooks.runner import run_notebook

pytestmark = pytest.mark.slow


def test_notebook_executes(wordnet_home, tmp_path, monkeypatch):
    text, images = run_notebook("01_explore_subsets.ipynb", wordnet_home, tmp_path, monkeypatch)
    assert len(images) >= 3            # class balance, histogram, PCA map
