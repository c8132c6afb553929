"""AI telemetry pipeline: Dagster assets from raw AI events to governed tables and metrics."""
