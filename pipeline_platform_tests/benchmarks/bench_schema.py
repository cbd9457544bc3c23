"""Benchmark: the topic JSON Schema validator against fastjsonschema (the previous one).

Run: ``.venv/bin/python -m pipeline_platform_tests.benchmarks.bench_schema [--documents N]``

Validates N decoded documents against the benchmark topic's schema (nested, with required
fields) and a nested 3-field schema, with :func:`pipeline_platform.json_schemas.compile_validator`
(jsonschema-rs) and, in the same run, with ``fastjsonschema.compile`` as the baseline; prints
documents/s and the ratio. Best of 3 rounds each.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import fastjsonschema
import orjson

from pipeline_platform.json_schemas import compile_validator
from pipeline_platform_tests.benchmarks.bench_ingest_core import generate, wifi_topic

NESTED = {
    "type": "object",
    "required": ["a", "b"],
    "properties": {
        "a": {"type": "string"},
        "b": {"type": "object", "properties": {"c": {"type": "integer"}}},
    },
}


def rate(validate: Callable[[Any], Any], documents: list[Any]) -> float:
    """Best documents/s of 3 rounds."""
    best = 0.0
    for _ in range(3):
        started = time.perf_counter()
        for document in documents:
            validate(document)
        best = max(best, len(documents) / (time.perf_counter() - started))
    return best


def main() -> None:
    """Print the rates and ratios."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--documents", type=int, default=200_000)
    args = parser.parse_args()
    wifi_schema = wifi_topic().json_schema
    assert wifi_schema is not None
    cases = {
        "wifi topic schema": (wifi_schema, [orjson.loads(v) for v in generate(args.documents)]),
        "nested 3-field": (
            NESTED,
            [{"a": f"x{i}", "b": {"c": i}} for i in range(args.documents)],
        ),
    }
    for label, (schema, documents) in cases.items():
        ours = compile_validator(schema)
        assert ours is not None
        new = rate(ours, documents)
        old = rate(fastjsonschema.compile(schema), documents)
        print(
            f"{label}: jsonschema-rs {new:,.0f} docs/s; baseline fastjsonschema {old:,.0f} "
            f"docs/s; ratio {new / old:.2f}"
        )


if __name__ == "__main__":
    main()
