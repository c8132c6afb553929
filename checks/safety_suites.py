"""Great Expectations suites for the safety invariants, run in an ephemeral context per check.

`invariants` (blocking): audit completeness and consent enforcement are exactly 1, and no governed
text matches a PII pattern (a second, regex-only opinion beside the validated leak scan; it skips
cards and phones, whose look-alikes only a checksum or number plan can tell apart).
`drift` (warning): the redaction rate stays within its band over the previous 7 days, and the
quarantined share of lines read stays under `MAX_QUARANTINE_SHARE`.
Only counts and observed values go into metadata: GE's sample of unexpected values could be PII.
"""

from __future__ import annotations

from collections import Counter
from datetime import date, timedelta
from typing import Iterable, Iterator

import pandas as pd

from telemetry_assets.record_batches import record_batches

PII_PATTERNS = [
    r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}",  # email
    r"\b\d{3}-\d{2}-\d{4}\b",  # US SSN
    r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){3,7}",  # IBAN-shaped
    r"\b(?:\d{1,3}\.){3}\d{1,3}\b",  # IPv4
]
MAX_QUARANTINE_SHARE = 0.01
BAND_DAYS = 7
MIN_HISTORY = 3


def invariants(con, day: date, text_columns: dict[str, list[str]]) -> tuple[bool, dict]:
    import great_expectations as gx

    safety = con.execute("SELECT audit_completeness, consent_enforcement_rate FROM metrics.safety_daily WHERE dt = ?",
                         [day]).df()
    expectations = [
        ("safety", gx.expectations.ExpectColumnValuesToBeBetween(column="audit_completeness", min_value=1, max_value=1)),
        ("safety", gx.expectations.ExpectColumnValuesToBeBetween(column="consent_enforcement_rate", min_value=1, max_value=1)),
        ("texts", gx.expectations.ExpectColumnValuesToNotMatchRegexList(column="text", regex_list=PII_PATTERNS)),
    ]
    frames = {"safety": [safety], "texts": _governed_text_batches(con, day, text_columns)}
    return _validate("safety_invariants", frames, expectations)


def drift(con, day: date) -> tuple[bool, dict]:
    import great_expectations as gx

    today = con.execute("SELECT redaction_rate FROM metrics.safety_daily WHERE dt = ?", [day]).df()
    history = con.execute("SELECT redaction_rate FROM metrics.safety_daily WHERE dt BETWEEN ? AND ? AND redaction_rate IS NOT NULL",
                          [day - timedelta(days=BAND_DAYS), day - timedelta(days=1)]).df()["redaction_rate"]
    lines = con.execute(
        "SELECT sum(quarantined)::DOUBLE / nullif(sum(lines_read), 0) AS quarantine_share FROM audit.ingest_files WHERE dt = ?",
        [day]).df()
    expectations = [("lines", gx.expectations.ExpectColumnValuesToBeBetween(
        column="quarantine_share", min_value=0, max_value=MAX_QUARANTINE_SHARE))]
    band = {}
    if len(history) >= MIN_HISTORY:
        spread = max(3 * history.std(), 0.05)
        band = {"band_low": history.mean() - spread, "band_high": history.mean() + spread}
        expectations.append(("safety", gx.expectations.ExpectColumnValuesToBeBetween(
            column="redaction_rate", min_value=band["band_low"], max_value=band["band_high"])))
    passed, metadata = _validate("safety_drift", {"safety": [today], "lines": [lines]}, expectations)
    metadata.update({k: round(float(v), 4) for k, v in band.items()} or {"redaction_band": "not enough history"})
    return passed, metadata


def _governed_text_batches(con, day: date, text_columns: dict[str, list[str]]) -> Iterator[pd.DataFrame]:
    """The day's governed text, one record batch at a time: the suite never holds the whole day."""
    selects = [f'SELECT "{column}" AS text FROM {table} WHERE dt = $day AND "{column}" IS NOT NULL'
               for table, columns in text_columns.items() for column in columns]
    if selects:
        for batch in record_batches(con, " UNION ALL ".join(selects), {"day": day}):
            yield batch.to_pandas()


def _validate(name: str, frames: dict[str, Iterable[pd.DataFrame]], expectations: list) -> tuple[bool, dict]:
    """Each frame's suite over each of its batches; an expectation passes when it passed on every
    batch, and its unexpected values are counted over all of them."""
    import great_expectations as gx

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = {"globally": False}
    source = context.data_sources.add_pandas("frames")
    outcomes: dict[str, tuple[bool, int]] = {}
    rows: Counter = Counter()
    for frame_name, batches in frames.items():
        suite = gx.ExpectationSuite(name=f"{name}_{frame_name}")
        for target, expectation in expectations:
            if target == frame_name:
                suite.add_expectation(expectation)
        if not suite.expectations:
            continue
        whole_frame = source.add_dataframe_asset(name=frame_name).add_batch_definition_whole_dataframe("batch")
        rows[frame_name] = 0  # reported even when the day has no rows
        for frame in batches:
            rows[frame_name] += len(frame)
            for result in whole_frame.get_batch(batch_parameters={"dataframe": frame}).validate(suite).results:
                config = result.expectation_config
                label = f"{config.type}:{config.kwargs.get('column')}"
                success, unexpected = outcomes.get(label, (True, 0))
                outcomes[label] = (success and bool(result.success), unexpected + result.result.get("unexpected_count", 0))
    metadata = {label: "passed" if success else f"failed ({unexpected} unexpected)"
                for label, (success, unexpected) in outcomes.items()}
    metadata["rows"] = ", ".join(f"{k}={n}" for k, n in rows.items())
    return all(success for success, _ in outcomes.values()), metadata
