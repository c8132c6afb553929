"""The lake, warehouse and secure store this environment picks, built in one place: the Dagster code
location (`definitions.py`) and the CLI's own steps (its checks before a run, progress lines,
`report`, alert delivery) then open the same files with the same settings.

`TELEMETRY_LAKE_URL=s3://bucket/prefix` selects the S3 object store; a path (default
`$TELEMETRY_HOME/lake`) a local folder; any other scheme is refused. The warehouse is
`$TELEMETRY_HOME/warehouse.duckdb`, raw text only in `$TELEMETRY_HOME/secure.duckdb` (mode 0600).
"""

from pathlib import Path

from resources.alert_sinks import alert_router_from_env
from resources.object_store import ObjectStore, object_store_from_url
from resources.secrets import governance_secrets
from resources.secure_store import SecureStore
from resources.warehouse import Warehouse
from telemetry_assets import settings


def lake() -> ObjectStore:
    return object_store_from_url(settings.lake_url())


def warehouse(database: Path | None = None) -> Warehouse:
    """The warehouse at `database` (by default `$TELEMETRY_HOME/warehouse.duckdb`), with the settings
    this environment gives it."""
    return Warehouse(database=str(database or settings.warehouse_path()),
                     lock_wait_seconds=settings.lock_wait_seconds(),
                     ingest_memory_limit=f"{settings.ingest_memory_mb()}MB")


def secure_store() -> SecureStore:
    return SecureStore(database=str(settings.secure_store_path()), lock_wait_seconds=settings.lock_wait_seconds())


def resources() -> dict:
    """Every resource the jobs use, as the environment picks them when this is called."""
    return {"lake": lake(), "warehouse": warehouse(), "secure_store": secure_store(), "secrets": governance_secrets(),
            "alert_router": alert_router_from_env()}
