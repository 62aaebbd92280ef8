"""Execute the notebooks against a small real store, so they cannot rot. One test file per
notebook (``test_notebook_0N.py``; ``tests/conftest.py`` starts the slow tests first), so
pytest-xdist's ``--dist loadfile`` runs them on
different workers; this module holds the runner they share."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[2]


def run_notebook(name: str, home: Path, tmp_path: Path, monkeypatch) -> tuple[str, list]:
    """Execute ``notebooks/<name>`` with ``CURATE_HOME=home``; fail on any error output.
    Returns (all printed text, image outputs)."""
    monkeypatch.setenv("CURATE_HOME", str(home))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(ROOT / "notebooks" / name, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    errors = [o for o in outputs if o.get("output_type") == "error"]
    assert not errors, errors[0].get("evalue")
    text = "".join(o.get("text", "") for o in outputs)
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    return text, images
