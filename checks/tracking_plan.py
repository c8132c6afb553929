"""The tracking plan (versioned YAML) loaded, validated and compiled to one pandera model per event.

Validation works on a frame the ingest SQL builds from the raw calls: for every planned field
`<column>__json_type` holds the JSON type the sender used (NULL when absent or null) and `<column>`
holds the value cast to the plan's type (never for sensitive fields: their text is only typed, not
read). Checking the JSON type rather than a cast value is what makes `"12"` for an integer a
`Datatype-Mismatch` instead of a silent coercion.

Each pandera failure maps back to a typed violation (RudderStack's names): every check is
registered with the violation it stands for, so no failure is guessed from its message.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import pandera.pandas as pa

from telemetry_assets.config_files import is_number, load_versioned_yaml, reject_unknown

FIELD_TYPES = {
    # plan type: (JSON types DuckDB's json_type reports that are acceptable, warehouse type)
    "string": (("VARCHAR",), "VARCHAR"),
    "integer": (("UBIGINT", "BIGINT"), "BIGINT"),
    "number": (("UBIGINT", "BIGINT", "DOUBLE"), "DOUBLE"),
    "boolean": (("BOOLEAN",), "BOOLEAN"),
    "timestamp": (("VARCHAR",), "TIMESTAMP"),
    "object": (("OBJECT",), None),
}
JSON_TYPE_NAMES = {
    "VARCHAR": "string",
    "UBIGINT": "integer",
    "BIGINT": "integer",
    "HUGEINT": "integer",
    "DOUBLE": "number",
    "BOOLEAN": "boolean",
    "OBJECT": "object",
    "ARRAY": "array",
}
MODES = ("quarantine", "forward")
# Columns the pipeline adds beside the plan's: on the governed tables, in ingest's working rows, on
# every export row. A planned field with one of these names (in any case: DuckDB's names are
# case-insensitive) would collide with it; `__` is reserved for the per-field working columns.
RESERVED_COLUMNS = frozenset({
    "dt", "intent_source", "source_key", "line_number", "tracking_plan_version", "policy_version", "plan_violations",
    "row_id", "properties", "additional_properties", "consent_fragments", "outcome", "event",
})
_FIELD_KEYS = {"path", "type", "required", "sensitive", "minimum", "maximum", "enum", "required_when"}
_EVENT_KEYS = {"mode", "additional_properties", "properties"}
_PLAN_KEYS = {"version", "changes", "namespace", "envelope", "require_one_of", "common_properties", "events"}


def finite_number_sql(text_sql: str) -> str:
    """SQL casting text to a DOUBLE, NULL unless finite. JSON has no NaN or Infinity, but Python's
    json writes them and DuckDB reads them, as it reads 1e400 as infinity; one such latency or cost
    would make its group's quantiles and sums infinite, so it fails its cast like any other bad value."""
    value = f"TRY_CAST({text_sql} AS DOUBLE)"
    return f"CASE WHEN isfinite({value}) THEN {value} END"


class TrackingPlanError(ValueError):
    """The plan file is not valid; the message names the offending key."""


@dataclass(frozen=True)
class Field:
    """One planned field: where it is in the raw call and what it must hold."""

    column: str
    name: str  # as the sender spells it, for messages
    json_path: str
    type: str
    required: bool = False
    sensitive: bool = False
    minimum: float | None = None
    maximum: float | None = None
    enum: tuple[str, ...] | None = None
    required_when: tuple[tuple[str, Any], ...] = ()
    # The envelope's strings (messageId, userId, anonymousId): an empty one identifies nothing, and
    # is missing. RudderStack's SDKs send userId "" for a visitor who has not signed in.
    empty_is_missing: bool = False

    @property
    def allowed_json_types(self) -> tuple[str, ...]:
        return FIELD_TYPES[self.type][0]

    @property
    def warehouse_type(self) -> str | None:
        return FIELD_TYPES[self.type][1]

    @property
    def has_value_column(self) -> bool:
        """Sensitive text and whole objects are typed but never read into the frame."""
        return not self.sensitive and self.type != "object"


@dataclass(frozen=True)
class EventPlan:
    name: str
    mode: str
    additional_properties: bool
    fields: tuple[Field, ...]
    property_names: tuple[str, ...]
    require_one_of: tuple[str, ...]


@dataclass(frozen=True)
class TrackingPlan:
    version: str
    namespace: str
    events: dict[str, EventPlan]
    changes: tuple[dict, ...] = field(default=())


def load_tracking_plan(path: Path) -> TrackingPlan:
    """Read and validate the plan; any unknown or bad key fails loudly with its location."""
    raw = load_versioned_yaml(path, TrackingPlanError, _PLAN_KEYS, {"namespace", "envelope", "events"})
    envelope = [_field(name, spec, f"envelope.{name}", spec.get("path") if isinstance(spec, dict) else None)
                for name, spec in raw["envelope"].items()]
    for f in envelope:
        _check_column_name(f.column, f"envelope.{f.column}", set())
    envelope = [replace(f, empty_is_missing=f.type == "string") for f in envelope]
    envelope.append(Field(column="properties", name="properties", json_path="$.properties", type="object", required=True))
    common = raw.get("common_properties") or {}
    require_one_of = tuple(raw.get("require_one_of") or ())
    for column in require_one_of:
        if column not in raw["envelope"]:
            raise TrackingPlanError(f"require_one_of: '{column}' is not an envelope field")
    events = {
        name: _event(name, spec, envelope, common, require_one_of) for name, spec in raw["events"].items()
    }
    for name in events:
        if not name.startswith(raw["namespace"]):
            raise TrackingPlanError(f"events.{name}: name does not start with namespace '{raw['namespace']}'")
    return TrackingPlan(str(raw["version"]), raw["namespace"], events, tuple(raw["changes"]))


def _event(name, spec, envelope, common, require_one_of) -> EventPlan:
    where = f"events.{name}"
    if not isinstance(spec, dict):
        raise TrackingPlanError(f"{where}: must be a mapping")
    reject_unknown(spec, _EVENT_KEYS, where, TrackingPlanError)
    mode = spec.get("mode", "quarantine")
    if mode not in MODES:
        raise TrackingPlanError(f"{where}.mode: '{mode}' is not one of {', '.join(MODES)}")
    properties = {**common, **(spec.get("properties") or {})}
    prop_fields = [_field(prop, prop_spec, f"{where}.properties.{prop}", f"properties.{prop}")
                   for prop, prop_spec in properties.items()]
    envelope_columns = {f.column.lower() for f in envelope}
    for f in prop_fields:
        _check_column_name(f.column, f"{where}.properties.{f.column}", envelope_columns)
    check_flag(spec, "additional_properties", where, TrackingPlanError)
    by_column = {f.column: f for f in prop_fields}
    for f in prop_fields:
        for other, expected in f.required_when:
            _check_condition(f"{where}.properties.{f.column}.required_when", by_column.get(other), other, expected)
    return EventPlan(
        name=name,
        mode=mode,
        additional_properties=bool(spec.get("additional_properties", True)),
        fields=tuple(envelope + prop_fields),
        property_names=tuple(properties),
        require_one_of=require_one_of,
    )


def _field(column: str, spec: Any, where: str, path: str | None) -> Field:
    if not isinstance(spec, dict):
        raise TrackingPlanError(f"{where}: must be a mapping")
    reject_unknown(spec, _FIELD_KEYS, where, TrackingPlanError)
    if spec.get("type") not in FIELD_TYPES or spec.get("type") == "object":
        allowed = ", ".join(t for t in FIELD_TYPES if t != "object")
        raise TrackingPlanError(f"{where}.type: '{spec.get('type')}' is not one of {allowed}")
    if not path:
        raise TrackingPlanError(f"{where}.path: missing")
    check_field_options(spec, where, TrackingPlanError)
    enum = spec.get("enum")
    required_when = spec.get("required_when") or {}
    if not isinstance(required_when, dict):
        raise TrackingPlanError(f"{where}.required_when: must map a property to a value")
    name = path.removeprefix("properties.")
    json_path = "$." + ".".join(f'"{part}"' for part in path.split("."))
    return Field(
        column=column,
        name=name,
        json_path=json_path,
        type=spec["type"],
        required=bool(spec.get("required", False)),
        sensitive=bool(spec.get("sensitive", False)),
        minimum=spec.get("minimum"),
        maximum=spec.get("maximum"),
        enum=tuple(enum) if enum else None,
        required_when=tuple(required_when.items()),
    )


_CONDITION_VALUES = {"string": (str,), "integer": (int,), "number": (int, float), "boolean": (bool,)}


def _check_condition(where: str, other: Field | None, name: str, expected: Any) -> None:
    """A condition that can never hold (a value of another type, a value outside the enum) would
    make its field never required, and nothing would say so."""
    if other is None:
        raise TrackingPlanError(f"{where}: unknown property '{name}'")
    kinds = _CONDITION_VALUES.get(other.type, ())
    if not isinstance(expected, kinds) or (isinstance(expected, bool) and other.type != "boolean"):
        raise TrackingPlanError(f"{where}: {name} = {expected!r} can never hold: {name} is of type {other.type}")
    if other.enum and expected not in other.enum:
        raise TrackingPlanError(
            f"{where}: {name} = {expected!r} can never hold: {name} is one of {', '.join(other.enum)}")


def _check_column_name(column: str, where: str, envelope_columns: set[str]) -> None:
    if column.lower() in RESERVED_COLUMNS or "__" in column or '"' in column:
        raise TrackingPlanError(f"{where}: '{column}' is a name the pipeline keeps for its own columns "
                                f"({', '.join(sorted(RESERVED_COLUMNS))}, or any name with __ or a double quote)")
    if column.lower() in envelope_columns:
        raise TrackingPlanError(f"{where}: '{column}' is already an envelope field")


def check_field_options(spec: dict, where: str, error: type[ValueError]) -> None:
    """The options a planned field and a source column share, checked alike: an option of the
    wrong kind would otherwise fail every row at ingest, or quietly mean something else."""
    for flag in ("required", "sensitive"):
        check_flag(spec, flag, where, error)
    bounds = {name: spec[name] for name in ("minimum", "maximum") if name in spec}
    for name, value in bounds.items():
        if spec["type"] not in ("integer", "number"):
            raise error(f"{where}.{name}: only an integer or number field has bounds")
        if not is_number(value):
            raise error(f"{where}.{name}: must be a number, not {value!r}")
    if len(bounds) == 2 and bounds["minimum"] > bounds["maximum"]:
        raise error(f"{where}.minimum: {bounds['minimum']} is above the maximum {bounds['maximum']}")
    enum = spec.get("enum")
    if enum is not None and spec["type"] != "string":
        raise error(f"{where}.enum: only a string field has an enum")
    if enum is not None and (not isinstance(enum, list) or not enum or not all(isinstance(v, str) for v in enum)):
        raise error(f"{where}.enum: must be a non-empty list of strings "
                    "(quote a value YAML would read as a number or a boolean, such as 1 or no)")


def check_flag(spec: dict, flag: str, where: str, error: type[ValueError]) -> None:
    """A flag must be a YAML boolean: a quoted "no" would otherwise read as true."""
    if flag in spec and not isinstance(spec[flag], bool):
        raise error(f"{where}.{flag}: must be true or false, not {spec[flag]!r}")


# --- compiling to pandera -------------------------------------------------------------------------

ADDITIONAL_PROPERTIES_COLUMN = "additional_properties"


def type_column(f: Field) -> str:
    return f"{f.column}__json_type"


@dataclass(frozen=True)
class Rule:
    """What a failing check means: its violation type and how to say it for one failing value."""

    violation: str
    message: Callable[[Any], str]


@dataclass(frozen=True)
class CompiledModel:
    """A pandera model and, for each of its checks, the typed violation a failure stands for."""

    name: str
    schema: pa.DataFrameSchema
    rules: dict[tuple[str, Any], Rule]  # (column or "*", check number or "not_nullable") -> rule


@dataclass(frozen=True)
class CompiledEvent(CompiledModel):
    plan: EventPlan


def compile_event(plan: EventPlan) -> CompiledEvent:
    """One pandera model for one event, with each check's meaning registered beside it."""
    columns: dict[str, pa.Column] = {}
    frame_checks: list[pa.Check] = []
    rules: dict[tuple[str, Any], Rule] = {}

    def frame_rule(check_fn: Callable[[pd.DataFrame], pd.Series], name: str, rule: Rule) -> None:
        # ignore_na=False: a frame check's rows are never all-null (each has its line number), and
        # pandera's ignore_na would test that with a whole-frame isna per check: a third of its time.
        rules[("*", len(frame_checks))] = rule
        frame_checks.append(pa.Check(check_fn, name=name, ignore_na=False))

    for f in plan.fields:
        tcol = type_column(f)
        columns[tcol] = pa.Column(
            nullable=not f.required,
            checks=[pa.Check.isin(list(f.allowed_json_types))],
            required=True,
        )
        rules[(tcol, "not_nullable")] = Rule("Required-Missing", lambda _, f=f: f"{f.name} is required")
        rules[(tcol, 0)] = Rule(
            "Datatype-Mismatch",
            lambda got, f=f: f"{f.name} must be {f.type}, got {JSON_TYPE_NAMES.get(got, str(got).lower())}",
        )
        if f.has_value_column:
            columns[f.column], value_rules = value_column(f)
            rules.update(value_rules)
            frame_rule(
                _castable(f), f"{f.column}:castable",
                Rule("Datatype-Mismatch", lambda _, f=f: f"{f.name} is not a valid {f.type}"),
            )
        for other, expected in f.required_when:
            frame_rule(
                _required_when(f.column, other, expected), f"{f.column}:required_when",
                Rule("Required-Missing", lambda _, f=f, o=other, e=expected: f"{f.name} is required when {o} = '{e}'"),
            )
    if plan.require_one_of:
        names = [f.name for f in plan.fields if f.column in plan.require_one_of]
        frame_rule(
            _one_of(plan.require_one_of), "require_one_of",
            Rule("Required-Missing", lambda _: f"one of {', '.join(names)} is required"),
        )
    if not plan.additional_properties:
        columns[ADDITIONAL_PROPERTIES_COLUMN] = pa.Column(
            nullable=True, checks=[pa.Check(lambda s: s.isna() | (s == ""), element_wise=False)]
        )
        rules[(ADDITIONAL_PROPERTIES_COLUMN, 0)] = Rule(
            "Additional-Properties", lambda extra: f"properties not in the plan: {str(extra)[:200]}"
        )
    schema = pa.DataFrameSchema(columns, checks=frame_checks, name=plan.name, strict=False)
    return CompiledEvent(plan.name, schema, rules, plan)


def value_column(f: Field) -> tuple[pa.Column, dict]:
    checks, rules = [], {}
    if f.minimum is not None:
        rules[(f.column, len(checks))] = Rule(
            "Advance-Rules-Violation", lambda v, f=f: f"{f.name} = {v} is below the minimum {f.minimum}"
        )
        checks.append(pa.Check.ge(f.minimum))
    if f.maximum is not None:
        rules[(f.column, len(checks))] = Rule(
            "Advance-Rules-Violation", lambda v, f=f: f"{f.name} = {v} is above the maximum {f.maximum}"
        )
        checks.append(pa.Check.le(f.maximum))
    if f.enum:
        # The offending string is not repeated: free text in an enum field may carry personal data.
        rules[(f.column, len(checks))] = Rule(
            "Advance-Rules-Violation", lambda _, f=f: f"{f.name} is not one of: {', '.join(f.enum)}"
        )
        checks.append(pa.Check.isin(list(f.enum)))
    return pa.Column(nullable=True, checks=checks, required=True), rules


def _castable(f: Field):
    tcol = type_column(f)
    allowed = list(f.allowed_json_types)
    return lambda df: ~(df[tcol].isin(allowed) & df[f.column].isna())


def _required_when(column: str, other: str, expected: Any):
    return lambda df: ~((df[other] == expected).fillna(False) & df[column].isna())


def _one_of(columns: tuple[str, ...]):
    return lambda df: df[list(columns)].notna().any(axis=1)


def violations_by_row(compiled: CompiledModel, frame: pd.DataFrame) -> dict[Any, list[dict]]:
    """Validate `frame` lazily; map each failing row's index to its typed violations. In place: no
    schema coerces, and a copy of the frame was 15% of pandera's time on a chunk's 26k responses."""
    try:
        compiled.schema.validate(frame, lazy=True, inplace=True)
        return {}
    except pa.errors.SchemaErrors as errors:
        failures = errors.failure_cases
    found: dict[Any, list[dict]] = {}
    seen: set[tuple] = set()
    for case in failures.itertuples(index=False):
        key = _rule_key(case)
        rule = compiled.rules.get(key)
        if pd.isna(case.index):
            raise RuntimeError(f"{compiled.name}: schema-wide failure {case.check} on {case.column}")
        if (case.index, key) in seen:
            continue
        seen.add((case.index, key))
        if rule is None:
            violation = {"type": "Unknown-Violation", "message": f"{case.column}: {case.check}"}
        else:
            violation = {"type": rule.violation, "message": rule.message(case.failure_case)}
        found.setdefault(case.index, []).append(violation)
    return found


def _rule_key(case) -> tuple[str, Any]:
    if case.schema_context == "DataFrameSchema":
        return ("*", int(case.check_number))
    if case.check == "not_nullable":
        return (case.column, "not_nullable")
    return (case.column, int(case.check_number))
