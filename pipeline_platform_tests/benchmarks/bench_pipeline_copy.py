"""Benchmark: a table pipeline PostgreSQL → PostgreSQL through one filter.

Run: ``.venv/bin/python -m pipeline_platform_tests.benchmarks.bench_pipeline_copy [--rows N]``
(``PIPELINE_TEST_POSTGRES_URL`` to use a running server; otherwise a private one is started).

Source: N rows × 8 columns (bigint, 2 int, 2 float8, 2 text, timestamptz); the filter keeps
``f1 >= 0.1`` (about 90 %). Prints, from the same run:
- the limit: binary ``COPY (SELECT … WHERE …) TO STDOUT`` piped into ``COPY … FROM STDIN``;
- pandas ``read_sql(chunksize=50000)`` + ``to_sql`` (on ``--pandas-rows`` rows, default all);
- the runner (``sql_table_extractor`` → ``filter_rows`` → ``sql_table_loader``), in a child
  process whose peak RSS is reported: the filter is pushed into the source query and nothing is
  left to transform, so it streams COPY to COPY;
- the runner's chunked path (the same plus a ``select_columns`` of every column, which keeps the
  chunks in Arrow/pandas: parse, transform, render, COPY);
and the ratios runner / pipe (goal ≥ 0.5), runner / pandas (goal ≥ 10), peak RSS (≤ 1 GB).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from contextlib import ExitStack

import psycopg

from pipeline_platform_tests.servers import create_database, private_postgres

COLUMNS = (
    "id bigint, i1 integer, i2 integer, f1 double precision, f2 double precision, "
    "t1 text, t2 text, at timestamptz"
)


def _conninfo(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def _seed(url: str, rows: int) -> None:
    with psycopg.connect(_conninfo(url), autocommit=True) as conn:
        conn.execute(f"CREATE TABLE src ({COLUMNS})")
        conn.execute(
            "INSERT INTO src SELECT g, g %% 1000, (g * 7) %% 100000, random(), g * 0.25, "
            "md5(g::text), 'device-' || (g %% 5000), "
            "timestamptz '2024-01-01' + g * interval '1 second' "
            "FROM generate_series(1, %s) g",
            (rows,),
        )
        conn.execute("ANALYZE src")


def _pipe(src: str, dst: str) -> float:
    started = time.perf_counter()
    with (
        psycopg.connect(_conninfo(src)) as source,
        psycopg.connect(_conninfo(dst)) as target,
    ):
        target.execute(f"CREATE TABLE pipe_out ({COLUMNS})")
        with (
            source.cursor().copy(
                "COPY (SELECT * FROM src WHERE f1 >= 0.1) TO STDOUT (FORMAT BINARY)"
            ) as copy_out,
            target.cursor().copy("COPY pipe_out FROM STDIN (FORMAT BINARY)") as copy_in,
        ):
            for block in copy_out:
                copy_in.write(block)
    return time.perf_counter() - started


def _pandas(src: str, dst: str, rows: int) -> tuple[float, int]:
    import pandas as pd
    from sqlalchemy import create_engine

    source, target = create_engine(src), create_engine(dst)
    started = time.perf_counter()
    written = 0
    with source.connect() as conn:
        query = f"SELECT * FROM src WHERE id <= {int(rows)}"
        for chunk in pd.read_sql(query, conn, chunksize=50_000):
            chunk = chunk[chunk["f1"] >= 0.1]
            chunk.to_sql("pandas_out", target, if_exists="append", index=False)
            written += len(chunk)
    source.dispose()
    target.dispose()
    return time.perf_counter() - started, written


ALL_COLUMNS = ["id", "i1", "i2", "f1", "f2", "t1", "t2", "at"]


def _runner_child(src: str, dst: str, chunked: bool) -> None:
    import resource

    from pipeline_platform.pipelines.graph import build_plan
    from pipeline_platform.pipelines.runner import execute
    from pipeline_platform.registry.validation import validate_data

    document, problems = validate_data(
        {
            "version": 1,
            "data_sources": [{"name": "src", "url_env": "BENCH_SRC_URL"},
                             {"name": "dst", "url_env": "BENCH_DST_URL"}],
            "pipelines": [{"name": "bench", "schedule": "0 * * * *", "graph": {
                "nodes": [
                    {"id": "read", "module": "sql_table_extractor",
                     "config": {"data_source": "src", "table": "src"}},
                    {"id": "keep", "module": "filter_rows",
                     "config": {"column": "f1", "op": "ge", "value": 0.1}},
                    *([{"id": "cols", "module": "select_columns",
                        "config": {"columns": ALL_COLUMNS}}] if chunked else []),
                    {"id": "write", "module": "sql_table_loader",
                     "config": {"data_source": "dst",
                                "table": "chunked_out" if chunked else "runner_out"}},
                ],
                "edges": [["read", "keep"], ["keep", "cols"], ["cols", "write"]] if chunked
                else [["read", "keep"], ["keep", "write"]],
            }}],
        }
    )  # fmt: skip
    assert document is not None, problems
    plan = build_plan(document.pipelines[0])
    env = {"BENCH_SRC_URL": src, "BENCH_DST_URL": dst}
    started = time.perf_counter()
    result = execute(plan, document, run_id=uuid.uuid4().hex, environ=env, log=lambda _: None)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "rows": result.rows_written, "peak_mb": peak}))


def _runner(src: str, dst: str, chunked: bool = False) -> dict[str, float]:
    module = "pipeline_platform_tests.benchmarks.bench_pipeline_copy"
    out = subprocess.run(
        [sys.executable, "-m", module, "--child", src, dst, "chunked" if chunked else "stream"],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    """Run the benchmark and print the figures with their same-run baselines."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--pandas-rows", type=int, default=None)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _runner_child(args.child[0], args.child[1], args.child[2] == "chunked")
        return
    with ExitStack() as stack:
        admin = os.environ.get("PIPELINE_TEST_POSTGRES_URL") or stack.enter_context(
            private_postgres()
        )
        src, dst = create_database(admin, "bsrc"), create_database(admin, "bdst")
        _seed(src, args.rows)
        with psycopg.connect(_conninfo(src)) as conn:
            kept = conn.execute("SELECT count(*) FROM src WHERE f1 >= 0.1").fetchone()[0]
        pipe = _pipe(src, dst)
        runner = _runner(src, dst)
        chunked = _runner(src, dst, chunked=True)
        assert int(runner["rows"]) == kept == int(chunked["rows"]), (runner, chunked, kept)
        pandas_rows = args.pandas_rows or args.rows
        pandas_seconds, _ = _pandas(src, dst, pandas_rows)
        rate_pipe = args.rows / pipe
        rate_runner = args.rows / runner["seconds"]
        rate_pandas = pandas_rows / pandas_seconds
        print(f"rows: {args.rows} source rows, {kept} kept by the filter (8 columns)")
        print(f"pipe (binary COPY TO | COPY FROM): {pipe:7.2f} s  {rate_pipe:10,.0f} rows/s")
        print(f"pandas read_sql + to_sql ({pandas_rows} rows): {pandas_seconds:7.2f} s  "
              f"{rate_pandas:10,.0f} rows/s")  # fmt: skip
        print(f"runner: {runner['seconds']:7.2f} s  {rate_runner:10,.0f} rows/s  "
              f"peak RSS {runner['peak_mb']:.0f} MB")  # fmt: skip
        rate_chunked = args.rows / chunked["seconds"]
        print(f"runner, chunked path (filter + select in Arrow/pandas): "
              f"{chunked['seconds']:7.2f} s  {rate_chunked:10,.0f} rows/s  "
              f"peak RSS {chunked['peak_mb']:.0f} MB")  # fmt: skip
        print(f"runner / pipe   = {rate_runner / rate_pipe:.2f}  (goal >= 0.5)")
        print(f"chunked / pipe  = {rate_chunked / rate_pipe:.2f}")
        print(f"runner / pandas = {rate_runner / rate_pandas:.1f}  (goal >= 10)")
        print(f"chunked / pandas = {rate_chunked / rate_pandas:.1f}")
        peak = max(runner["peak_mb"], chunked["peak_mb"])
        print(f"peak RSS {peak:.0f} MB (goal <= 1024 MB)")


if __name__ == "__main__":
    main()
