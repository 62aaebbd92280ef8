"""Notebook 03 executes on the bundled data (tests/notebooks/runner.py)."""

import pytest

from tests.notebooks.runner import run_notebook

pytestmark = pytest.mark.slow


def test_notebook_executes(wordnet_home, tmp_path, monkeypatch):
    text, images = run_notebook("03_fanout_retrieval.ipynb", wordnet_home, tmp_path, monkeypatch)
    assert "QUERY" in text and "recall@10" in text and "dpp" in text
    assert "service (diffusion)" in text and "query set queries-" in text
