"""Run one pipeline of a registry file in this process, printing progress (for kill -9 tests).

Usage: ``python -m pipeline_platform_tests.pipeline_child REGISTRY.yaml PIPELINE``.
"""

from __future__ import annotations

import sys
import uuid

from pipeline_platform.pipelines.graph import build_plan, presets_by_name
from pipeline_platform.pipelines.runner import execute
from pipeline_platform.registry.validation import load_document


def main() -> None:
    """Run the pipeline and print one line per progress event."""
    document = load_document(sys.argv[1])
    pipeline = next(p for p in document.pipelines if p.name == sys.argv[2])
    plan = build_plan(pipeline, presets_by_name(document.presets))
    result = execute(
        plan, document, run_id=uuid.uuid4().hex, log=lambda line: print(line, flush=True)
    )
    print(f"done {result.rows_written}", flush=True)


if __name__ == "__main__":
    main()
