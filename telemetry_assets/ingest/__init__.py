"""Ingest logic without Dagster: find a partition's raw objects, stream their lines, validate."""
