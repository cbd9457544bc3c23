"""Benchmark: what one ingestion run costs through ``dagster asset materialize``.

Run: ``.venv/bin/python -m pipeline_platform_tests.benchmarks.bench_run_overhead [--repeat N]
[--big N] [--tables N --per-table N]``

Starts the mock broker in its own process and a private PostgreSQL (or
``PIPELINE_TEST_POSTGRES_URL``); the registry is a SQLite database, the Dagster instance a fresh
``DAGSTER_HOME``. In the same run it measures, each through ``dagster asset materialize`` in its
own process (as a user or a run worker pays it):

- the start-up baseline: a trivial one-asset project with the in-process executor
  (:mod:`.trivial_asset`), alternating with
- a 1-message ingestion run (``--repeat`` times each, medians);
- a 100,000-message run of one table;
- one run over 4 tables x 50,000 messages;
- the limit of the same data: a plain confluent-kafka consumer (``assign`` +
  ``consume(10000)``) and a plain binary COPY of the mapped rows (the limit is the slower of
  the two; both one after the other is printed too).

For each run it prints the wall time, the phases from Dagster's events (process start → run
start, step start → step success, run success → process exit), net msg/s (messages / step time)
and gross msg/s (messages / wall time), and the ratios to the baseline and the limit.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from tempfile import TemporaryDirectory

from pipeline_platform.ingestion.decode import DecodeOptions, compile_validator, transform_batch
from pipeline_platform.ingestion.mapping import compile_mapping
from pipeline_platform.ingestion.tables import table_spec_of
from pipeline_platform.registry.document import RegistryDocument, Topic
from pipeline_platform.warehouse import postgres_conninfo
from pipeline_platform.warehouse.postgres import PostgresWarehouse
from pipeline_platform.warehouse.postgres_write import copy_rows
from pipeline_platform_tests.benchmarks.bench_ingest_core import wifi_topic
from pipeline_platform_tests.benchmarks.bench_ingest_e2e import plain_consume, small_message
from pipeline_platform_tests.kafka import mock_broker, produce
from pipeline_platform_tests.servers import create_database, private_postgres

PARTITIONS = 4
OURS = ["-m", "pipeline_platform.definitions"]
TRIVIAL = ["-m", "pipeline_platform_tests.benchmarks.trivial_asset", "-a", "in_process"]


@dataclass(frozen=True)
class RunFigures:
    """One ``dagster asset materialize`` process and its run's events."""

    wall: float  # process spawn → exit
    before_run: float  # spawn → RUN_START (imports, definitions load, run creation)
    step: float  # first STEP_START → last STEP_SUCCESS
    after_run: float  # RUN_SUCCESS → process exit
    messages: int  # sum of the ``messages`` metadata of the materializations

    @property
    def start_up(self) -> float:
        """Everything but the step: what a run costs beyond its work."""
        return self.wall - self.step


def materialize(env: dict[str, str], target: list[str], select: str) -> RunFigures:
    """Run ``dagster asset materialize`` and read its run's events from the instance."""
    command = [sys.executable, "-m", "dagster", "asset", "materialize", *target, "--select", select]
    spawned = time.time()
    out = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    exited = time.time()
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{out.stderr[-3000:]}")
    return run_figures(env["DAGSTER_HOME"], spawned, exited)


def run_figures(home: str, spawned: float, exited: float) -> RunFigures:
    """Read the phases of the latest run of the instance in ``home``."""
    import dagster as dg
    from dagster._core.instance.ref import InstanceRef

    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(home)) as instance:
        [run] = instance.get_runs(limit=1)
        times: dict[str, list[float]] = {}
        messages = 0
        for entry in instance.all_logs(run.run_id):
            event = entry.dagster_event
            if event is None:
                continue
            times.setdefault(event.event_type_value, []).append(entry.timestamp)
            if event.is_step_materialization:
                metadata = event.step_materialization_data.materialization.metadata
                if "messages" in metadata:
                    messages += int(metadata["messages"].value)  # type: ignore[arg-type]
    return RunFigures(
        wall=exited - spawned,
        before_run=min(times["PIPELINE_START"]) - spawned,
        step=max(times["STEP_SUCCESS"]) - min(times["STEP_START"]),
        after_run=exited - max(times["PIPELINE_SUCCESS"]),
        messages=messages,
    )


def bench_topics(big: int, tables: int) -> dict[str, Topic]:
    """The benchmark topics: ``one`` (1 message), ``big`` and ``t1``..``tN``, by table name."""
    names = ["one", "big", *(f"t{i + 1}" for i in range(tables))]
    topics = {}
    for name in names:
        topic = wifi_topic(f"bench_{name}").model_copy(update={"name": f"bench.run.{name}"})
        topics[name] = topic
    return topics


def setup_registry(path: Path, topics: dict[str, Topic]) -> str:
    """Create a SQLite registry holding ``topics``; return its URL."""
    from pipeline_platform.registry.database import create_registry_engine, upgrade_registry
    from pipeline_platform.registry.store import import_document

    url = f"sqlite:///{path}"
    engine = create_registry_engine(url)
    upgrade_registry(engine)
    import_document(engine, RegistryDocument(topics=tuple(topics.values())), actor="bench")
    engine.dispose()
    return url


def fill(bootstrap: str, topic: str, count: int, offset: int = 0) -> list[bytes]:
    """Produce ``count`` messages round robin over the partitions; return them."""
    values = [small_message(offset + n) for n in range(count)]
    produce(bootstrap, topic, [(n % PARTITIONS, None, v) for n, v in enumerate(values)])
    return values


def plain_copy(url: str, topic: Topic, values: list[bytes], batch: int = 50_000) -> float:
    """Seconds to COPY the mapped rows of ``values`` into an empty table (mapping not timed)."""
    assert topic.table is not None
    mapping = compile_mapping(topic.table)
    validator = compile_validator(topic.json_schema)
    chunks = []
    for start in range(0, len(values), batch):
        chunk = [(0, i, None, v) for i, v in enumerate(values[start : start + batch])]
        chunks.append(transform_batch(chunk, mapping, validator, DecodeOptions()).rows)
    table = topic.table.model_copy(update={"name": f"{topic.table.name}_copy"})
    warehouse = PostgresWarehouse(postgres_conninfo(url))
    target = warehouse.ensure_table(table_spec_of(table))
    started = time.perf_counter()
    for rows in chunks:
        with warehouse.conn.transaction():
            copy_rows(warehouse.conn, target.qualified, target, rows)
    seconds = time.perf_counter() - started
    warehouse.close()
    return seconds


def describe(label: str, figures: RunFigures) -> str:
    """One line of figures for a run."""
    line = (
        f"{label}: wall {figures.wall:.2f} s = before run {figures.before_run:.2f} + step "
        f"{figures.step:.2f} + rest; start-up (wall - step) {figures.start_up:.2f} s"
    )
    if figures.messages > 1:
        line += (
            f"; {figures.messages:,} messages: net {figures.messages / figures.step:,.0f} msg/s, "
            f"gross {figures.messages / figures.wall:,.0f} msg/s"
        )
    return line


def main() -> None:
    """Run the benchmark and print figures, baselines and ratios."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3, help="1-message and trivial runs each")
    parser.add_argument("--big", type=int, default=100_000, help="messages of the one-table run")
    parser.add_argument("--tables", type=int, default=4)
    parser.add_argument("--per-table", type=int, default=50_000)
    args = parser.parse_args()
    with ExitStack() as stack:
        bootstrap = stack.enter_context(mock_broker())
        admin = os.environ.get("PIPELINE_TEST_POSTGRES_URL") or stack.enter_context(
            private_postgres()
        )
        warehouse_url = create_database(admin, prefix="bench")
        work = Path(stack.enter_context(TemporaryDirectory(prefix="bench-run-")))
        home = work / "home"
        home.mkdir()
        (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        topics = bench_topics(args.big, args.tables)
        env = {
            **os.environ,
            "DAGSTER_HOME": str(home),
            "PIPELINE_REGISTRY_URL": setup_registry(work / "registry.db", topics),
            "PIPELINE_WAREHOUSE_URL": warehouse_url,
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        }
        key = "warehouse/bench_{}".format

        # Start-up: trivial in-process run and 1-message run, alternating (same load).
        fill(bootstrap, topics["one"].name, 1)
        materialize(env, OURS, key("one"))  # first run creates the tables; not counted
        trivial_runs, one_runs = [], []
        for n in range(args.repeat):
            trivial_runs.append(materialize(env, TRIVIAL, "trivial"))
            fill(bootstrap, topics["one"].name, 1, offset=n + 1)
            one = materialize(env, OURS, key("one"))
            assert one.messages == 1, one
            one_runs.append(one)
        for label, runs in (
            ("trivial one-asset (in-process)", trivial_runs),
            ("1 message", one_runs),
        ):
            for i, figures in enumerate(runs):
                print(describe(f"{label} #{i + 1}", figures))
        trivial_wall = statistics.median(r.wall for r in trivial_runs)
        one_wall = statistics.median(r.wall for r in one_runs)
        one_step = statistics.median(r.step for r in one_runs)
        print(
            f"median wall: trivial {trivial_wall:.2f} s, 1-message run {one_wall:.2f} s "
            f"(step {one_step:.2f} s); 1-message / trivial = {one_wall / trivial_wall:.2f} "
            "(goal ≤ 1.3; start-up goal ≤ 3 s)"
        )

        # Throughput: one table of --big messages, then --tables tables in one run.
        fill(bootstrap, topics["big"].name, args.big)
        big = materialize(env, OURS, key("big"))
        assert big.messages == args.big, big
        print(describe(f"1 table x {args.big:,}", big))
        names = [f"t{i + 1}" for i in range(args.tables)]
        values = {name: fill(bootstrap, topics[name].name, args.per_table) for name in names}
        packed = materialize(env, OURS, ",".join(key(name) for name in names))
        total = args.tables * args.per_table
        assert packed.messages == total, packed
        print(describe(f"{args.tables} tables x {args.per_table:,} in one run", packed))

        # Best of three fresh consumers (connection and first fetch are timed with the read).
        consume_seconds = min(
            plain_consume(bootstrap, [topics[n].name for n in names], total) for _ in range(3)
        )
        copy_seconds = sum(plain_copy(warehouse_url, topics[n], values[n]) for n in names)
        consume_rate, copy_rate = total / consume_seconds, total / copy_seconds
        limit = min(consume_rate, copy_rate)  # the slower of the two, as in bench_ingest_e2e
        serial = total / (consume_seconds + copy_seconds)
        print(
            f"limit of the same {total:,} messages: plain consumer {consume_rate:,.0f} msg/s, "
            f"plain COPY {copy_rate:,.0f} msg/s → limit (the slower) {limit:,.0f} msg/s; "
            f"one after the other {serial:,.0f} msg/s"
        )
        print()
        for label, figures in ((f"1 table x {args.big:,}", big), (f"{args.tables} tables", packed)):
            net = figures.messages / figures.step
            gross = figures.messages / figures.wall
            print(
                f"{label}: net / limit = {net / limit:.2f}, gross / limit = {gross / limit:.2f}"
                + (" (goal ≥ 0.3 net)" if figures is packed else "")
                + f"; net / consume-then-COPY = {net / serial:.2f}"
            )
        print(
            f"start-up: 1-message run {one_wall:.2f} s vs trivial {trivial_wall:.2f} s "
            f"= {one_wall / trivial_wall:.2f} x"
        )


if __name__ == "__main__":
    main()
