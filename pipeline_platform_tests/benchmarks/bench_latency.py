"""Benchmark: produce → row visible in ``pipeline-platform dev`` (the Kafka sensor path).

Run: ``.venv/bin/python -m pipeline_platform_tests.benchmarks.bench_latency [--messages 200]
[--seconds 120] [--events-per-second 20]``

Starts ``pipeline-platform dev`` (its own local broker, the demo registry, ``dagster dev`` with
the daemon, the Kafka sensor running with its dev interval of 10 s) on a private PostgreSQL
warehouse (or ``PIPELINE_TEST_POSTGRES_URL``), with the demo producer as background load. Then
it produces ``--messages`` probe Wi-Fi scans, evenly spread over ``--seconds``, each with a
unique device id, and polls the warehouse table every 0.2 s for them. Prints p50 / p95 / max
of produce → row visible (goal p95 ≤ 15 s) beside the floor of the same run: half the sensor
interval (the mean wait for the next tick) plus the median time of the stack's ingestion runs
from request to end (queue, launch of the run process, run), and the ratio.
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time
import uuid
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from tempfile import TemporaryDirectory

import orjson
import psycopg
from confluent_kafka import Producer

from pipeline_platform.dev.stack import DEV_ENVIRONMENT
from pipeline_platform.warehouse import postgres_conninfo
from pipeline_platform_tests.e2e.graphql_client import graphql
from pipeline_platform_tests.e2e.local_stack import assert_ctrl_c_stops_everything, start_dev_stack
from pipeline_platform_tests.servers import create_database, private_postgres

TOPIC = "device.network.wifi.raw"
TABLE = "device_network_wifi_raw"
RUN_TIMES_QUERY = """
query Runs($limit: Int) {
  runsOrError(filter: {tags: [{key: "dagster/sensor_name", value: "kafka_lag_sensor"}],
                       statuses: [SUCCESS]}, limit: $limit) {
    ... on Runs { results { creationTime startTime endTime } }
  }
}
"""


def bootstrap_of(log: Path, timeout: float = 60.0) -> str:
    """Return the local broker address the stack printed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith("local broker at "):
                return line.split()[3]
        time.sleep(0.5)
    raise TimeoutError("the stack did not report its broker")


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(share * len(ordered)) - 1))]


def watch(conninfo: str, prefix: str, seen: dict[str, float], stop: threading.Event) -> None:
    """Record when each probe row first becomes visible."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        while not stop.is_set():
            try:
                rows = conn.execute(
                    f"SELECT device_id FROM {TABLE} WHERE device_id LIKE %s", (prefix + "%",)
                ).fetchall()
            except psycopg.errors.UndefinedTable:
                rows = []
            now = time.time()
            for (device,) in rows:
                seen.setdefault(device, now)
            stop.wait(0.2)


def main() -> None:
    """Run the probe and print the latency figures."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--events-per-second", type=float, default=20.0)
    parser.add_argument("--drain", type=float, default=60.0, help="seconds to wait at the end")
    args = parser.parse_args()
    with ExitStack() as stack:
        admin = os.environ.get("PIPELINE_TEST_POSTGRES_URL") or stack.enter_context(
            private_postgres()
        )
        warehouse_url = create_database(admin, prefix="latency")
        home = Path(stack.enter_context(TemporaryDirectory(prefix="bench-latency-")))
        dev = start_dev_stack(
            home / "home", warehouse_url, events_per_second=args.events_per_second
        )
        stack.callback(dev.kill)
        stack.callback(assert_ctrl_c_stops_everything, dev)
        bootstrap = bootstrap_of(dev.log_path)
        prefix = f"probe-{uuid.uuid4().hex[:6]}-"
        seen: dict[str, float] = {}
        stop = threading.Event()
        watcher = threading.Thread(
            target=watch, args=(postgres_conninfo(warehouse_url), prefix, seen, stop), daemon=True
        )
        watcher.start()
        producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
        produced: dict[str, float] = {}
        gap = args.seconds / max(1, args.messages)
        started = time.time()
        for n in range(args.messages):
            time.sleep(max(0.0, started + n * gap - time.time()))
            device = f"{prefix}{n:04d}"
            value = {
                "device_id": device,
                "recorded_at": datetime.now(UTC).isoformat(),
                "payload": {"ssid": "probe", "rssi": -40},
            }
            producer.produce(TOPIC, value=orjson.dumps(value), key=device.encode())
            producer.flush(10)
            produced[device] = time.time()
        deadline = time.time() + args.drain
        while len(seen) < len(produced) and time.time() < deadline:
            time.sleep(0.5)
        stop.set()
        watcher.join(timeout=10)
        latencies = [seen[d] - t for d, t in produced.items() if d in seen]
        missing = len(produced) - len(latencies)
        data = graphql(dev.url, RUN_TIMES_QUERY, {"limit": 200})["runsOrError"]["results"]
        finished = [r for r in data if r["endTime"] and r["startTime"]]
        durations = [r["endTime"] - r["startTime"] for r in finished]
        cycles = [r["endTime"] - r["creationTime"] for r in finished]  # queue + launch + run
        run_median = statistics.median(durations) if durations else float("nan")
        cycle_median = statistics.median(cycles) if cycles else float("nan")
        interval = float(DEV_ENVIRONMENT["PIPELINE_KAFKA_SENSOR_INTERVAL"])
        floor = interval / 2 + cycle_median
        print(
            f"{len(produced)} probes over {args.seconds:.0f} s with demo load "
            f"{args.events_per_second:g} events/s; {missing} not visible after "
            f"{args.drain:.0f} s"
        )
        if latencies:
            p50, p95 = percentile(latencies, 0.50), percentile(latencies, 0.95)
            print(
                f"produce → row visible: p50 {p50:.1f} s, p95 {p95:.1f} s (goal ≤ 15 s), "
                f"max {max(latencies):.1f} s"
            )
            print(
                f"floor of the same run: sensor interval {interval:g} s / 2 + median sensor "
                f"run from request to end {cycle_median:.1f} s (of which running "
                f"{run_median:.1f} s; {len(durations)} runs) = {floor:.1f} s; "
                f"p50 / floor = {p50 / floor:.2f}"
            )


if __name__ == "__main__":
    main()
