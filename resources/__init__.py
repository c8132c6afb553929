"""Dagster resources: the object store (local folder or S3) and the warehouse."""
