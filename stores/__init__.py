"""stores: Curate's dataset store (DuckDB catalog + Parquet/npy files on disk)."""

from stores.checks import check_seed
from stores.embeddings import EmbeddingMeta
from stores.errors import (
    AlreadyExistsError,
    CurateError,
    EmptyDatasetError,
    InvalidParameterError,
    NotFoundError,
    SchemaError,
    StoreError,
    UsageError,
)
from stores.ingest import IngestSpec, assign_splits, read_table
from stores.signals import Signals
from stores.store import DatasetInfo, Store, resolve_root

__all__ = [
    "AlreadyExistsError", "CurateError", "DatasetInfo", "EmbeddingMeta", "EmptyDatasetError",
    "IngestSpec", "InvalidParameterError", "NotFoundError", "SchemaError", "Signals", "Store",
    "StoreError", "UsageError", "assign_splits", "check_seed", "read_table", "resolve_root",
]
