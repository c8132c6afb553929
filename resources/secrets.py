"""Secrets the pipeline needs, only ever from the environment through `dg.EnvVar`."""

import os

import dagster as dg

SALT_VARIABLE = "TELEMETRY_REDACTION_SALT"


class GovernanceSecrets(dg.ConfigurableResource):
    """`redaction_salt` keys the hashes of `hash` replacement; empty when the policy only masks."""

    redaction_salt: str = ""


def governance_secrets() -> GovernanceSecrets:
    """Read the salt through dg.EnvVar when it is set, so it never appears in run config or logs."""
    if os.environ.get(SALT_VARIABLE):
        return GovernanceSecrets(redaction_salt=dg.EnvVar(SALT_VARIABLE))
    return GovernanceSecrets()
