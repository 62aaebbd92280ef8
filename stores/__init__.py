"""stores: Curate's dataset store (DuckDB catalog + Parquet/npy files on disk)."""

from core.checks import check_seed
from core.errors import (
    AlreadyExistsError,
    CurateError,
    EmptyDatasetError,
    InvalidParameterError,
    NotFoundError,
    SchemaError,
    StoreError,
    UsageError,
)
from stores.embeddings import EmbeddingMeta
from stores.ingest import IngestSpec, assign_splits
from stores.signals import Signals
from stores.store import DatasetInfo, Store, resolve_root
from stores.stream import read_table

__all__ = [
    "AlreadyExistsError", "CurateError", "DatasetInfo", "EmbeddingMeta", "EmptyDatasetError",
    "IngestSpec", "InvalidParameterError", "NotFoundError", "SchemaError", "Signals", "Store",
    "StoreError", "UsageError", "assign_splits", "check_seed", "read_table", "resolve_root",
]
