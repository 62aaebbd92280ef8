"""Notebook 02 executes on the bundled data (tests/notebooks/runner.py)."""

import pytest

from tests.notebooks.runner import run_notebook

pytestmark = pytest.mark.slow


def test_notebook_executes(wordnet_home, tmp_path, monkeypatch):
    text, images = run_notebook("02_set_selection.ipynb", wordnet_home, tmp_path, monkeypatch)
    assert "QUERY" in text and "test MJC" in text
