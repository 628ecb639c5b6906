"""Mechanics shared by every typed config in this project (experiment and pipeline sections).

Building frozen dataclasses from nested mappings (unknown keys rejected with the nearest valid
name, scalars coerced, non-finite numbers rejected), `--set` parsing, YAML reading with line
numbers, and deep merging.  No project-specific settings live here: sracl_ray/config.py (the
experiment config) and sracl_ray/semantic/settings.py (the pipeline sections) both build on it.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any, Mapping

import yaml

from sracl_ray.errors import UserError


class ConfigError(UserError):
    """A config file, override or sample names an unknown key or an impossible value."""


def _suggest(key: str, valid: list[str]) -> str:
    near = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
    return f"; did you mean '{near[0]}'?" if near else f"; valid keys: {', '.join(sorted(valid))}"


def _coerce(value: Any, annotation: str, where: str) -> Any:
    """Coerce YAML/CLI scalars to the annotated type; reject what cannot be converted."""
    ann = annotation.replace(" ", "")
    if value is None:
        if "None" in ann:
            return None
        raise ConfigError(f"{where}: null is not allowed (expected {annotation})")
    base = ann.split("|")[0]
    try:
        if base == "bool":
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
                return value.lower() in ("true", "1", "yes")
            raise ValueError
        if base == "int":
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if base == "float":
            if isinstance(value, bool):
                raise ValueError
            number = float(value)
        if base == "str":
            return str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: {value!r} is not a valid {annotation}") from None
    if base == "float" and not math.isfinite(number):  # inf/nan would train to NaN and fake metrics
        raise ConfigError(f"{where}: {value!r} is not a finite number")
    if base == "float":
        return number
    return value


def _build(cls: type, data: Mapping[str, Any], where: str, moved: Mapping[str, str] | None = None) -> Any:
    """cls(**data) with nested sections built recursively; `moved` maps old dotted keys to new ones (hint)."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    valid = {f.name: f for f in fields(cls)}
    kwargs = {}
    for key, value in data.items():
        if key not in valid:
            new = (moved or {}).get(f"{where}.{key}" if where else str(key))
            hint = f"; it moved to '{new}'" if new else _suggest(str(key), list(valid))
            raise ConfigError(f"{where}: unknown key '{key}'" + hint)
        f = valid[key]
        sub = f"{where}.{key}" if where else key
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if is_dataclass(default):
            kwargs[key] = _build(type(default), value, sub, moved)
        else:
            kwargs[key] = _coerce(value, str(f.type), sub)
    return cls(**kwargs)


def require(checks: list[tuple[bool, str, str]]) -> None:
    """Raise ConfigError('key: why') for the first (ok, key, why) that is not ok."""
    for ok, key, why in checks:
        if not ok:
            raise ConfigError(f"{key}: {why}")


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}} -> {'a.b': 1}."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def unflatten(flat: Mapping[str, Any]) -> dict[str, Any]:
    """{'a.b': 1} -> {'a': {'b': 1}}."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        node = out
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override '{key}': '{p}' is not a section")
        node[parts[-1]] = value
    return out


def merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge two nested mappings (over wins)."""
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = merge(out[k], v)
        else:
            out[k] = v
    return out


def parse_set(items: list[str] | None) -> dict[str, Any]:
    """Parse CLI ``section.key=value`` overrides (values are YAML scalars)."""
    flat = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected section.key=value")
        key, raw = item.split("=", 1)
        flat[key.strip()] = yaml.safe_load(raw)
    return unflatten(flat)


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; errors name the file and line."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f", line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}{line}: invalid YAML: {getattr(e, 'problem', e)}") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def yaml_key_lines(path: str | Path) -> dict[str, int]:
    """Map each dotted key of a YAML mapping file to its 1-based line number."""
    lines: dict[str, int] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                key = f"{prefix}{k.value}"
                lines[key] = k.start_mark.line + 1
                walk(v, key + ".")

    try:
        walk(yaml.compose(Path(path).read_text()), "")
    except (yaml.YAMLError, OSError):
        pass
    return lines


def _with_line(err: ConfigError, path: str | Path, prefix: str = "") -> ConfigError:
    """Prefix an error about key a.b with 'FILE, line N' when the key came from the file
    (`prefix`: where the mapping sits in the file, e.g. 'base.' in an experiment file)."""
    msg = str(err)
    key = msg.split(":", 1)[0].strip()
    if "unknown key '" in msg:
        head = msg.split(": unknown key '")[0].strip()
        bad = msg.split("unknown key '")[1].split("'")[0]
        key = f"{head}.{bad}" if head else bad
    line = yaml_key_lines(path).get(prefix + key)
    where = f"{path}, line {line}" if line else f"{path}"
    return ConfigError(f"{where}: {prefix}{msg}" if prefix and line else f"{where}: {msg}")
