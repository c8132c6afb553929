"""Governance in flight, without Dagster: policy, redaction, intent, consent and routing."""
