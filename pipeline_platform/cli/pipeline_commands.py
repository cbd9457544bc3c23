"""``pipeline-platform modules | module | pipeline run|runs|preview | registry rollback``."""

from __future__ import annotations

import argparse
import getpass
from typing import Any

from pipeline_platform.cli.output import CommandError, print_json, print_table
from pipeline_platform.config import load_settings
from pipeline_platform.pipelines.catalog import MODULES_BY_NAME
from pipeline_platform.pipelines.connections import MissingCredentials
from pipeline_platform.registry import queries


def _document() -> Any:
    from pipeline_platform.cli import query_commands

    return query_commands.load_registry_document(load_settings())


def _modules(args: argparse.Namespace) -> int:
    try:
        document = _document()
    except Exception:  # the catalog is code: list it even without a registry
        document = None
    result = queries.modules(document=document)
    if args.json:
        print_json(result)
        return 0
    print_table(
        ("module", "kind", "category", "used by", "description"),
        ((m["name"], m["kind"], m["category"], m["usageCount"], m["description"])
         for m in result),
    )  # fmt: skip
    return 0


def _module(args: argparse.Namespace) -> int:
    module = MODULES_BY_NAME.get(args.name)
    if module is None:
        raise CommandError(f"unknown module {args.name!r}")
    info = next(m for m in queries.modules() if m["name"] == module.name)
    if args.json:
        print_json(info)
        return 0
    for key in ("name", "displayName", "kind", "category", "version", "description",
                "documentationUrl", "tags", "requiredConnections", "inputs"):  # fmt: skip
        value = info[key]
        print(f"{key}: {', '.join(value) if isinstance(value, list) else value}")
    print("config schema:")
    print_json(info["configSchema"])
    return 0


def _run(args: argparse.Namespace) -> int:
    import dagster as dg

    from pipeline_platform.factory.builder import build_definitions
    from pipeline_platform.factory.loader import load_snapshot
    from pipeline_platform.pipelines.service import run_now

    snapshot = load_snapshot(load_settings())
    defs = build_definitions(snapshot)
    instance = dg.DagsterInstance.get()
    try:
        result = run_now(snapshot.document, args.name, defs, instance)
    except LookupError as error:
        raise CommandError(str(error.args[0])) from None
    if args.json:
        print_json(result)
    else:
        print(
            f"run {result['run_id']}: {result['status']} ({result['rows_read']} read, "
            f"{result['rows_written']} written, {result['rows_rejected']} rejected)"
        )
    return 0 if result["status"] == "SUCCESS" else 1


def _runs(args: argparse.Namespace) -> int:
    import dagster as dg

    from pipeline_platform.pipelines.service import find_pipeline, list_runs

    try:
        find_pipeline(_document(), args.name)
    except LookupError as error:
        raise CommandError(str(error.args[0])) from None
    runs = list_runs(dg.DagsterInstance.get(), args.name, args.limit)
    if args.json:
        print_json({"pipeline": args.name, "runs": runs})
        return 0
    print_table(
        ("run", "status", "start", "end", "processed", "failed", "trigger"),
        ((r["run_id"][:8], r["status"], r["start"], r["end"], r["records_processed"],
          r["records_failed"], r["trigger"]) for r in runs),
    )  # fmt: skip
    return 0


def _preview(args: argparse.Namespace) -> int:
    from pipeline_platform.pipelines.service import preview

    try:
        nodes = preview(_document(), args.name, rows=args.rows, node=args.node)
    except (LookupError, MissingCredentials) as error:
        raise CommandError(str(error.args[0] if error.args else error)) from None
    if args.json:
        print_json({"pipeline": args.name, "nodes": nodes})
        return 0
    for node in nodes:
        print(f"== {node['node']} ({node['module']}): {node['rows_in']} in, "
              f"{node['rows_out']} out")  # fmt: skip
        if node["columns"]:
            print_table(node["columns"], node["rows"])
    return 0


def _rollback(args: argparse.Namespace) -> int:
    from pipeline_platform.registry.database import create_registry_engine, upgrade_registry
    from pipeline_platform.registry.rollback import RollbackError, rollback
    from pipeline_platform.registry.store import RevisionConflictError
    from pipeline_platform.registry.validation import RegistryValidationError

    engine = create_registry_engine(load_settings().registry_url)
    upgrade_registry(engine)
    try:
        result = rollback(engine, args.revision, actor=args.actor or getpass.getuser(),
                          dry_run=args.dry_run)  # fmt: skip
    except (RollbackError, RevisionConflictError) as error:
        raise CommandError(str(error)) from None
    except RegistryValidationError as error:
        raise CommandError(*(str(p) for p in error.problems)) from None
    for line in result.diff.lines():
        print(line)
    if args.dry_run:
        print(f"dry run: rollback to revision {args.revision} not written")
    elif result.revision is None:
        print("no changes")
    else:
        print(f"rolled back to revision {args.revision} as revision {result.revision}")
    return 0


def register(subparsers: Any) -> None:
    """Register ``modules``, ``module``, ``pipeline`` and ``registry rollback``."""
    mods = subparsers.add_parser("modules", help="List the module catalog (with usage counts).")
    mods.add_argument("--json", action="store_true", help="print JSON instead of a table")
    mods.set_defaults(handler=_modules)
    mod = subparsers.add_parser("module", help="Show one module of the catalog.")
    mod.add_argument("name", metavar="NAME")
    mod.add_argument("--json", action="store_true", help="print JSON")
    mod.set_defaults(handler=_module)

    parser = subparsers.add_parser("pipeline", help="run, list runs of and preview pipelines")
    commands = parser.add_subparsers(dest="pipeline_command", metavar="COMMAND", required=True)
    run = commands.add_parser("run", help="run a pipeline now (its Dagster job)")
    run.add_argument("name", metavar="NAME")
    run.add_argument("--json", action="store_true")
    run.set_defaults(handler=_run)
    runs = commands.add_parser("runs", help="list the last runs of a pipeline")
    runs.add_argument("name", metavar="NAME")
    runs.add_argument("--limit", type=int, default=20)
    runs.add_argument("--json", action="store_true")
    runs.set_defaults(handler=_runs)
    prev = commands.add_parser("preview", help="print each node's first rows; write nothing")
    prev.add_argument("name", metavar="NAME")
    prev.add_argument("--rows", type=int, default=10)
    prev.add_argument("--node", metavar="ID")
    prev.add_argument("--json", action="store_true")
    prev.set_defaults(handler=_preview)


def register_rollback(registry_commands: Any) -> None:
    """Add ``registry rollback REV [--dry-run]`` to the ``registry`` subcommands."""
    rb = registry_commands.add_parser(
        "rollback", help="return the registry to a revision's content (as a new revision)"
    )
    rb.add_argument("revision", type=int, metavar="REV")
    rb.add_argument("--dry-run", action="store_true", help="print the diff, write nothing")
    rb.add_argument("--actor", help="who rolls back (default: the OS user)")
    rb.set_defaults(handler=_rollback)
