"""Edits made directly in SQL become registry revisions (actor ``sql``) when first seen.

Every revision stores the content fingerprint of the registry tables and the document it
produced. When the live fingerprint differs from the latest revision's, the registry was edited
outside ``registry import`` (the §2.2 statements, say): the difference between that revision's
document and the live one is recorded as a new revision with actor ``sql``. The reload sensor
and ``POST /reload-config`` call :func:`record_sql_edits`, so such an edit also reloads the code
location. A SQL edit that leaves a row invalid is recorded too; the row is skipped by the reads
(with a reason) and reported by ``/validate-config``.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Connection, Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from pipeline_platform.registry.document import RegistryDocument
from pipeline_platform.registry.fingerprint import content_fingerprint
from pipeline_platform.registry.gc_pause import gc_paused
from pipeline_platform.registry.models import registry_revisions
from pipeline_platform.registry.store import diff_documents, read_document
from pipeline_platform.registry.store.rows import dumps_json

SQL_ACTOR = "sql"


def record_sql_edits(engine: Engine) -> int:
    """Record a revision for SQL edits made since the latest revision; return the revision.

    Args:
        engine: Engine of a migrated registry.

    Returns:
        The latest revision after recording (unchanged when nothing was edited).
    """
    r = registry_revisions.c
    with gc_paused(), engine.connect() as connection:
        latest = connection.execute(
            select(r.revision, r.fingerprint, r.content).order_by(r.revision.desc()).limit(1)
        ).first()
        fingerprint = content_fingerprint(connection)
        if latest is not None and latest.fingerprint == fingerprint:
            return int(latest.revision)
        document = read_document(connection)
        content = document.model_dump_json(by_alias=True)
        if latest is not None and latest.content is None:
            # A revision recorded before fingerprints existed: adopt the live content.
            _remember(connection, int(latest.revision), fingerprint, content)
            return int(latest.revision)
        before = (
            RegistryDocument.model_validate_json(latest.content)
            if latest is not None and latest.content is not None
            else RegistryDocument()
        )
        diff = diff_documents(before, document)
        if diff.is_empty:
            if latest is None:
                connection.rollback()
                return 0
            _remember(connection, int(latest.revision), fingerprint, content)
            return int(latest.revision)
        revision = (int(latest.revision) if latest is not None else 0) + 1
        try:
            connection.execute(
                insert(registry_revisions).values(
                    revision=revision,
                    created_at=datetime.now(UTC),
                    actor=SQL_ACTOR,
                    source="edited in SQL",
                    summary=dumps_json(diff.summary()),
                    fingerprint=fingerprint,
                    content=content,
                )
            )
            connection.commit()
        except IntegrityError:
            connection.rollback()  # another process recorded it first
            revision = int(
                connection.execute(select(r.revision).order_by(r.revision.desc())).scalar() or 0
            )
        return revision


def _remember(connection: Connection, revision: int, fingerprint: str, content: str) -> None:
    connection.execute(
        update(registry_revisions)
        .where(registry_revisions.c.revision == revision)
        .values(fingerprint=fingerprint, content=content)
    )
    connection.commit()
