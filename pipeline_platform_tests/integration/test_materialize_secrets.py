"""A run whose table is not migrated fails with one line; the warehouse password never leaks.

Real parts: the Dagster CLI in its own process, a SQLite registry, PostgreSQL (trust auth, so the
password in the URL is accepted and ignored), the mock broker.
"""

from __future__ import annotations

import psycopg

from pipeline_platform_tests.integration.test_materialize_cli import (
    ASSET,
    TOPIC,
    environment,
    materialize,
    wifi,
)
from pipeline_platform_tests.kafka import produce

__all__ = ["environment"]  # the fixture, imported for this module

PASSWORD = "pw-Xq7-never-logged"


def test_unmigrated_column_fails_in_one_line_without_the_password(
    environment: dict[str, str], postgres_url: str, kafka_bootstrap: str
) -> None:
    env = {
        **environment,
        "PIPELINE_WAREHOUSE_URL": postgres_url.replace("postgres@", f"postgres:{PASSWORD}@"),
    }
    produce(kafka_bootstrap, TOPIC, [(None, b"dev-1", wifi(1, 1, -40))])
    first = materialize(env)
    assert first.returncode == 0, first.stderr[-3000:]
    # Someone changes the column by hand: the registry still says integer.
    conninfo = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(
            "ALTER TABLE device_network_wifi_raw ALTER COLUMN signal_dbm TYPE boolean "
            "USING signal_dbm <> 0"
        )
    produce(kafka_bootstrap, TOPIC, [(None, b"dev-2", wifi(2, 2, -41))])
    second = materialize(env)
    assert second.returncode != 0
    reason = (
        "column signal_dbm of device_network_wifi_raw is boolean, the registry says integer: "
        "run `pipeline-platform warehouse migrate`"
    )
    output = first.stdout + first.stderr + second.stdout + second.stderr
    assert reason in output
    assert "InvalidBinaryRepresentation" not in output
    assert PASSWORD not in output

    import dagster as dg
    from dagster._core.instance.ref import InstanceRef
    from dagster._serdes import serialize_value

    ref = InstanceRef.from_dir(env["DAGSTER_HOME"])
    with dg.DagsterInstance.from_ref(ref) as instance:
        runs = instance.get_runs()
        assert len(runs) == 2
        logged = []
        for run in runs:
            logged.append(serialize_value(run))
            logged.extend(serialize_value(event) for event in instance.all_logs(run.run_id))
        records = "\n".join(logged)
    assert reason in records
    assert PASSWORD not in records
    assert ASSET.split("/")[1] in records
