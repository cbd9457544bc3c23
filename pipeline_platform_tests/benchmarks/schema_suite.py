"""Run the official JSON-Schema-Test-Suite against the topic validator, per draft.

Run: ``.venv/bin/python -m pipeline_platform_tests.benchmarks.schema_suite SUITE_DIR``

``SUITE_DIR`` is a checkout of github.com/json-schema-org/JSON-Schema-Test-Suite (not ours: it
is fetched, never committed). Every mandatory test (``tests/<draft>/*.json``, not
``optional/``) is run through :func:`pipeline_platform.json_schemas.compile_validator`, with the
draft's ``$schema`` added where a schema does not declare one (as a topic schema declares its
draft). Prints, per draft, the verdicts that agree, disagree and could not run (a schema that
does not compile, e.g. remote references to the suite's localhost server), and, in the same
run, the same figures for fastjsonschema (the previous validator; drafts 4-7 only).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipeline_platform.json_schemas import SchemaViolation, compile_validator

DRAFTS = {
    "draft4": "http://json-schema.org/draft-04/schema#",
    "draft6": "http://json-schema.org/draft-06/schema#",
    "draft7": "http://json-schema.org/draft-07/schema#",
    "draft2019-09": "https://json-schema.org/draft/2019-09/schema",
    "draft2020-12": "https://json-schema.org/draft/2020-12/schema",
}


def topic_verdicts(schema: Any) -> Callable[[Any], bool]:
    """Compile with the topic validator; return document → valid."""
    validate = compile_validator(schema) if schema not in ({}, True) else None

    def check(document: Any) -> bool:
        if validate is None:
            return True
        try:
            validate(document)
        except SchemaViolation:
            return False
        return True

    if schema is False:
        return lambda _document: False
    return check


def fast_verdicts(schema: Any) -> Callable[[Any], bool]:
    """Compile with fastjsonschema (the previous validator)."""
    import fastjsonschema

    validate = fastjsonschema.compile(schema)

    def check(document: Any) -> bool:
        try:
            validate(document)
        except fastjsonschema.JsonSchemaValueException:
            return False
        return True

    return check


def run(suite: Path, draft: str, compiler: Callable[[Any], Callable[[Any], bool]]) -> list[int]:
    """Return ``[agree, disagree, not run]`` over the draft's mandatory tests."""
    counts = [0, 0, 0]
    for path in sorted((suite / "tests" / draft).glob("*.json")):
        for case in json.loads(path.read_text()):
            schema = case["schema"]
            if isinstance(schema, dict) and "$schema" not in schema:
                schema = {"$schema": DRAFTS[draft], **schema}
            try:
                check = compiler(schema)
            except Exception:
                counts[2] += len(case["tests"])
                continue
            for test in case["tests"]:
                try:
                    counts[0 if check(test["data"]) == test["valid"] else 1] += 1
                except Exception:
                    counts[2] += 1
    return counts


def main() -> None:
    """Print agreement per draft for the topic validator and for fastjsonschema."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("suite", type=Path)
    args = parser.parse_args()
    for draft in DRAFTS:
        for label, compiler in (
            ("jsonschema-rs", topic_verdicts),
            ("fastjsonschema", fast_verdicts),
        ):
            agree, disagree, skipped = run(args.suite, draft, compiler)
            total = agree + disagree + skipped
            print(
                f"{draft:13} {label:15} agree {agree:5,} / {total:5,}  "
                f"disagree {disagree:4,}  not run {skipped:3,}"
            )


if __name__ == "__main__":
    main()
