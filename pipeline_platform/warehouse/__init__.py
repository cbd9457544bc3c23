"""The warehouse interface and its PostgreSQL and SQLite backends.

Use :func:`connect_warehouse` to open one from a URL, describe tables as :class:`TableSpec`
and write inside :meth:`Warehouse.transaction`. See :mod:`pipeline_platform.warehouse.base`.
"""

from pipeline_platform.warehouse.base import (
    DEAD_LETTERS_TABLE,
    OFFSETS_TABLE,
    STATE_TABLE,
    ColumnSpec,
    ColumnTypeMismatch,
    FencedError,
    MigrationStep,
    OffsetUpdates,
    TableSpec,
    TargetTable,
    TypeChange,
    Warehouse,
    WarehouseTransaction,
    WriteMode,
)
from pipeline_platform.warehouse.connect import backend_of, connect_warehouse, postgres_conninfo
from pipeline_platform.warehouse.quoting import qualified_name, quote
from pipeline_platform.warehouse.rejects import (
    REASON_KINDS,
    DeadLetterRow,
    RejectedRow,
    StoredDeadLetter,
    reason_kind,
)

__all__ = [
    "DEAD_LETTERS_TABLE",
    "OFFSETS_TABLE",
    "REASON_KINDS",
    "STATE_TABLE",
    "ColumnSpec",
    "ColumnTypeMismatch",
    "DeadLetterRow",
    "FencedError",
    "MigrationStep",
    "OffsetUpdates",
    "RejectedRow",
    "StoredDeadLetter",
    "TableSpec",
    "TargetTable",
    "TypeChange",
    "Warehouse",
    "WarehouseTransaction",
    "WriteMode",
    "backend_of",
    "connect_warehouse",
    "postgres_conninfo",
    "qualified_name",
    "quote",
    "reason_kind",
]
