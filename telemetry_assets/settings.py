"""Where things live, from the environment variables fixed in DESIGN.md.

Read at call time (never cached at import) so tests and the CLI can point a process elsewhere.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

CONFIG_DIR = Path(__file__).parent / "config"


class SettingsError(ValueError):
    """An environment variable holds what the pipeline cannot use; the message names the variable."""


def telemetry_home() -> Path:
    return Path(os.environ.get("TELEMETRY_HOME", ".telemetry")).resolve()


def lake_url() -> str:
    return checked_lake_url(os.environ.get("TELEMETRY_LAKE_URL") or str(telemetry_home() / "lake"), "TELEMETRY_LAKE_URL")


def checked_lake_url(url: str, named: str) -> str:
    """`url` when it is a local folder or `s3://bucket[/prefix]`. Any other scheme (`s3a://`, `S3://`,
    `file://`) would otherwise be taken for a local folder of that odd name: an empty lake."""
    scheme, separator, rest = url.partition("://")
    if separator and scheme != "s3":
        raise SettingsError(f"{named}={url!r}: a lake is a local folder or s3://bucket/prefix, not {scheme}://")
    if separator and not rest.partition("/")[0]:
        raise SettingsError(f"{named}={url!r} names no bucket")
    return url


def warehouse_path() -> Path:
    return telemetry_home() / "warehouse.duckdb"


def dagster_home() -> Path:
    return Path(os.environ.get("DAGSTER_HOME") or telemetry_home() / "dagster")


def tracking_plan_path() -> Path:
    return _config_file("TELEMETRY_TRACKING_PLAN", "tracking_plan.yaml")


def partitions_start() -> str:
    """First day of the daily partitions shown in Dagster."""
    value = os.environ.get("TELEMETRY_PARTITIONS_START", "2026-01-01")
    try:
        datetime.strptime(value, "%Y-%m-%d")  # the form Dagster's daily partitions take
    except ValueError:
        raise SettingsError(f"TELEMETRY_PARTITIONS_START={value!r} is not a date (YYYY-MM-DD)") from None
    return value


def dedupe_lookback_days() -> int:
    """How many earlier partitions a message id is checked against (re-sends arrive late)."""
    value = os.environ.get("TELEMETRY_DEDUPE_LOOKBACK_DAYS", "1")
    if not value.isdecimal():  # a negative look-back would silently check no earlier partition at all
        raise SettingsError(f"TELEMETRY_DEDUPE_LOOKBACK_DAYS={value!r} is not a whole number of days (0 or more)")
    return int(value)


DEFAULT_INGEST_CHUNK_MB = 64
MAX_INGEST_CHUNK_MB = 1024  # a chunk's lines are read into Arrow string arrays, whose offsets are 32-bit


def ingest_chunk_mb() -> int:
    """Megabytes of decompressed lines ingest validates and governs as one chunk, at most two chunks
    at a time. Ingest's memory grows with it, about 15 MB per MB of chunk. Smaller chunks are slower
    on bigger days, since each costs a fixed 0.4 CPU-s or so (a pandera run and a few dozen queries
    per event; about 1 CPU-s on a VM half as fast). The measured sizes are in the README, "Memory and
    chunk size"."""
    value = os.environ.get("TELEMETRY_INGEST_CHUNK_MB", str(DEFAULT_INGEST_CHUNK_MB))
    if not value.isdecimal() or not 1 <= int(value) <= MAX_INGEST_CHUNK_MB:
        raise SettingsError(f"TELEMETRY_INGEST_CHUNK_MB={value!r} is not a whole number of MB from 1 to "
                            f"{MAX_INGEST_CHUNK_MB}")
    return int(value)


DEFAULT_INGEST_MEMORY_MB = 512
MIN_INGEST_MEMORY_MB = 128


def ingest_memory_mb() -> int:
    """Megabytes DuckDB may hold while a partition is ingested (the warehouse's `ingest_memory_limit`);
    beyond them it spills to disk. The one thing there that grows with the day is the set of message
    ids seen so far, so a bigger cap makes a big day's dedupe faster and its process bigger: the
    default keeps a 20M-event day under 2 GiB. The measured sizes are in the README, "Memory and
    chunk size"."""
    value = os.environ.get("TELEMETRY_INGEST_MEMORY_MB", str(DEFAULT_INGEST_MEMORY_MB))
    if not value.isdecimal() or int(value) < MIN_INGEST_MEMORY_MB:
        raise SettingsError(f"TELEMETRY_INGEST_MEMORY_MB={value!r} is not a whole number of MB, "
                            f"{MIN_INGEST_MEMORY_MB} or more")
    return int(value)


def lock_wait_seconds() -> float:
    """How long a step waits while another process holds the warehouse or the secure store (a
    `duckdb` shell, a notebook) before it fails naming that process."""
    value = os.environ.get("TELEMETRY_LOCK_WAIT_SECONDS", "60")
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0:  # also refuses nan
        raise SettingsError(f"TELEMETRY_LOCK_WAIT_SECONDS={value!r} is not a number of seconds (0 or more)")
    return seconds


def secure_store_path() -> Path:
    return telemetry_home() / "secure.duckdb"


def policy_path() -> Path:
    return _config_file("TELEMETRY_POLICY", "policy.yaml")


def intents_path() -> Path:
    """The keyword rules prompts are classified by."""
    return _config_file("TELEMETRY_INTENTS", "intents.yaml")


def sources_path() -> Path:
    return _config_file("TELEMETRY_SOURCES", "sources.yaml")


def model_prices_path() -> Path:
    """Dated model prices (USD per million tokens, cached input priced apart)."""
    return _config_file("TELEMETRY_MODEL_PRICES", "model_prices.csv")


def alert_rules_path() -> Path:
    return _config_file("TELEMETRY_ALERT_RULES", "alerts.yaml")


def _config_file(variable: str, shipped: str) -> Path:
    """The file `variable` names, or the shipped one of that name; a path to no file is refused
    here, naming the variable, rather than as a bare FileNotFoundError from whichever step reads it."""
    path = Path(os.environ.get(variable) or CONFIG_DIR / shipped)
    if not path.is_file():
        raise SettingsError(f"{variable}={str(path)!r} is not a file")
    return path


def alert_ledger_path() -> Path:
    """Dedupe keys of the alerts already delivered."""
    return telemetry_home() / "alerts_sent.txt"
