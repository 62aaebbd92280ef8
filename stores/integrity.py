"""Content manifests: what an artefact's files were when they were written, checked on read.

Every artefact the catalog registers (a dataset, an embedding, a signal version, a selection,
a model, an index) carries a manifest in its catalog row::

    {"selection.parquet": {"size": 4121, "sha256": "…", "sample": "…"}, "selection.json": …}

keyed by the file's path relative to the artefact's folder. Reading an artefact through
``Store`` checks it with ``verify``: the size always; the full SHA-256 for files up to
``FULL_HASH_BYTES`` (64 MiB); for larger files (embeddings, big sample tables) a SHA-256 of
the size and three 1 MiB blocks (start, middle, end), so opening a 5 GB embedding costs three
reads, not five gigabytes. ``verify(..., full=True)`` (``curate verify``) hashes everything.
A mismatch raises ``CorruptArtefactError`` naming the artefact and the file.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from core.errors import StoreError
from stores.files import sha256_file

FULL_HASH_BYTES = 64 << 20
_BLOCK = 1 << 20


class CorruptArtefactError(StoreError):
    """An artefact's files differ from what the catalog recorded when it was written."""


def sampled_sha256(path: Path, size: int | None = None) -> str:
    """SHA-256 of the size and the first, middle and last 1 MiB of ``path``."""
    size = os.path.getsize(path) if size is None else size
    h = hashlib.sha256(str(size).encode())
    with open(path, "rb") as fh:
        for offset in sorted({0, max(0, size // 2 - _BLOCK // 2), max(0, size - _BLOCK)}):
            fh.seek(offset)
            h.update(fh.read(_BLOCK))
    return h.hexdigest()


def file_entry(path: Path) -> dict[str, Any]:
    size = os.path.getsize(path)
    return {"size": size, "sha256": sha256_file(path), "sample": sampled_sha256(path, size)}


def manifest(base: Path, paths: Iterable[Path] | None = None) -> dict[str, dict[str, Any]]:
    """Manifest of ``paths`` (default: every file under folder ``base``), keyed relative to
    ``base``."""
    base = Path(base)
    chosen = sorted(p for p in base.rglob("*") if p.is_file()) if paths is None else paths
    return {str(Path(p).relative_to(base)): file_entry(Path(p)) for p in chosen}


def verify(base: Path, recorded: dict[str, dict[str, Any]] | None, what: str,
           full: bool = False) -> None:
    """Raise ``CorruptArtefactError`` unless every recorded file under ``base`` matches.

    ``recorded`` None (an artefact registered before manifests existed) verifies nothing.
    """
    if not recorded:
        return
    for rel, entry in recorded.items():
        path = Path(base) / rel
        hint = ("; it was changed or replaced outside Curate. Restore it from a backup, or "
                "delete the artefact's folder and run `curate gc`")
        if not path.is_file():
            raise CorruptArtefactError(f"{what} is damaged: {path} is missing{hint}")
        size = os.path.getsize(path)
        if size != entry["size"]:
            raise CorruptArtefactError(f"{what} is damaged: {path} has {size} bytes, "
                                       f"{entry['size']} were written{hint}")
        if full or size <= FULL_HASH_BYTES:
            ok = sha256_file(path) == entry["sha256"]
        else:
            ok = sampled_sha256(path, size) == entry["sample"]
        if not ok:
            raise CorruptArtefactError(f"{what} is damaged: the content of {path} differs "
                                       f"from what was written (sha256 mismatch){hint}")
