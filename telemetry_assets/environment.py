"""The lake, warehouse and secure store this environment picks, built in one place: the Dagster code
location (`definitions.py`) and the CLI's own steps (its checks before a run, progress lines,
`report`, alert delivery) then open the same files with the same settings.

`TELEMETRY_LAKE_URL=s3://bucket/prefix` selects the S3 object store; a path (default
`$TELEMETRY_HOME/lake`) a local folder; any other scheme is refused. The warehouse is
`$TELEMETRY_HOME/warehouse.duckdb`, raw text only in `$TELEMETRY_HOME/secure.duckdb` (mode 0600).
"""

from resources.object_store import ObjectStore, object_store_from_url
from resources.secure_store import SecureStore
from resources.warehouse import Warehouse
from telemetry_assets import settings


def lake() -> ObjectStore:
    return object_store_from_url(settings.lake_url())


def warehouse() -> Warehouse:
    return Warehouse(database=str(settings.warehouse_path()), lock_wait_seconds=settings.lock_wait_seconds())


def secure_store() -> SecureStore:
    return SecureStore(database=str(settings.secure_store_path()), lock_wait_seconds=settings.lock_wait_seconds())
