"""Run tags of table pipeline runs: which pipeline ran, what triggered it, who launched it.

Schedules, sensors and ``pipeline-platform pipeline run`` tag their runs when they create them;
a run launched another way (the UI's Materialize, ``dagster asset materialize``,
``dagster job launch``) is tagged from inside the asset body with :func:`tags_to_add`, the
trigger derived from the tags Dagster itself puts on runs. ``pipeline runs NAME`` then finds
every run of a pipeline by :func:`run_filters`, whatever launched it.
"""

from __future__ import annotations

from collections.abc import Mapping

PIPELINE_TAG = "pipeline_platform/pipeline"
TRIGGER_TAG = "pipeline_platform/trigger"
# A run covering several pipelines (the UI's "Materialize all") names the first one in
# PIPELINE_TAG and every other one in a tag of its own.
ALSO_TAG_PREFIX = "pipeline_platform/also/"
USER_TAG = "user"  # Dagster's tag for the launching user (set by Dagster+ and by the CLI)

_SCHEDULE_TAG = "dagster/schedule_name"
_SENSOR_TAG = "dagster/sensor_name"
_BACKFILL_TAG = "dagster/backfill"


def trigger_of(tags: Mapping[str, str]) -> str:
    """Return what launched a run: ``schedule``, ``sensor``, ``backfill``, ``cli`` or ``manual``.

    Dagster's own tags (schedule, sensor, backfill) win over ours, so a run of a pipeline's job
    (whose job tags say ``manual``) launched by any schedule or sensor is reported as such.
    """
    if _SCHEDULE_TAG in tags:
        return "schedule"
    if _SENSOR_TAG in tags:
        return "sensor"
    if _BACKFILL_TAG in tags:
        return "backfill"
    return tags.get(TRIGGER_TAG) or "manual"


def tags_to_add(tags: Mapping[str, str], pipeline: str) -> dict[str, str]:
    """Return the tags a run of ``pipeline`` lacks (empty when it is tagged already).

    Args:
        tags: The run's current tags.
        pipeline: The pipeline the run executes.
    """
    missing: dict[str, str] = {}
    current = tags.get(PIPELINE_TAG)
    if current is None:
        missing[PIPELINE_TAG] = pipeline
    elif current != pipeline and ALSO_TAG_PREFIX + pipeline not in tags:
        missing[ALSO_TAG_PREFIX + pipeline] = "true"
    trigger = trigger_of(tags)
    if tags.get(TRIGGER_TAG) != trigger:
        missing[TRIGGER_TAG] = trigger
    return missing


def run_filters(pipeline: str) -> list[dict[str, str]]:
    """Return the tag filters that together select every run of ``pipeline``."""
    return [{PIPELINE_TAG: pipeline}, {ALSO_TAG_PREFIX + pipeline: "true"}]
