"""Benchmark: validate and import a 5,000-topic registry into SQLite and PostgreSQL.

Run with ``python -m pipeline_platform_tests.benchmarks.bench_registry_import``. PostgreSQL is
``PIPELINE_TEST_POSTGRES_URL`` when set, otherwise a private server started for the run.
Goal: validate + import ≤ 10 s on each backend.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import yaml

from pipeline_platform.registry.database import create_registry_engine, upgrade_registry
from pipeline_platform.registry.document import RegistryDocument
from pipeline_platform.registry.store import import_document, read_document
from pipeline_platform.registry.validation import load_document
from pipeline_platform.registry.yaml_io import dump_document
from pipeline_platform_tests.benchmarks.generate import generate_registry_data
from pipeline_platform_tests.servers import create_database, private_postgres

GOAL_SECONDS = 10.0
T = TypeVar("T")


def timed(label: str, action: Callable[[], T]) -> tuple[T, float]:
    """Run ``action``, print and return its duration."""
    start = time.perf_counter()
    value = action()
    seconds = time.perf_counter() - start
    print(f"  {label:<38} {seconds:8.3f} s")
    return value, seconds


@contextmanager
def postgres_admin_url() -> Iterator[str]:
    """The PostgreSQL server to use: the given one or a private one."""
    given = os.environ.get("PIPELINE_TEST_POSTGRES_URL")
    if given:
        yield given
        return
    with private_postgres() as url:
        yield url


def bench_backend(name: str, url: str, registry_file: Path, document: RegistryDocument) -> bool:
    """Import into a fresh registry at ``url``; return True when within the goal."""
    print(f"{name}:")
    engine = create_registry_engine(url)
    try:
        timed("migrate (upgrade_registry)", lambda: upgrade_registry(engine))
        loaded, validate_s = timed("validate (load_document)", lambda: load_document(registry_file))
        result, import_s = timed(
            "import (first)",
            lambda: import_document(engine, loaded, actor="bench", source=str(registry_file)),
        )
        assert result.revision == 1
        stored, _ = timed("read_document", lambda: read_document(engine))
        assert stored == document.canonical(), "read_document differs from the imported document"
        again, reimport_s = timed(
            "re-import (no-op)", lambda: import_document(engine, loaded, actor="bench")
        )
        assert again.revision is None and again.diff.is_empty
        total = validate_s + import_s
        ok = total <= GOAL_SECONDS
        print(
            f"  {'validate + import':<38} {total:8.3f} s   goal ≤ {GOAL_SECONDS:.0f} s: "
            f"{'OK' if ok else 'MISSED'}"
        )
        print(f"  {'validate + re-import (no-op)':<38} {validate_s + reimport_s:8.3f} s")
        return ok
    finally:
        engine.dispose()


def main(argv: list[str] | None = None) -> int:
    """Generate the registry file, then benchmark SQLite and PostgreSQL."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--topics", type=int, default=5000)
    parser.add_argument("--tables", type=int, default=3000)
    parser.add_argument("--mappings", type=int, default=15)
    parser.add_argument("--flows", type=int, default=500)
    parser.add_argument("--skip-postgres", action="store_true")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="pp-bench-") as tmp:
        root = Path(tmp)
        data = generate_registry_data(args.topics, args.tables, args.mappings, args.flows)
        registry_file = root / "registry.yaml"
        registry_file.write_text(
            yaml.safe_dump(data, sort_keys=False, width=1_000_000), encoding="utf-8"
        )
        document = load_document(registry_file)
        size_mb = registry_file.stat().st_size / 1e6
        n_mappings = sum(len(t.table.mappings) for t in document.topics if t.table)
        n_stages = sum(len(f.stages) for f in document.flows)
        print(
            f"registry: {len(document.topics)} topics, {args.tables} tables, {n_mappings} "
            f"mappings, {len(document.flows)} flows, {n_stages} stages, "
            f"{len(document.pipelines)} pipelines ({size_mb:.1f} MB YAML)"
        )
        _, _ = timed("dump_document (export)", lambda: dump_document(document))

        ok = bench_backend("SQLite", f"sqlite:///{root / 'registry.db'}", registry_file, document)
        if not args.skip_postgres:
            with postgres_admin_url() as admin:
                url = create_database(admin, prefix="bench")
                ok = bench_backend("PostgreSQL", url, registry_file, document) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
