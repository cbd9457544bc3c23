"""Registry rollback: return the registry to an earlier revision's content, as a new revision.

Every revision stores the whole registry after it (``registry_revisions.content``), so any
revision written since that column exists can be rebuilt; the rollback itself is an ordinary
import of that content (diffed, validated, one transaction, recorded in the history).

Unlike a pause it needs no base revision: the target content is a stored revision's, which never
changes, and the diff is taken against the live registry inside the writing transaction, so a
change landing meanwhile is rolled back like one that landed just before (and the new revision
records exactly that), never lost unrecorded.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.engine import Engine

from pipeline_platform.registry.document import RegistryDocument
from pipeline_platform.registry.models import registry_revisions
from pipeline_platform.registry.store import ImportResult, import_document
from pipeline_platform.registry.validation import RegistryValidationError, validate_data


class RollbackError(ValueError):
    """The revision does not exist or has no stored content."""


def revision_document(engine: Engine, revision: int) -> RegistryDocument:
    """Return the registry as it was after ``revision``.

    Raises:
        RollbackError: when the revision is unknown or predates stored revision content.
    """
    with engine.connect() as connection:
        row = connection.execute(
            select(registry_revisions.c.content).where(registry_revisions.c.revision == revision)
        ).first()
    if row is None:
        raise RollbackError(f"registry revision {revision} does not exist")
    if row.content is None:
        raise RollbackError(f"registry revision {revision} predates stored revision content")
    return RegistryDocument.model_validate_json(row.content)


def rollback(engine: Engine, revision: int, *, actor: str, dry_run: bool = False) -> ImportResult:
    """Make the registry equal to revision ``revision``'s content, recorded as a new revision.

    Args:
        engine: Engine of a migrated registry.
        revision: The revision to return to.
        actor: Who rolls back.
        dry_run: Compute and return the diff only.

    Returns:
        The diff and the new revision (None for a dry run or when nothing changes).

    Raises:
        RollbackError: when the revision cannot be rebuilt.
        RegistryValidationError: when the old content no longer validates (e.g. a module gone).
        RevisionConflictError: when another import committed a revision meanwhile.
    """
    document = revision_document(engine, revision)
    checked, problems = validate_data(document.model_dump(mode="json", by_alias=True))
    if checked is None:
        raise RegistryValidationError(problems)
    return import_document(
        engine, checked, actor=actor, source=f"rollback to revision {revision}", dry_run=dry_run
    )
