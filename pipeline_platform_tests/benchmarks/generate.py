"""Synthetic registries of any size, for benchmarks and load tests."""

from __future__ import annotations

from typing import Any

_TYPES = ("string", "integer", "float", "boolean", "timestamp", "date", "json", "uuid")


def _mappings(count: int) -> list[dict[str, Any]]:
    mappings: list[dict[str, Any]] = [
        {"source": "device_id", "column": "device_id", "type": "string", "required": True},
        {"source": "recorded_at", "column": "recorded_at", "type": "timestamp", "required": True},
    ]
    for k in range(max(0, count - 2)):
        mapping: dict[str, Any] = {
            "source": f"payload.group{k % 3}.field_{k}",
            "column": f"field_{k}",
            "type": _TYPES[k % len(_TYPES)],
        }
        if k % 5 == 0:
            mapping["source"] = f"payload.items[{k % 4}].value_{k}"
        if _TYPES[k % len(_TYPES)] == "integer" and k % 2 == 0:
            mapping["default"] = k
        mappings.append(mapping)
    return mappings[:count]


def generate_registry_data(
    n_topics: int, n_tables: int, mappings_per_table: int, n_flows: int, n_pipelines: int = 10
) -> dict[str, Any]:
    """Return plain registry data (as parsed from YAML) that passes validation.

    Topics ``bench.c<k>.t<i>`` (the first ``n_tables`` ingested into tables with
    ``mappings_per_table`` mappings, upsert key and time column), ``n_flows`` flows of two stages
    each (input → output → output + error, always from lower to higher topic index, so there is no
    cycle), three data sources and ``n_pipelines`` batch pipelines.

    Args:
        n_topics: Number of topics.
        n_tables: How many of them have a table (at most ``n_topics``).
        mappings_per_table: Field mappings per table (at least 2: device_id, recorded_at).
        n_flows: Number of flows (needs ``n_topics >= 4`` when positive).

    Returns:
        A dict with ``version``, ``topics``, ``flows``, ``data_sources`` and ``pipelines``.
    """
    if n_tables > n_topics:
        raise ValueError("n_tables must not exceed n_topics")
    if mappings_per_table < 2:
        raise ValueError("mappings_per_table must be at least 2")
    if n_flows and n_topics < 4:
        raise ValueError("flows need at least 4 topics")
    names = [f"bench.c{i % 10}.t{i:06d}" for i in range(n_topics)]
    topics: list[dict[str, Any]] = []
    for i, name in enumerate(names):
        topic: dict[str, Any] = {
            "name": name,
            "category": f"c{i % 10}",
            "source": f"s{i % 7}",
            "datatype": "raw" if i % 2 else "events",
            "description": f"Benchmark topic {i}",
            "partitions": 1 + i % 6,
            "retention_days": 7 + i % 30,
        }
        if i % 3 == 0:
            topic["api_endpoints"] = [
                {"path": f"/bench/{i}", "method": "POST"},
                {"path": f"/bench/{i}/batch", "method": "PUT"},
            ]
        if i % 4 == 0:
            topic["schema"] = {
                "type": "object",
                "required": ["device_id", "recorded_at"],
                "properties": {"device_id": {"type": "string"}},
            }
        if i < n_tables:
            topic["table"] = {
                "data_source": "warehouse" if i % 5 else "archive",
                "name": f"bench_table_{i:06d}",
                "upsert_key": ["device_id", "recorded_at"],
                "time_column": "recorded_at",
                "max_lag_messages": 10_000 + i,
                "freshness_minutes": 15,
                "mappings": _mappings(mappings_per_table),
            }
        topics.append(topic)

    flows: list[dict[str, Any]] = []
    step = max(4, n_topics // max(1, n_flows))
    for j in range(n_flows):
        base = (j * step) % (n_topics - 3)
        a, b, c, d = (names[base + k] for k in range(4))
        flows.append(
            {
                "name": f"bench-flow-{j:05d}",
                "description": f"Benchmark flow {j}",
                "priority": ("low", "normal", "high", "critical")[j % 4],
                "stages": [
                    {
                        "name": "decode",
                        "service": f"decoder-{j % 13}",
                        "inputs": [a],
                        "outputs": [b],
                    },
                    {
                        "name": "enrich",
                        "service": f"enricher-{j % 17}",
                        "inputs": [b],
                        "outputs": [c],
                        "errors": [d],
                    },
                ],
            }
        )

    data_sources = [
        {"name": "warehouse", "kind": "postgresql", "url_env": "PIPELINE_WAREHOUSE_URL"},
        {"name": "archive", "kind": "postgresql", "url_env": "ARCHIVE_DB_URL"},
        {"name": "shop", "kind": "postgresql", "url_env": "SHOP_DB_URL"},
    ]
    pipelines = [
        {
            "name": f"bench-sync-{p:03d}",
            "mode": "batch",
            "schedule": f"{p % 60} 2 * * *",
            "graph": {
                "nodes": [
                    {
                        "id": "read",
                        "module": "sql_table_extractor",
                        "config": {"data_source": "shop", "table": f"orders_{p}"},
                    },
                    {
                        "id": "paid",
                        "module": "filter_rows",
                        "config": {"column": "status", "op": "eq", "value": "paid"},
                    },
                    {
                        "id": "write",
                        "module": "sql_table_loader",
                        "config": {
                            "data_source": "warehouse",
                            "table": f"sales_{p}",
                            "mode": "upsert",
                            "key": ["order_id"],
                        },
                    },
                ],
                "edges": [["read", "paid"], ["paid", "write"]],
            },
        }
        for p in range(n_pipelines)
    ]
    return {
        "version": 1,
        "topics": topics,
        "flows": flows,
        "data_sources": data_sources,
        "pipelines": pipelines,
    }
