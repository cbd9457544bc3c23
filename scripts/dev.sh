#!/usr/bin/env bash
# The run command: install what is needed, then start the local stack with demo data
# (broker, registry, warehouse, demo events, dagster dev). Ctrl-C stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/pipeline-platform dev "$@"
