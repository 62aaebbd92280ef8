"""Imports point one way: core ← stores ← curate, retrieval; the CLI (``curate.cli``) on top.

Every ``import`` statement is read from the source (function-level imports included, so a
lazy import cannot hide an edge) and each package's allowed targets are checked."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("core", "stores", "curate", "retrieval")
#: what each layer may import from the project's own packages
ALLOWED = {"core": {"core"}, "stores": {"core", "stores"},
           "curate": {"core", "stores", "curate"},
           "retrieval": {"core", "stores", "retrieval"},
           "curate.cli": set(PACKAGES)}


def imported_packages(path: Path) -> set[str]:
    """Top-level project packages that ``path`` imports (anywhere in the file)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        out |= {n.split(".")[0] for n in names if n.split(".")[0] in PACKAGES}
    return out


def layer(path: Path) -> str:
    rel = path.relative_to(ROOT).parts
    return "curate.cli" if rel[:2] in (("curate", "cli"), ("curate", "cli.py")) else rel[0]


def edges() -> list[tuple[str, str, str]]:
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            for target in imported_packages(path):
                found.append((layer(path), target, str(path.relative_to(ROOT))))
    return found


def test_imports_point_one_way():
    bad = [f"{where}: {src} → {dst}" for src, dst, where in edges()
           if dst not in ALLOWED[src]]
    assert not bad, "imports against the layering:\n" + "\n".join(bad)


@pytest.mark.parametrize("source, target", [("retrieval", "curate"), ("core", "stores"),
                                            ("stores", "curate"), ("curate", "retrieval")])
def test_checker_sees_a_forbidden_edge(tmp_path, source, target):
    """The checker itself: a lazy (function-level) import of a forbidden package is found."""
    module = tmp_path / "m.py"
    module.write_text(f"def f():\n    from {target}.x import y\n    return y\n")
    assert target in imported_packages(module)
    assert target not in ALLOWED[source]
