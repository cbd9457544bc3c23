"""``pipeline-platform registry init | import | export | validate | history``."""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline_platform.cli.output import CommandError, print_json, print_table
from pipeline_platform.config import load_settings
from pipeline_platform.registry.validation import RegistryValidationError, load_document

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from pipeline_platform.registry.document import RegistryDocument


def register(subparsers: Any) -> None:
    """Register ``registry`` and its subcommands."""
    parser = subparsers.add_parser(
        "registry", help="create, import, export and validate the registry"
    )
    commands = parser.add_subparsers(dest="registry_command", metavar="COMMAND", required=True)

    init = commands.add_parser("init", help="create or upgrade the registry schema")
    init.set_defaults(handler=_init)

    imp = commands.add_parser("import", help="import a registry YAML file (all or nothing)")
    imp.add_argument("file", type=Path)
    imp.add_argument("--dry-run", action="store_true", help="print the diff, write nothing")
    imp.add_argument("--actor", help="who imports (default: the OS user)")
    imp.add_argument("--json", action="store_true", help="print the result as JSON")
    imp.set_defaults(handler=_import)

    exp = commands.add_parser("export", help="write the registry as YAML (stdout by default)")
    exp.add_argument("file", type=Path, nargs="?")
    exp.set_defaults(handler=_export)

    val = commands.add_parser("validate", help="check a registry YAML file, report every problem")
    val.add_argument("file", type=Path)
    val.add_argument("--json", action="store_true", help="print problems as JSON")
    val.add_argument(
        "--against-warehouse",
        action="store_true",
        help="also compare each mapped column with the live table's type",
    )
    val.set_defaults(handler=_validate)

    hist = commands.add_parser("history", help="list registry revisions, newest first")
    hist.add_argument("--limit", type=int, default=50)
    hist.add_argument("--json", action="store_true")
    hist.set_defaults(handler=_history)

    from pipeline_platform.cli.pipeline_commands import register_rollback

    register_rollback(commands)


def registry_engine(upgrade: bool = False) -> Engine:
    """Open the registry; ``upgrade`` migrates it first (only commands that write do)."""
    from pipeline_platform.registry.database import create_registry_engine, upgrade_registry

    engine = create_registry_engine(load_settings().registry_url)
    if upgrade:
        upgrade_registry(engine)
    return engine


def _read_only_engine() -> Engine:
    """Open the registry for reading, refusing one that is not at the current schema.

    Read-only commands never migrate: a registry that is empty or older than this release is
    reported, with the command that fixes it.

    Raises:
        CommandError: when the registry schema is missing or not at the newest migration.
    """
    from sqlalchemy.engine import make_url

    from pipeline_platform.registry.database import head_revision, schema_revision

    engine = registry_engine()
    at = schema_revision(engine)
    if at != head_revision():
        where = make_url(load_settings().registry_url).render_as_string(hide_password=True)
        state = "has no registry schema" if at is None else f"is at schema revision {at}"
        engine.dispose()
        raise CommandError(
            f"the registry at {where} {state}, not {head_revision()}: "
            "run 'pipeline-platform registry init' first"
        )
    return engine


def _load(path: Path) -> RegistryDocument:
    try:
        return load_document(path)
    except RegistryValidationError as error:
        raise CommandError(*(str(p) for p in error.problems)) from None


def _init(args: argparse.Namespace) -> int:
    from pipeline_platform.registry.database import current_revision

    engine = registry_engine(upgrade=True)
    print(f"registry ready at revision {current_revision(engine)}")
    return 0


def _import(args: argparse.Namespace) -> int:
    from pipeline_platform.registry.store import RevisionConflictError, import_document

    document = _load(args.file)
    actor = args.actor or getpass.getuser()
    try:
        result = import_document(
            registry_engine(upgrade=True),
            document,
            actor=actor,
            source=str(args.file),
            dry_run=args.dry_run,
        )
    except RevisionConflictError as error:
        raise CommandError(str(error)) from None
    if args.json:
        print_json(
            {"dryRun": args.dry_run, "revision": result.revision, "changes": result.diff.summary()}
        )
        return 0
    for line in result.diff.lines():
        print(line)
    if not result.diff.is_empty:
        for problem in _column_problems(document, tolerant=True):
            print(f"warning: {problem}", file=sys.stderr)
    if result.diff.is_empty:
        print("no changes")
    elif args.dry_run:
        print("dry run: nothing written")
    else:
        print(f"imported as revision {result.revision}")
    return 0


def _column_problems(document: RegistryDocument, tolerant: bool = False) -> list[Any]:
    """Compare mapped columns with the live tables (``tolerant``: skip unset data sources)."""
    from pipeline_platform.cli.dlq_commands import warehouse_url_for
    from pipeline_platform.ingestion.column_types import column_problems

    settings = load_settings()
    try:
        return column_problems(
            document, lambda source: warehouse_url_for(document, source, settings)
        )
    except CommandError:
        if tolerant:
            return []
        raise


def _export(args: argparse.Namespace) -> int:
    from pipeline_platform.registry.store import read_document
    from pipeline_platform.registry.yaml_io import dump_document

    text = dump_document(read_document(_read_only_engine()))
    if args.file is None:
        sys.stdout.write(text)
    else:
        args.file.write_text(text, encoding="utf-8")
    return 0


def _validate(args: argparse.Namespace) -> int:
    try:
        document = load_document(args.file)
    except RegistryValidationError as error:
        if args.json:
            print_json([{"path": p.path, "reason": p.reason} for p in error.problems])
            return 1
        raise CommandError(*(str(p) for p in error.problems)) from None
    if args.against_warehouse:
        problems = _column_problems(document)
        if problems:
            if args.json:
                print_json([{"path": p.path, "reason": p.reason} for p in problems])
                return 1
            raise CommandError(*(str(p) for p in problems))
    tables = sum(1 for t in document.topics if t.table is not None)
    mappings = sum(len(t.table.mappings) for t in document.topics if t.table is not None)
    counts = {
        "topics": len(document.topics),
        "tables": tables,
        "mappings": mappings,
        "flows": len(document.flows),
        "stages": sum(len(f.stages) for f in document.flows),
        "dataSources": len(document.data_sources),
        "pipelines": len(document.pipelines),
    }
    if args.json:
        print_json([])
    else:
        print("valid: " + ", ".join(f"{n} {k}" for k, n in counts.items()))
    return 0


def _history(args: argparse.Namespace) -> int:
    from pipeline_platform.registry.store import history

    revisions = history(_read_only_engine(), args.limit)
    rows = [
        {
            "revision": r.revision,
            "createdAt": r.created_at.isoformat(timespec="seconds"),
            "actor": r.actor,
            "source": r.source,
            "summary": r.summary,
        }
        for r in revisions
    ]
    if args.json:
        print_json(rows)
        return 0
    print_table(
        ("revision", "time", "actor", "source", "changes"),
        (
            (r["revision"], r["createdAt"], r["actor"], r["source"], _changes(r["summary"]))
            for r in rows
        ),
    )
    return 0


def _changes(summary: Any) -> str:
    if not isinstance(summary, dict):
        return str(summary)
    parts = []
    for kind, change in sorted(summary.items()):
        if isinstance(change, dict):
            counts = [
                f"{sign}{len(change.get(key) or ())}"
                for sign, key in (("+", "added"), ("~", "changed"), ("-", "removed"))
            ]
            parts.append(f"{kind} {' '.join(counts)}")
    return "; ".join(parts)
