"""A packed ingestion run over worker processes: real broker, PostgreSQL and Dagster.

Several tables in one run are ingested in forked worker processes
(``pipeline_platform.ingestion.processes``); what a worker learns must still reach the run:
rows, materializations, a retention warning and a table's one-line failure.
"""

from __future__ import annotations

import dagster as dg
import psycopg

from pipeline_platform.warehouse import postgres_conninfo
from pipeline_platform_tests.integration.test_monitoring_checks import (
    fill,
    ingest,
    make_topic,
    translate,
)


def test_packed_run_reports_what_its_workers_did(
    kafka_bootstrap: str,
    postgres_url: str,
    forks: list[int],
) -> None:
    good, lossy, broken = make_topic(), make_topic(), make_topic()
    assert good.table and lossy.table and broken.table
    with dg.instance_for_test() as instance:
        fill(kafka_bootstrap, lossy, 10, partition=2)
        assert ingest(translate(lossy), instance, postgres_url, kafka_bootstrap).success
        assert forks == []  # a run of one table stays in its process
        fill(kafka_bootstrap, lossy, 8_000, partition=2, size=1_000)  # ~8 MB > ~5 MB kept
        for partition in range(4):
            fill(kafka_bootstrap, good, 250, partition=partition)
        fill(kafka_bootstrap, broken, 5)
        with psycopg.connect(postgres_conninfo(postgres_url), autocommit=True) as conn:
            conn.execute(f"CREATE TABLE {broken.table.name} (id bigint, v integer)")

        result = ingest(translate(good, lossy, broken), instance, postgres_url, kafka_bootstrap)

        assert forks == [3]
        assert not result.success
        done = {
            m.asset_key.path[-1]: m.metadata
            for m in result.asset_materializations_for_node("ingest_tables")
        }
        assert set(done) == {good.table.name, lossy.table.name}
        assert done[good.table.name]["rows_written"].value == 1_000
        lost = done[lossy.table.name]["messages_lost_to_retention"].value
        assert lost > 1_000
        messages = [e.user_message for e in instance.all_logs(result.run_id) if e.user_message]
        warned = [m for m in messages if "were deleted by retention" in m]
        assert len(warned) == 1 and f"{lost} messages (offsets 10.." in warned[0]
        name = broken.table.name
        assert (
            f"Ingestion of warehouse/{name} failed: column v of {name} is integer, the "
            "registry says string: run `pipeline-platform warehouse migrate`" in messages
        )
    with psycopg.connect(postgres_conninfo(postgres_url)) as conn:
        assert conn.execute(f"SELECT count(*) FROM {good.table.name}").fetchone() == (1_000,)
