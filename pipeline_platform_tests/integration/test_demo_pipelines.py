"""The demo registry's pipelines run on the embedded SQLite warehouse (as in dev)."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

from pipeline_platform.dev.stack import demo_registry_path
from pipeline_platform.pipelines.graph import build_plan, presets_by_name
from pipeline_platform.pipelines.runner import execute
from pipeline_platform.registry.validation import load_document


def test_demo_pipelines_run_on_sqlite(tmp_path: Path) -> None:
    warehouse = tmp_path / "warehouse.db"
    with sqlite3.connect(warehouse) as conn:
        conn.execute("CREATE TABLE device_audio_raw (device_id TEXT, recorded_at TEXT, "
                     "duration_ms INTEGER)")  # fmt: skip
        conn.executemany(
            "INSERT INTO device_audio_raw VALUES (?, ?, ?)",
            [("phone-1", "2026-12-01T10:00:00+00:00", 1_200_000),
             ("phone-1", "2026-12-01T11:00:00+00:00", 900_000),
             ("phone-2", "2026-12-01T10:00:00+00:00", 60_000),
             ("phone-1", "2026-12-02T09:00:00+00:00", None)],
        )  # fmt: skip
        conn.execute("CREATE TABLE media_text_transcribed_words (recorded_at TEXT, language TEXT,"
                     " confidence REAL, is_final INTEGER)")  # fmt: skip
        conn.executemany(
            "INSERT INTO media_text_transcribed_words VALUES (?, ?, ?, ?)",
            [("2026-12-01T10:05:00+00:00", "en", 0.9, 1),
             ("2026-12-01T10:06:00+00:00", "en", 0.7, 1),
             ("2026-12-01T10:07:00+00:00", None, 0.5, 1),
             ("2026-12-01T10:08:00+00:00", "en", 0.1, 0)],
        )  # fmt: skip
        conn.execute("CREATE TABLE digital_app_usage_sessions (device_id TEXT, session_id TEXT, "
                     "app_name TEXT, started_at TEXT, ended_at TEXT, duration_seconds INTEGER, "
                     "session_date TEXT)")  # fmt: skip
        conn.executemany(
            "INSERT INTO digital_app_usage_sessions VALUES (?, ?, ?, ?, ?, ?, ?)",
            [("phone-1", "s1", "Maps", "2026-12-01T10:00:00+00:00", "2026-12-01T10:10:00+00:00",
              600, "2026-12-01"),
             ("phone-1", "s2", "Mail", "2026-12-01T11:00:00+00:00", None, None, "2026-12-01")],
        )  # fmt: skip
    env = {
        "PIPELINE_WAREHOUSE_URL": f"sqlite:///{warehouse}",
        "ANALYTICS_DB_URL": f"sqlite:///{tmp_path / 'analytics.db'}",
        "APP_DB_URL": f"sqlite:///{tmp_path / 'app_db.db'}",
    }
    document = load_document(demo_registry_path())
    presets = presets_by_name(document.presets)
    results = {}
    for pipeline in document.pipelines:  # the chained report runs after the summary it reads
        results[pipeline.name] = execute(
            build_plan(pipeline, presets), document, run_id=uuid.uuid4().hex, environ=env
        )
    with sqlite3.connect(warehouse) as conn:
        summary = conn.execute(
            "SELECT device_id, day, duration_ms, chunks, audio_minutes FROM "
            "daily_device_audio_summary ORDER BY device_id, day"
        ).fetchall()
        counts = conn.execute(
            "SELECT hour, language, words, round(confidence, 2) FROM transcription_counts_hourly "
            "ORDER BY language"
        ).fetchall()
    assert summary == [
        ("phone-1", "2026-12-01", 2_100_000, 2, 35.0),
        ("phone-1", "2026-12-02", None, 1, 0.0),
        ("phone-2", "2026-12-01", 60_000, 1, 1.0),
    ]
    assert counts == [("2026-12-01 10", "en", 2, 0.8), ("2026-12-01 10", "unknown", 1, 0.5)]
    with sqlite3.connect(tmp_path / "analytics.db") as conn:
        heavy = conn.execute("SELECT device_id, day FROM heavy_audio_devices").fetchall()
    assert heavy == [("phone-1", "2026-12-01")]
    with sqlite3.connect(tmp_path / "app_db.db") as conn:
        sessions = conn.execute("SELECT session_id, app_name, seconds FROM device_app_usage")
        assert sessions.fetchall() == [("s1", "Maps", 600)]
    # The "finished" filter is pushed into the incremental read: the unfinished session s2 is
    # not past the watermark, so it is read again (and exported) once it has ended.
    assert results["app-usage-export"].watermarks["sessions"][1] == [
        "2026-12-01T10:00:00+00:00", "s1",
    ]  # fmt: skip
