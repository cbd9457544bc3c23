"""Alert sensors: failed runs and ERROR asset checks → webhook / e-mail (``PIPELINE_ALERT_*``).

Two sensors, defined only when an alert target is configured (no sensors, no cost otherwise):

- ``alert_on_run_failure``: a ``run_failure_sensor`` over this code location's jobs;
- ``alert_on_check_error``: each tick reads the latest execution of every asset check of the
  code location (one batched query per 1,000 checks, which also sees runless evaluations
  reported by other sensors) and alerts on those that failed with ERROR severity within the
  last hour.

At most one alert per (asset or run subject, cause) per hour: the suppression state is kept in
the Dagster instance's key-value store, so it survives code reloads and daemon restarts. A
delivery that fails is a one-line warning in the sensor log (secrets redacted); it never
touches a run, which has ended (or is unrelated) when the sensor looks at it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence

import dagster as dg

from pipeline_platform.config import AlertSettings
from pipeline_platform.factory import naming
from pipeline_platform.factory.pipeline_translator import PIPELINE_TAG
from pipeline_platform.monitoring.alerts import (
    DEFAULT_SENDERS,
    SUPPRESS_SECONDS,
    Alert,
    Sender,
    Throttle,
    asset_url,
    one_line,
    run_url,
    send_throttled,
)

RUN_FAILURE_SENSOR_NAME = "alert_on_run_failure"
CHECK_ERROR_SENSOR_NAME = "alert_on_check_error"
#: Keys of the suppression state in the instance's key-value store.
RUN_FAILURE_STATE_KEY = "pipeline_platform/alerts/run_failure"
CHECK_ERROR_STATE_KEY = "pipeline_platform/alerts/check_error"
_CHECK_BATCH = 1000


def _send(
    instance: dg.DagsterInstance,
    state_key: str,
    settings: AlertSettings,
    alerts: Sequence[Alert],
    *,
    now: float | None,
    senders: Mapping[str, Sender],
) -> tuple[list[Alert], list[str]]:
    """Send through the throttle stored under ``state_key`` and store it back."""
    storage = instance.run_storage
    throttle = Throttle.loads(storage.get_cursor_values({state_key}).get(state_key))
    sent, problems = send_throttled(settings, alerts, throttle, now=now, senders=senders)
    if sent:
        storage.set_cursor_values({state_key: throttle.dumps()})
    return sent, problems


def run_failure_alert(settings: AlertSettings, run: dg.DagsterRun, message: str | None) -> Alert:
    """Return the alert of a failed run: its table, pipeline or job, the error and the link."""
    selection = sorted(key.to_user_string() for key in (run.asset_selection or ()))
    subject = (
        run.tags.get(naming.TABLE_TAG)
        or run.tags.get(PIPELINE_TAG)
        or (selection[0] if len(selection) == 1 else run.job_name)
    )
    detail = one_line(message) or "no error message"
    return Alert(
        subject=subject,
        cause="run failure",
        text=f"Run failed: job {run.job_name} ({subject}): {detail}",
        url=run_url(settings, run.run_id),
    )


def _failure_detail(context: dg.RunFailureSensorContext) -> str | None:
    """Return the first failed step and its error, else the run failure's message."""
    try:
        steps = context.get_step_failure_events()
    except Exception:  # the event log is best effort here; the run message still says it
        steps = []
    for step in steps:
        error = step.step_failure_data.error
        while error is not None and error.cause is not None:  # the user's error, not the wrapper
            error = error.cause
        if error is not None:
            return f"step {step.step_key}: {error.cls_name}: {one_line(error.message)}"
    return context.failure_event.message


def evaluate_run_failure(
    context: dg.RunFailureSensorContext,
    settings: AlertSettings,
    *,
    now: float | None = None,
    senders: Mapping[str, Sender] = DEFAULT_SENDERS,
) -> list[Alert]:
    """Alert on one failed run (unless the same subject failed in the last hour).

    Args:
        context: The run-failure sensor context (the run and its failure event).
        settings: The alert targets.
        now: Current epoch seconds (tests).
        senders: The sending functions by target (tests).

    Returns:
        The alerts sent (empty when suppressed).
    """
    alert = run_failure_alert(settings, context.dagster_run, _failure_detail(context))
    sent, problems = _send(
        context.instance, RUN_FAILURE_STATE_KEY, settings, [alert], now=now, senders=senders
    )
    for problem in problems:
        context.log.warning(problem)
    return sent


def _chunks(values: Sequence[dg.AssetCheckKey]) -> Iterable[Sequence[dg.AssetCheckKey]]:
    for start in range(0, len(values), _CHECK_BATCH):
        yield values[start : start + _CHECK_BATCH]


def _check_detail(evaluation: dg.AssetCheckEvaluation) -> str:
    if evaluation.description:
        return one_line(evaluation.description)
    numbers = [
        f"{name}={entry.value}"
        for name, entry in evaluation.metadata.items()
        if isinstance(entry.value, int | float) and not isinstance(entry.value, bool)
    ]
    return ", ".join(numbers[:4]) or "no details"


def check_error_alerts(
    instance: dg.DagsterInstance,
    settings: AlertSettings,
    check_keys: Sequence[dg.AssetCheckKey],
    now: float,
) -> list[Alert]:
    """Return an alert for each check whose latest evaluation failed with ERROR in the last hour.

    Args:
        instance: The Dagster instance.
        settings: The alert targets (for links).
        check_keys: The checks to look at.
        now: Current epoch seconds.
    """
    alerts = []
    storage = instance.event_log_storage
    for chunk in _chunks(sorted(check_keys, key=lambda k: k.to_user_string())):
        for key, record in storage.get_latest_asset_check_execution_by_key(list(chunk)).items():
            event = record.event
            if event is None or event.dagster_event is None:
                continue
            evaluation = event.dagster_event.event_specific_data
            if not isinstance(evaluation, dg.AssetCheckEvaluation) or evaluation.passed:
                continue
            if evaluation.severity != dg.AssetCheckSeverity.ERROR:
                continue
            if now - event.timestamp >= SUPPRESS_SECONDS:
                continue
            asset = key.asset_key.to_user_string()
            alerts.append(
                Alert(
                    subject=asset,
                    cause=key.name,
                    text=f"Check {key.name} on {asset} is ERROR: {_check_detail(evaluation)}",
                    url=asset_url(settings, key.asset_key.path, checks=True),
                )
            )
    return alerts


def evaluate_check_errors(
    context: dg.SensorEvaluationContext,
    settings: AlertSettings,
    *,
    check_keys: Sequence[dg.AssetCheckKey] | None = None,
    now: float | None = None,
    senders: Mapping[str, Sender] = DEFAULT_SENDERS,
) -> dg.SkipReason:
    """One tick of the ERROR-check alert sensor.

    Args:
        context: The sensor context.
        settings: The alert targets.
        check_keys: The checks to watch; every check of the code location by default.
        now: Current epoch seconds (tests).
        senders: The sending functions by target (tests).

    Returns:
        A skip reason saying how many alerts went out (the sensor launches no runs).
    """
    moment = time.time() if now is None else now
    if check_keys is None:
        repository = context.repository_def
        check_keys = list(repository.asset_graph.asset_check_keys) if repository else []
    alerts = check_error_alerts(context.instance, settings, check_keys, moment)
    sent, problems = _send(
        context.instance, CHECK_ERROR_STATE_KEY, settings, alerts, now=moment, senders=senders
    )
    for problem in problems:
        context.log.warning(problem)
    failed = f", {len(problems)} delivery failure(s)" if problems else ""
    return dg.SkipReason(
        f"{len(alerts)} check(s) ERROR in the last hour among {len(check_keys)}; "
        f"{len(sent)} alert(s) sent, {len(alerts) - len(sent)} suppressed{failed}"
    )


def build_alert_sensors(
    settings: AlertSettings, *, interval_seconds: int = 30
) -> list[dg.SensorDefinition]:
    """Return the alert sensors, RUNNING by default; none when no alert target is configured.

    Args:
        settings: The alert targets (``load_alert_settings``).
        interval_seconds: Minimum seconds between ticks of each sensor.

    Returns:
        The run-failure and ERROR-check sensors, or an empty list.
    """
    if not settings.enabled:
        return []

    @dg.run_failure_sensor(
        name=RUN_FAILURE_SENSOR_NAME,
        minimum_interval_seconds=interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Posts an alert (webhook / e-mail) when a run fails; one per hour per table.",
    )
    def alert_on_run_failure(context: dg.RunFailureSensorContext) -> None:
        evaluate_run_failure(context, settings)

    @dg.sensor(
        name=CHECK_ERROR_SENSOR_NAME,
        minimum_interval_seconds=interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Posts an alert when an asset check fails with ERROR; one per hour per check.",
    )
    def alert_on_check_error(context: dg.SensorEvaluationContext) -> dg.SkipReason:
        return evaluate_check_errors(context, settings)

    return [alert_on_run_failure, alert_on_check_error]
