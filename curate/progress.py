"""Progress bars: the one implementation lives in ``stores.progress`` (the bottom package, so
the store's streaming ingest can draw them too); re-exported here for ``curate`` code."""

from stores.progress import bar

__all__ = ["bar"]
