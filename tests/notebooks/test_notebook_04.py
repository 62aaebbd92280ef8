"""Notebook 04 executes on the bundled data (tests/notebooks/runner.py)."""

import pytest

from tests.notebooks.runner import run_notebook

pytestmark = pytest.mark.slow


def test_notebook_executes(wordnet_home, tmp_path, monkeypatch):
    text, images = run_notebook("04_choose_a_method.ipynb", wordnet_home, tmp_path, monkeypatch)
    assert images and "GROUP" in text and "→" in text and "flagged of" in text
