"""The registry database: read it, diff it, import a document into it (spec §2, §2.1).

Split by concern: :mod:`.read` (the stored registry as a canonical document, and its history),
:mod:`.diff` (what an import changes), :mod:`.write` and :mod:`.write_topics` (importing),
:mod:`.rows` (row-level helpers and bulk statements), :mod:`.invalid_rows` (stored entities that
no longer validate). The public names are importable from here.
"""

from pipeline_platform.registry.store.diff import (
    KIND_LABELS,
    KINDS,
    KindDiff,
    RegistryDiff,
    diff_documents,
)
from pipeline_platform.registry.store.invalid_rows import InvalidRows
from pipeline_platform.registry.store.read import (
    RevisionRecord,
    history,
    read_document,
    read_document_and_invalid_rows,
    read_document_and_revision,
)
from pipeline_platform.registry.store.rows import join_key, split_key
from pipeline_platform.registry.store.write import (
    ImportResult,
    RevisionConflictError,
    import_document,
    record_content,
)

__all__ = [
    "KINDS",
    "KIND_LABELS",
    "ImportResult",
    "InvalidRows",
    "KindDiff",
    "RegistryDiff",
    "RevisionConflictError",
    "RevisionRecord",
    "diff_documents",
    "history",
    "import_document",
    "join_key",
    "read_document",
    "read_document_and_invalid_rows",
    "read_document_and_revision",
    "record_content",
    "split_key",
]
