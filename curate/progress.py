"""Progress bars: the one implementation lives in ``core.progress`` (the bottom package, so
the store's streaming ingest can draw them too); re-exported here for ``curate`` code."""

from core.progress import bar

__all__ = ["bar"]
