"""pipeline_platform: database-defined data pipelines on Dagster."""
