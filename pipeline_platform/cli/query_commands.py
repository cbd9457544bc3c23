"""Read commands over the registry (spec §6): flows, stages, topics, topology, lineage...

Each command loads the registry named by ``PIPELINE_REGISTRY_URL`` (or, as the Dagster code
location does, the file named by ``PIPELINE_REGISTRY_FILE`` when set), asks one question of
:mod:`pipeline_platform.registry.queries` and prints the answer as a plain table, or with
``--json`` as exactly the JSON the HTTP API serves (spec §10; the same serializer).
An unknown flow, topic or service is a one-line error with exit code 1.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pipeline_platform.cli.output import CommandError, print_json, print_table
from pipeline_platform.config import Settings, load_settings
from pipeline_platform.registry import queries
from pipeline_platform.registry.document import DEFAULT_DATA_SOURCE
from pipeline_platform.registry.rules import table_asset_name

if TYPE_CHECKING:
    from pipeline_platform.registry.document import RegistryDocument


def load_registry_document(settings: Settings) -> RegistryDocument:
    """Read the registry snapshot the Dagster code location would read.

    Args:
        settings: Runtime settings; ``registry_file`` (``PIPELINE_REGISTRY_FILE``) when set,
            else ``registry_url`` names the registry database.

    Returns:
        The registry as a document.

    Raises:
        CommandError: when the registry file is refused, or the registry database cannot be
            read (unreachable, not initialised).
    """
    if settings.registry_file is not None:
        from pipeline_platform.registry.validation import RegistryValidationError, load_document

        try:
            return load_document(settings.registry_file)
        except RegistryValidationError as error:
            raise CommandError(*(str(p) for p in error.problems)) from None

    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from pipeline_platform.registry.database import create_registry_engine
    from pipeline_platform.registry.store import read_document

    engine = create_registry_engine(settings.registry_url)
    try:
        return read_document(engine)
    except SQLAlchemyError as error:
        where = make_url(settings.registry_url).render_as_string(hide_password=True)
        reason = str(getattr(error, "orig", None) or error).splitlines()[0]
        raise CommandError(
            f"cannot read the registry at {where}: {reason} "
            "(run 'pipeline-platform registry init' or 'registry import FILE' first)"
        ) from None
    finally:
        engine.dispose()


def _document() -> RegistryDocument:
    # Looked up through the module so tests can replace the loader.
    return load_registry_document(load_settings())


def _ask(question: Callable[[], Any]) -> Any:
    try:
        return question()
    except LookupError as error:
        raise CommandError(str(error.args[0] if error.args else error)) from None


def _flows(args: argparse.Namespace) -> int:
    result = queries.flows(_document())
    if args.json:
        print_json(result)
        return 0
    print_table(_FLOW_HEADERS, _flow_rows(result["flows"]))
    return 0


_FLOW_HEADERS = ("flow", "priority", "active", "stages", "topics", "description")


def _flow_rows(flows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [
        (
            f["flow_name"],
            f["priority"],
            f.get("active"),
            f["stage_count"],
            f.get("topic_count"),
            f["description"],
        )
        for f in flows
    ]


def _stage_rows(flow: str | None, stages: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [
        (
            s.get("flow_name", flow),
            s.get("stage_order", order),
            s["stage_name"],
            s.get("service_name"),
            s["input_topics"],
            s["output_topics"],
            s.get("error_topics"),
        )
        for order, s in enumerate(stages, start=1)
    ]


_STAGE_HEADERS = ("flow", "order", "stage", "service", "inputs", "outputs", "errors")


def _flow(args: argparse.Namespace) -> int:
    doc = _document()
    result = _ask(lambda: queries.flow(doc, args.name))
    if args.json:
        print_json(result)
        return 0
    print_table(_FLOW_HEADERS, _flow_rows([result["flow"]]))
    print()
    print_table(_STAGE_HEADERS, _stage_rows(args.name, result["stages"]))
    return 0


def _stages(args: argparse.Namespace) -> int:
    doc = _document()
    result = _ask(lambda: queries.stages(doc, args.flow))
    if args.json:
        print_json(result)
        return 0
    print_table(_STAGE_HEADERS, _stage_rows(None, result["stages"]))
    return 0


def _topics(args: argparse.Namespace) -> int:
    doc = _document()
    result = queries.topics(doc)
    if args.json:
        print_json(result)
        return 0
    topology = queries.topology(doc)
    producers, consumers = topology["topic_producers"], topology["topic_consumers"]
    print_table(
        ("topic", "partitions", "retention", "table", "endpoints", "producers", "consumers"),
        (
            (
                t["topic_name"],
                t["partitions"],
                t["retention_days"],
                _table_label(t),
                t["primary_endpoints"],
                producers.get(t["topic_name"], []),
                consumers.get(t["topic_name"], []),
            )
            for t in result["topics"]
        ),
    )
    return 0


def _table_label(topic: dict[str, Any]) -> str | None:
    if topic["table_name"] is None:
        return None
    return table_asset_name(topic.get("data_source", DEFAULT_DATA_SOURCE), topic["table_name"])


def _topology(args: argparse.Namespace) -> int:
    result = queries.topology(_document())
    if args.json:
        print_json(result)
        return 0
    print_table(
        ("topic", "producers", "consumers"),
        (
            (
                t["topic_name"],
                result["topic_producers"].get(t["topic_name"], []),
                result["topic_consumers"].get(t["topic_name"], []),
            )
            for t in result["topics"]
        ),
    )
    return 0


def _dependencies(args: argparse.Namespace) -> int:
    result = queries.dependencies(_document())
    if args.json:
        print_json(result)
        return 0
    print_table(
        ("source service", "target service", "via topics"),
        (
            (d["source_service"], d["target_service"], d["via_topics"])
            for d in result["dependencies"]
        ),
    )
    return 0


def _lineage(args: argparse.Namespace) -> int:
    doc = _document()
    result = _ask(lambda: queries.lineage(doc, args.topic))
    if args.json:
        print_json(result)
        return 0
    rows: list[tuple[Any, ...]] = []
    for path in result["apiEndpoints"]:
        rows.append(("api endpoint", path, None, None))
    for ref in result["producers"]:
        rows.append(("producer", ref["service"], ref["flow"], ref["stage"]))
    for ref in result["consumers"]:
        rows.append(("consumer", ref["service"], ref["flow"], ref["stage"]))
    if result["storageTable"] is not None:
        rows.append(("storage table", _table_label(result["topic"]), None, None))
    print(f"topic: {result['topic']['topic_name']}")
    print_table(("role", "name", "flow", "stage"), rows)
    return 0


def _service(args: argparse.Namespace) -> int:
    doc = _document()
    result = _ask(lambda: queries.service(doc, args.name))
    if args.json:
        print_json(result)
        return 0
    print(f"service: {result['service_name']}")
    print_table(
        ("flow", "stage", "inputs", "outputs"),
        (
            (s["flow_name"], s["stage_name"], s["input_topics"], s["output_topics"])
            for s in result["stages"]
        ),
    )
    return 0


def register(subparsers: Any) -> None:
    """Register the read commands on the ``pipeline-platform`` parser.

    Args:
        subparsers: The object returned by ``ArgumentParser.add_subparsers``.
    """

    def command(name: str, handler: Callable[[argparse.Namespace], int], help_text: str) -> Any:
        parser = subparsers.add_parser(name, help=help_text, description=help_text)
        parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
        parser.set_defaults(handler=handler)
        return parser

    command("flows", _flows, "List processing flows.")
    command("flow", _flow, "Show a flow and its stages.").add_argument("name", metavar="NAME")
    command("stages", _stages, "List processing stages.").add_argument(
        "--flow", metavar="NAME", help="only the stages of this flow"
    )
    command("topics", _topics, "List Kafka topics with their tables, producers and consumers.")
    command("topology", _topology, "Show the graph endpoint → topic → service → topic → table.")
    command("dependencies", _dependencies, "Show which services depend on which.")
    command("lineage", _lineage, "Show what produces, consumes and stores a topic.").add_argument(
        "topic", metavar="TOPIC"
    )
    command("service", _service, "Show the stages a service runs.").add_argument(
        "name", metavar="NAME"
    )
