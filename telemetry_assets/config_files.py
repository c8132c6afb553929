"""Rules shared by the versioned YAML files (tracking plan, policy): strict keys and a change history."""

from __future__ import annotations

from pathlib import Path

import yaml


# LibYAML's safe loader, which PyYAML's wheels carry; PyYAML's own where it was built without LibYAML.
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def parse_yaml(path: Path):
    """The file's YAML, safely loaded. LibYAML reads the same documents as PyYAML's own loader ten
    times faster (0.5-1 ms against 5-11 ms for each shipped file), and configs are read often: every
    check and asset loads the policy or the plan again (a four-day `telemetry check` read them 115
    times)."""
    return yaml.load(Path(path).read_text(), Loader=_SAFE_LOADER)


def load_versioned_yaml(path: Path, error: type[ValueError], allowed: set[str], required: set[str]) -> dict:
    """A mapping whose keys are all known, with a `changes` list whose newest entry is `version`."""
    try:
        raw = parse_yaml(path)
    except yaml.YAMLError as problem:
        raise error(f"{path}: not valid YAML: {problem}") from None
    if not isinstance(raw, dict):
        raise error(f"{path}: must be a mapping")
    reject_unknown(raw, allowed, Path(path).stem, error)
    for key in sorted(required | {"version", "changes"}):
        if key not in raw:
            raise error(f"{Path(path).stem}: missing required key '{key}'")
    changes = raw["changes"]
    if not changes or str(changes[0].get("version")) != str(raw["version"]):
        raise error(f"changes: the newest entry must describe version {raw['version']}")
    return raw


def is_number(value) -> bool:
    """An int or float from YAML, not a boolean (`True` is an int to Python, `yes` a boolean to YAML)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_whole_number(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def reject_unknown(mapping: dict, allowed: set[str], where: str, error: type[ValueError]) -> None:
    unknown = sorted(set(mapping) - allowed)
    if unknown:
        raise error(f"{where}: unknown key '{unknown[0]}' (allowed: {', '.join(sorted(allowed))})")
