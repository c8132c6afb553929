"""Joined tables and metrics without Dagster: turns, conversations, outcomes, metric tables."""
