-- Runs once, when the TimescaleDB volume is first initialized (docker-entrypoint-initdb.d).
-- dagster: Dagster's runs/event logs/schedules; pipeline_registry: the registry;
-- warehouse: the ingestion target (TimescaleDB hypertables for tables with a time column).
CREATE DATABASE dagster;
CREATE DATABASE pipeline_registry;
CREATE DATABASE warehouse;
\connect warehouse
CREATE EXTENSION IF NOT EXISTS timescaledb;
