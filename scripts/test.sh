#!/usr/bin/env bash
# The test command: install what is needed, lint, type-check, then run the whole suite against a
# private PostgreSQL server and a Kafka-protocol broker that the test fixtures start themselves.
set -euo pipefail
cd "$(dirname "$0")/.."
PIPELINE_WITH_BROWSER=${PIPELINE_WITH_BROWSER:-1} bash scripts/bootstrap.sh
echo "== ruff"
.venv/bin/ruff check pipeline_platform pipeline_platform_tests scripts
echo "== mypy"
.venv/bin/mypy
echo "== pytest"
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
