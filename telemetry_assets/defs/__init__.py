"""Dagster definitions, one folder per stage of the chain in DESIGN.md."""
