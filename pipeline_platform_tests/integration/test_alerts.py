"""Alert sensors against real receivers on loopback and real Dagster runs.

A failing run and an ERROR check (in a run, and reported without a run) reach a webhook served
by ``http.server`` and an SMTP server (aiosmtpd) with a password; a second alert with the same
subject and cause within the hour is suppressed; a dead webhook leaves the run as it was and is
a one-line warning in which neither the webhook URL nor the SMTP password appear.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import replace

import dagster as dg
import pytest

from pipeline_platform.config import AlertSettings, load_alert_settings
from pipeline_platform.factory import naming
from pipeline_platform.factory.alert_sensors import (
    CHECK_ERROR_SENSOR_NAME,
    RUN_FAILURE_SENSOR_NAME,
    build_alert_sensors,
    evaluate_check_errors,
    evaluate_run_failure,
)
from pipeline_platform.monitoring.alerts import Alert, Throttle, deliver, send_throttled
from pipeline_platform_tests.alert_servers import free_port, smtp_server, webhook_server

DAGSTER_URL = "http://dagster.test:3000"
TOKEN = "T0KEN-s3cret-path"
PASSWORD = "p@ss-w0rd!"
WRONG = "wr0ng-pa55"
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as test_instance:
        yield test_instance


@dg.op
def explode() -> None:
    raise RuntimeError("warehouse refused the batch")


@dg.job
def ingestion() -> None:
    explode()


def _failed_run(instance: dg.DagsterInstance, table: str) -> dg.ExecuteInProcessResult:
    result = ingestion.execute_in_process(
        instance=instance, raise_on_error=False, tags={naming.TABLE_TAG: table}
    )
    assert not result.success
    return result


def _run_failure_context(
    instance: dg.DagsterInstance, result: dg.ExecuteInProcessResult
) -> dg.RunFailureSensorContext:
    return dg.build_run_status_sensor_context(
        sensor_name=RUN_FAILURE_SENSOR_NAME,
        dagster_event=result.get_run_failure_event(),
        dagster_instance=instance,
        dagster_run=result.dagster_run,
    ).for_run_failure()


def _checked_asset(severity: dg.AssetCheckSeverity) -> dg.AssetsDefinition:
    @dg.asset(
        key=["warehouse", "orders"],
        check_specs=[dg.AssetCheckSpec("max_lag_messages", asset=["warehouse", "orders"])],
    )
    def orders() -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
        yield dg.MaterializeResult()
        yield dg.AssetCheckResult(
            check_name="max_lag_messages",
            passed=False,
            severity=severity,
            metadata={"lag_left": 500, "max_lag_messages": 100},
        )

    return orders


def test_settings_are_off_when_unset_and_hide_secrets() -> None:
    assert not load_alert_settings({}).enabled
    assert build_alert_sensors(load_alert_settings({})) == []
    settings = load_alert_settings(
        {
            "PIPELINE_ALERT_WEBHOOK_URL": f"http://hooks.test/{TOKEN}",
            "PIPELINE_ALERT_SMTP_URL": f"smtp://alerts:{PASSWORD}@mail.test:25",
            "PIPELINE_ALERT_EMAIL_TO": "ops@test, oncall@test",
            "PIPELINE_DAGSTER_URL": f"{DAGSTER_URL}/",
        }
    )
    assert settings.enabled and settings.email_to == ("ops@test", "oncall@test")
    assert settings.dagster_url == DAGSTER_URL
    assert TOKEN not in repr(settings) and PASSWORD not in repr(settings)
    names = sorted(s.name for s in build_alert_sensors(settings))
    assert names == [CHECK_ERROR_SENSOR_NAME, RUN_FAILURE_SENSOR_NAME]
    # E-mail alone (no webhook) is enabled too; a recipient without an SMTP URL is not.
    assert load_alert_settings({"PIPELINE_ALERT_EMAIL_TO": "ops@test"}).enabled is False


def test_failed_run_posts_webhook_and_email_once_per_hour(
    instance: dg.DagsterInstance,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    with webhook_server() as (base, posts), smtp_server("alerts", PASSWORD) as (port, mails):
        settings = AlertSettings(
            webhook_url=f"{base}/hooks/{TOKEN}",
            smtp_url=f"smtp://alerts:{PASSWORD.replace('@', '%40')}@127.0.0.1:{port}",
            email_to=("ops@example.test",),
            dagster_url=DAGSTER_URL,
        )
        first = _failed_run(instance, "warehouse/orders")
        sensor = build_alert_sensors(settings)[0]
        assert sensor.name == RUN_FAILURE_SENSOR_NAME
        sensor(_run_failure_context(instance, first))  # the sensor's own function
        assert len(posts) == 1 and posts[0]["path"] == f"/hooks/{TOKEN}"
        assert posts[0]["content_type"] == "application/json"
        text = posts[0]["body"]["text"]
        assert text.startswith("Run failed: job ingestion (warehouse/orders): ")
        assert "warehouse refused the batch" in text
        assert text.endswith(f"{DAGSTER_URL}/runs/{first.run_id}")
        assert len(mails) == 1
        mail = mails[0]
        assert mail["To"] == "ops@example.test" and "Run failed" in mail["Subject"]
        assert f"{DAGSTER_URL}/runs/{first.run_id}" in mail.get_payload()
        # The same table failing again within the hour: suppressed; another table: sent.
        again = _failed_run(instance, "warehouse/orders")
        assert evaluate_run_failure(_run_failure_context(instance, again), settings) == []
        other = _failed_run(instance, "warehouse/customers")
        sent = evaluate_run_failure(_run_failure_context(instance, other), settings)
        assert [a.subject for a in sent] == ["warehouse/customers"]
        assert len(posts) == 2 and len(mails) == 2
        # An hour later the same cause alerts again.
        later = evaluate_run_failure(
            _run_failure_context(instance, again), settings, now=time.time() + 3601
        )
        assert [a.subject for a in later] == ["warehouse/orders"] and len(posts) == 3
        # A refused SMTP login is a one-line problem without the password or the URLs.
        wrong = replace(settings, smtp_url=f"smtp://alerts:{WRONG}@127.0.0.1:{port}")
        problems = deliver(wrong, Alert("warehouse/orders", "run failure", "test"))
        assert len(problems) == 1 and problems[0].startswith(
            "alert email for warehouse/orders (run failure) failed: SMTPAuthenticationError"
        )
        assert WRONG not in problems[0] and TOKEN not in problems[0]
    logged = capfd.readouterr().err + caplog.text
    assert TOKEN not in logged and PASSWORD not in logged


def test_error_check_alerts_and_dead_webhook_leaves_the_run_alone(
    instance: dg.DagsterInstance,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    dead = f"http://127.0.0.1:{free_port()}/hooks/{TOKEN}"
    settings = AlertSettings(webhook_url=dead, dagster_url=DAGSTER_URL)
    defs = dg.Definitions(
        assets=[_checked_asset(dg.AssetCheckSeverity.ERROR)],
        sensors=build_alert_sensors(settings),
    )
    result = defs.get_implicit_global_asset_job_def().execute_in_process(instance=instance)
    assert result.success  # a failed (non-blocking) ERROR check does not fail the run
    sensor = defs.resolve_sensor_def(CHECK_ERROR_SENSOR_NAME)
    tick = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, definitions=defs))
    assert tick.skip_message is not None
    assert "1 alert(s) sent" in tick.skip_message and "1 delivery failure(s)" in tick.skip_message
    run = instance.get_run_by_id(result.run_id)
    assert run is not None and run.status == dg.DagsterRunStatus.SUCCESS
    # The sensor log (Dagster's logger writes to stderr): one line, no URL, no token.
    logged = capfd.readouterr().err + caplog.text
    failures = [
        line for line in logged.splitlines() if "alert webhook for warehouse/orders" in line
    ]
    assert len(failures) == 1 and "WARNING" in failures[0]
    assert failures[0].endswith("failed: URLError: <urlopen error [Errno 111] Connection refused>")
    assert TOKEN not in logged and "127.0.0.1" not in failures[0]
    assert TOKEN not in tick.skip_message

    # The live webhook gets the ERROR check with the asset's checks link, once per hour.
    with webhook_server() as (base, posts):
        live = AlertSettings(webhook_url=f"{base}/hook", dagster_url=DAGSTER_URL)
        context = dg.build_sensor_context(instance=instance, definitions=defs)
        later = time.time()
        evaluate_check_errors(context, live, now=later)
        assert posts == []  # the dead-webhook alert of this check counts for the hour
        instance.run_storage.set_cursor_values({"pipeline_platform/alerts/check_error": "{}"})
        evaluate_check_errors(context, live, now=later)
        assert len(posts) == 1
        text = posts[0]["body"]["text"]
        assert text.startswith("Check max_lag_messages on warehouse/orders is ERROR: ")
        assert "lag_left=500" in text
        assert text.endswith(f"{DAGSTER_URL}/assets/warehouse/orders?view=checks")
        # Reported without a run (as a sensor tick does): still ERROR, still suppressed.
        instance.report_runless_asset_event(
            dg.AssetCheckEvaluation(
                asset_key=dg.AssetKey(["warehouse", "orders"]),
                check_name="max_lag_messages",
                passed=False,
                severity=dg.AssetCheckSeverity.ERROR,
                description="lag 900 messages > 100",
            )
        )
        evaluate_check_errors(context, live, now=later + 60)
        assert len(posts) == 1
        evaluate_check_errors(context, live, now=later + 3600)  # after the runless event
        assert len(posts) == 2 and "lag 900 messages > 100" in posts[1]["body"]["text"]


def test_warn_or_passing_checks_do_not_alert(instance: dg.DagsterInstance) -> None:
    with webhook_server() as (base, posts):
        settings = AlertSettings(webhook_url=f"{base}/hook", dagster_url=DAGSTER_URL)
        defs = dg.Definitions(assets=[_checked_asset(dg.AssetCheckSeverity.WARN)])
        assert defs.get_implicit_global_asset_job_def().execute_in_process(instance=instance)
        context = dg.build_sensor_context(instance=instance, definitions=defs)
        reason = evaluate_check_errors(context, settings)
        assert posts == [] and reason.skip_message is not None
        assert reason.skip_message.startswith("0 check(s) ERROR in the last hour among 1")


def test_definitions_have_alert_sensors_only_when_configured() -> None:
    from pathlib import Path

    from pipeline_platform.factory.builder import build_definitions
    from pipeline_platform.factory.snapshot import RegistrySnapshot
    from pipeline_platform.registry.validation import load_document

    fixture = Path(__file__).parents[1] / "fixtures" / "small_registry.yaml"
    snapshot = RegistrySnapshot(load_document(fixture), "1", "registry")

    def sensors(environ: dict[str, str]) -> set[str]:
        repo = build_definitions(snapshot, environ=environ).get_repository_def()
        return {sensor.name for sensor in repo.sensor_defs}

    alerts = {RUN_FAILURE_SENSOR_NAME, CHECK_ERROR_SENSOR_NAME}
    assert not sensors({}) & alerts
    configured = sensors({"PIPELINE_ALERT_WEBHOOK_URL": f"http://hooks.test/{TOKEN}"})
    assert alerts <= configured


def test_spent_tick_budget_leaves_alerts_for_the_next_tick() -> None:
    alerts = [Alert("warehouse/a", "run failure", "a"), Alert("warehouse/b", "run failure", "b")]
    with webhook_server() as (base, posts):
        settings = AlertSettings(webhook_url=f"{base}/hook")
        throttle = Throttle()
        sent, problems = send_throttled(settings, alerts, throttle, budget_seconds=-1)
        assert sent == [] and posts == [] and throttle.sent == {}
        assert problems == ["alert time budget of this tick spent; the rest go on the next tick"]
        sent, problems = send_throttled(settings, alerts, throttle)
        assert [a.subject for a in sent] == ["warehouse/a", "warehouse/b"] and problems == []
        assert [p["body"]["text"] for p in posts] == ["a", "b"]
        assert set(throttle.sent) == {"warehouse/a|run failure", "warehouse/b|run failure"}
        # A webhook that is not http(s) is refused without being opened or echoed.
        local = AlertSettings(webhook_url=f"file:///etc/{TOKEN}")
        [problem] = deliver(local, alerts[0])
        assert "must be an http:// or https:// URL" in problem and TOKEN not in problem
