"""The start-up baseline of ``bench_run_overhead``: a trivial one-asset Dagster project.

``dagster asset materialize -m pipeline_platform_tests.benchmarks.trivial_asset -a in_process
--select trivial`` (or ``-a multiprocess``, Dagster's default executor) measures what any
Dagster run costs on this machine: process start, imports, definitions load, instance writes.
"""

from __future__ import annotations

import dagster as dg


@dg.asset
def trivial() -> None:
    """Do nothing."""


in_process = dg.Definitions(assets=[trivial], executor=dg.in_process_executor)
multiprocess = dg.Definitions(assets=[trivial])
