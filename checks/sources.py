"""Source specs (versioned YAML with column mappings) and their pandera models.

A source row arrives as text (CSV) or JSON values (JSONL); ingest puts each mapped column's raw
value, as text, in `<column>__raw` and its cast to the column's type in `<column>`. The model then
says: a required column must be present (`Required-Missing`), a present value must cast
(`Datatype-Mismatch`), and range and enum rules hold (`Advance-Rules-Violation`): the same
violation types, and the same mapping from check to violation, as the tracking plan's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandera.pandas as pa

from checks.tracking_plan import (
    FIELD_TYPES,
    CompiledModel,
    Field,
    Rule,
    check_field_options,
    check_flag,
    value_column,
)
from telemetry_assets.config_files import load_versioned_yaml, reject_unknown


class SourcesError(ValueError):
    """The sources file is not valid; the message names the offending key."""


@dataclass(frozen=True)
class SourceSpec:
    name: str
    dated: bool
    key: str
    columns: tuple[Field, ...]

    @property
    def table(self) -> str:
        return f"sources.{self.name}"


def raw_column(f: Field) -> str:
    return f"{f.column}__raw"


def load_sources(path: Path) -> dict[str, SourceSpec]:
    raw = load_versioned_yaml(path, SourcesError, {"version", "changes", "sources"}, {"sources"})
    return {name: _spec(name, spec) for name, spec in raw["sources"].items()}


def _spec(name: str, spec) -> SourceSpec:
    where = f"sources.{name}"
    if not isinstance(spec, dict):
        raise SourcesError(f"{where}: must be a mapping")
    reject_unknown(spec, {"dated", "key", "columns"}, where, SourcesError)
    check_flag(spec, "dated", where, SourcesError)
    columns = []
    for column, options in (spec.get("columns") or {}).items():
        at = f"{where}.columns.{column}"
        if not isinstance(options, dict):
            raise SourcesError(f"{at}: must be a mapping")
        reject_unknown(options, {"from", "type", "required", "minimum", "maximum", "enum"}, at, SourcesError)
        if options.get("type") not in FIELD_TYPES or options.get("type") == "object":
            raise SourcesError(f"{at}.type: {options.get('type')!r} is not a column type")
        check_field_options(options, at, SourcesError)
        columns.append(Field(
            column=column, name=options.get("from", column), json_path="", type=options["type"],
            required=bool(options.get("required", False)), minimum=options.get("minimum"),
            maximum=options.get("maximum"), enum=tuple(options["enum"]) if options.get("enum") else None,
        ))
    key = spec.get("key")
    if key not in {c.column for c in columns}:
        raise SourcesError(f"{where}.key: {key!r} is not one of its columns")
    return SourceSpec(name, bool(spec.get("dated", True)), key, tuple(columns))


def compile_source(spec: SourceSpec) -> CompiledModel:
    columns: dict[str, pa.Column] = {}
    frame_checks: list[pa.Check] = []
    rules: dict = {}
    for f in spec.columns:
        columns[raw_column(f)] = pa.Column(nullable=not f.required, required=True)
        rules[(raw_column(f), "not_nullable")] = Rule("Required-Missing", lambda _, f=f: f"{f.name} is required")
        columns[f.column], value_rules = value_column(f)
        rules.update(value_rules)
        rules[("*", len(frame_checks))] = Rule("Datatype-Mismatch", lambda _, f=f: f"{f.name} is not a valid {f.type}")
        frame_checks.append(pa.Check(
            lambda df, f=f: df[raw_column(f)].isna() | df[f.column].notna(), name=f"{f.column}:castable"))
    schema = pa.DataFrameSchema(columns, checks=frame_checks, name=spec.name, strict=False)
    return CompiledModel(spec.name, schema, rules)
