"""Execute the notebooks against a small real store, so they cannot rot."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


@pytest.mark.parametrize("name", ["01_explore_subsets.ipynb", "02_set_selection.ipynb",
                                  "03_fanout_retrieval.ipynb", "04_choose_a_method.ipynb"])
def test_notebook_executes(name, wordnet_home, tmp_path, monkeypatch):
    monkeypatch.setenv("CURATE_HOME", str(wordnet_home))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(ROOT / "notebooks" / name, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors
    if name.startswith("01"):
        images = [o for c in nb.cells for o in c.get("outputs", [])
                  if "image/png" in o.get("data", {})]
        assert len(images) >= 3            # class balance, histogram, PCA map
    elif name.startswith("02"):
        text = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
        assert "QUERY" in text and "test MJC" in text
    elif name.startswith("03"):
        text = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
        assert "QUERY" in text and "recall@10" in text and "dpp" in text
        assert "service (diffusion)" in text and "query set queries-" in text
    else:
        text = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
        images = [o for c in nb.cells for o in c.get("outputs", [])
                  if "image/png" in o.get("data", {})]
        assert images and "GROUP" in text and "→" in text and "flagged of" in text
