"""Mechanics shared by every typed config in this project (experiment and pipeline sections).

Building frozen dataclasses from nested mappings (unknown keys rejected with the nearest valid
name, scalars coerced, non-finite numbers and integers beyond 64 bits rejected), `--set` parsing,
YAML reading with line numbers (one loader, ConfigLoader, for every file and value a user gives:
duplicate keys and anchors/aliases are errors), and deep merging.  No project-specific settings
live here: sracl_ray/config.py (the experiment config) and sracl_ray/semantic/settings.py (the
pipeline sections) both build on it.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
import re
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any, Mapping

import yaml

from sracl_ray.errors import UserError


INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1


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
            number = int(value)
        if base == "float":
            if isinstance(value, bool):
                raise ValueError
            number = float(value)
        if base == "str":
            return str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: {value!r} is not a valid {annotation}") from None
    if base == "int" and not INT64_MIN <= number <= INT64_MAX:  # numpy, torch and the results store: int64
        raise ConfigError(f"{where}: {value!r} is out of range (a 64-bit integer)")
    if base == "int":
        return number
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


# ---------------------------------------------------------------- YAML: the one loader for users' files

MAX_DEPTH = 64  # nesting levels a config may have (PyYAML composes recursively: deeper is a RecursionError)
ALIASES_REFUSED = ("YAML anchors and aliases (&name / *name) are refused in configs (a few nested "
                   "aliases expand to gigabytes); write the values out")


class YAMLRefused(yaml.YAMLError):
    """Valid YAML that a config may not use; `line` is 1-based."""

    def __init__(self, line: int, message: str):
        super().__init__(message)
        self.line, self.message = line, message


class ConfigLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses anchors/aliases and duplicate mapping keys (at any level) and bounds nesting.

    Every YAML file or value a user gives (config and experiment files, --set values) is read with
    it, through load_yaml / parse_set / yaml_key_lines: PyYAML's own loaders silently keep the last
    of two equal keys, and expand aliases without bound."""

    def __init__(self, stream):
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            raise YAMLRefused(event.start_mark.line + 1, ALIASES_REFUSED)
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise YAMLRefused(event.start_mark.line + 1, f"nested more than {MAX_DEPTH} levels deep")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            first: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(key_node, yaml.ScalarNode):
                    continue  # `<<` merges (overrides on purpose); non-scalar keys: SafeLoader's own error
                key, line = self.construct_object(key_node), key_node.start_mark.line + 1
                if key in first:
                    raise YAMLRefused(line, f"duplicate key {key!r} (first at line {first[key]})")
                first[key] = line
        return super().construct_mapping(node, deep)


def read_yaml(text: str) -> Any:
    """Parse one YAML document with ConfigLoader (YAMLRefused / yaml.YAMLError on bad input)."""
    return yaml.load(text, Loader=ConfigLoader)  # noqa: S506 - ConfigLoader is a SafeLoader


def parse_set(items: list[str] | None) -> dict[str, Any]:
    """Parse CLI ``section.key=value`` overrides (values are YAML scalars)."""
    flat = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected section.key=value")
        key, raw = item.split("=", 1)
        try:
            flat[key.strip()] = read_yaml(raw)
        except YAMLRefused as e:
            raise ConfigError(f"--set {item!r}: {e.message}") from None
        except yaml.YAMLError as e:
            raise ConfigError(f"--set {item!r}: not a valid YAML value ({getattr(e, 'problem', None) or e}); "
                              f"quote it to pass a string") from None
    return unflatten(flat)


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; errors name the file and line."""
    path = Path(path)
    try:
        data = read_yaml(path.read_text(encoding="utf-8"))
    except YAMLRefused as e:
        raise ConfigError(f"{path}, line {e.line}: {e.message}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f", line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}{line}: invalid YAML: {getattr(e, 'problem', e)}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
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
        walk(yaml.compose(Path(path).read_text(), Loader=ConfigLoader), "")
    except (yaml.YAMLError, OSError, UnicodeDecodeError):
        pass
    return lines


def locate(path: str | Path | None, key: str) -> str:
    """'FILE, line N' of a dotted key in a YAML file ('FILE' when the key is not in it; '' without a file)."""
    if not path:
        return ""
    line = yaml_key_lines(path).get(key) if Path(path).exists() else None
    return f"{path}, line {line}" if line else f"{path}"


def where(path: str | Path | None, key: str) -> str:
    """'FILE, line N: key' for messages about one key of a YAML file."""
    loc = locate(path, key)
    return f"{loc}: {key}" if loc else key


def check_keys(data: Any, valid: list[str], path: str | Path | None, section: str) -> None:
    """A mapping whose keys are all in `valid` (an unknown one: the nearest valid name), else ConfigError
    naming the file and line; `section` is where the mapping sits ('' at the top)."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where(path, section or '<top level>')}: expected a mapping, got {type(data).__name__}")
    for key in data:
        if key not in valid:
            loc = locate(path, f"{section}.{key}" if section else str(key))
            head = f"{loc}: " if loc else ""
            raise ConfigError(f"{head}{section + ': ' if section else ''}unknown key '{key}'{_suggest(str(key), valid)}")


_KEY_HEAD = re.compile(r"([A-Za-z_][\w.]*): (.*)$", re.S)


def _with_line(err: ConfigError, path: str | Path, prefix: str = "") -> ConfigError:
    """Prefix an error about key a.b with 'FILE, line N' when the key came from the file
    (`prefix`: where the mapping sits in the file, e.g. 'base.' in an experiment file)."""
    msg = str(err).removeprefix(": ").strip()
    m = _KEY_HEAD.match(msg)
    head, rest = (m.group(1), m.group(2)) if m else ("", msg)
    key = head
    if rest.startswith("unknown key '"):
        bad = rest.split("'")[1]
        key = f"{head}.{bad}" if head else bad
    loc = locate(path, prefix + key) if key else f"{path}"
    shown = ".".join(filter(None, (prefix.rstrip("."), head)))
    return ConfigError(f"{loc}: {shown}: {rest}" if shown else f"{loc}: {rest}")
