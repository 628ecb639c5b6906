"""Experiment files: one paper experiment = base config + a search space + how to run it.

An experiment YAML is checked completely before any trial starts: unknown keys (with the
nearest valid one suggested), impossible ranges, search keys that are not config settings and
grid values that would make an invalid config all raise `ConfigError` naming the file and line.

    name: ablation                      # results store column `experiment`
    base: {data: {...}, train: {...}}   # nested config overrides (same schema as a config file)
    search:
      mode: grid                        # grid: the cross product of `grid` (seeds included)
      grid: {cl.variant: [full, no_cl], train.seed: [1, 2, 3]}
      # mode: optuna                    # optuna: TPE over `space`, ASHA prunes on `metric`
      # space: {cl.alpha: {type: loguniform, low: 0.01, high: 1.0}, cl.k: {type: choice, values: [5, 10]}}
      # num_samples: 20
    metric: valid/ndcg@20               # always a validation metric
    mode: max
    resources: {cpus: 1, gpus: 0.25}    # per trial; gpus fall back to 0 on a cluster without GPUs
    max_concurrent_trials: 4
    max_failures: 2                     # retries per trial, each resuming from its last epoch
"""
from __future__ import annotations

import dataclasses
import difflib
import itertools
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from sracl_ray import config as C, variants as V
from sracl_ray.config import Config, ConfigError
from sracl_ray.configtools import _with_line, check_keys, where

SPACE_TYPES = ("uniform", "loguniform", "quniform", "randint", "choice")
_MAX_VALIDATED_POINTS = 20_000


@dataclass(frozen=True)
class Resources:
    cpus: float = 1.0
    gpus: float = 0.0
    # gpus > 0 on a cluster that shows no GPU yet (workers still booting after `ray up`): wait this
    # many seconds for a GPU node to join before falling back to CPU-only trials.
    gpu_wait_s: float = 300.0
    # true: never fall back to CPU; no GPU after gpu_wait_s is an error.
    require_gpu: bool = False


@dataclass(frozen=True)
class Search:
    mode: str = "grid"  # grid | optuna
    grid: dict[str, list] = field(default_factory=dict)  # dotted key (or section) -> values
    space: dict[str, dict] = field(default_factory=dict)  # optuna: dotted key -> distribution
    num_samples: int = 1  # optuna: trials to draw (grid: must stay 1; repeats = identical trials: grid seeds)
    seed: int | None = 0  # optuna sampler seed
    grace_period: int = 3  # ASHA: epochs before a trial can be pruned
    reduction_factor: int = 3  # ASHA: keep 1/reduction_factor at each rung
    # Refuse a sweep of more trials than this before any work (raise it on purpose for a big grid).
    max_trials: int = 1000


@dataclass(frozen=True)
class Experiment:
    name: str
    base: dict[str, Any]  # nested config overrides
    search: Search
    metric: str = "valid/ndcg@20"
    mode: str = "max"
    resources: Resources = field(default_factory=Resources)
    max_concurrent_trials: int | None = None
    max_failures: int = 2
    source: str = ""  # the file it came from (for messages)

    def base_config(self) -> Config:
        return C.from_dict(self.base, where=self.source or "base")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.pop("source")
        return d


def config_keys() -> tuple[set[str], set[str]]:
    """(every dotted leaf key such as 'cl.alpha', every section name such as 'data')."""
    flat = C.flatten(C.to_dict(Config()))
    return set(flat), {k.split(".")[0] for k in flat}


def point_overrides(point: Mapping[str, Any]) -> dict[str, Any]:
    """A flat sample {'cl.alpha': 0.2, 'data': {...}} -> nested overrides (sections first)."""
    nested: dict[str, Any] = {}
    for key in sorted(point, key=lambda k: k.count(".")):  # whole sections before their keys
        nested = C.merge(nested, C.unflatten({key: point[key]}))
    return nested


def trial_config(base: Mapping[str, Any], point: Mapping[str, Any]) -> Config:
    """defaults < experiment base < this trial's sample."""
    return C.from_dict(C.merge(base, point_overrides(point)), where="trial config")


def iter_grid_points(search: Search):
    """The points of a grid search, lazily (the cross product, first key varying slowest)."""
    keys = list(search.grid)
    return (dict(zip(keys, combo)) for combo in itertools.product(*(search.grid[k] for k in keys)))


def grid_points(search: Search) -> list[dict[str, Any]]:
    """Every point of a grid search (the cross product, first key varying slowest)."""
    return list(iter_grid_points(search))


def _check_search_key(key: str, leaves: set[str], sections: set[str], where: str) -> None:
    if key in leaves or key in sections:
        return
    near = difflib.get_close_matches(key, sorted(leaves | sections), n=1, cutoff=0.6)
    hint = f"; did you mean '{near[0]}'?" if near else ""
    raise ConfigError(f"{where}: '{key}' is not a config setting{hint}")


def _check_distribution(key: str, spec: Any, where: str) -> None:
    if not isinstance(spec, Mapping) or spec.get("type") not in SPACE_TYPES:
        raise ConfigError(f"{where}: expected {{type: one of {', '.join(SPACE_TYPES)}, ...}}, got {spec!r}")
    t = spec["type"]
    allowed = {"choice": ["type", "values"], "quniform": ["type", "low", "high", "q"]}.get(t, ["type", "low", "high"])
    for k in spec:
        if k not in allowed:
            raise ConfigError(f"{where}: unknown key '{k}' for type {t} (allowed: {', '.join(allowed)})")
    if t == "choice":
        if not isinstance(spec.get("values"), list) or not spec["values"]:
            raise ConfigError(f"{where}: choice needs a non-empty list `values`")
        return
    try:
        low, high = float(spec["low"]), float(spec["high"])
    except (KeyError, TypeError, ValueError):
        raise ConfigError(f"{where}: {t} needs numeric `low` and `high`") from None
    if not low < high:
        raise ConfigError(f"{where}: low ({low}) must be < high ({high})")
    if t == "loguniform" and low <= 0:
        raise ConfigError(f"{where}: loguniform needs low > 0 (got {low})")
    if t == "quniform" and not float(spec.get("q", 0)) > 0:
        raise ConfigError(f"{where}: quniform needs q > 0")


def _space_probe_values(spec: Mapping) -> list[Any]:
    """Values that bound a distribution (checked against the config's own validation)."""
    if spec["type"] == "choice":
        return list(spec["values"])
    if spec["type"] == "randint":  # high is exclusive in Tune
        return [int(spec["low"]), int(spec["high"]) - 1]
    return [float(spec["low"]), float(spec["high"])]


def _build_search(raw: Any, path: str) -> Search:
    check_keys(raw, [f.name for f in dataclasses.fields(Search)], path, "search")
    try:
        s = Search(**raw)
    except TypeError as e:
        raise ConfigError(f"{path}: search: {e}") from None
    leaves, sections = config_keys()
    if s.mode not in ("grid", "optuna"):
        raise ConfigError(f"{where(path, 'search.mode')}: must be grid or optuna, got {s.mode!r}")
    if s.mode == "grid":
        if s.space:
            raise ConfigError(f"{where(path, 'search.space')}: only for mode optuna (grid mode lists `grid` values)")
        for key, values in s.grid.items():
            _check_search_key(key, leaves, sections, where(path, f"search.grid.{key}"))
            if not isinstance(values, list) or not values:
                raise ConfigError(f"{where(path, f'search.grid.{key}')}: expected a non-empty list of values")
    else:
        if s.grid:
            raise ConfigError(f"{where(path, 'search.grid')}: only for mode grid (optuna samples `space`)")
        if not s.space:
            raise ConfigError(f"{where(path, 'search.space')}: optuna mode needs a non-empty space")
        for key, spec in s.space.items():
            at = where(path, f"search.space.{key}")
            _check_search_key(key, leaves, sections, at)
            _check_distribution(key, spec, at)
            if key.split(".")[0] in ("data", "semantic") and spec["type"] != "choice":
                raise ConfigError(f"{at}: data/semantic settings can only be searched with type choice "
                                  "(each distinct value is prepared once before the sweep)")
    for key, low in (("num_samples", 1), ("grace_period", 1), ("reduction_factor", 2), ("max_trials", 1)):
        value = getattr(s, key)
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ConfigError(f"{where(path, f'search.{key}')}: must be an integer >= {low}, got {value!r}")
    if s.mode == "grid":
        _check_grid_repeats(s, path)
    n = trial_count(s)
    if n > s.max_trials:
        sizes = " x ".join(str(len(v)) for v in s.grid.values()) if s.mode == "grid" else f"{s.num_samples} samples"
        raise ConfigError(f"{where(path, 'search')}: {n:,} trials ({sizes}) is more than search.max_trials="
                          f"{s.max_trials:,}; shrink the search, or raise search.max_trials if you mean it")
    return s


def trial_count(search: Search) -> int:
    """How many trials a search runs (without expanding a grid)."""
    if search.mode != "grid":
        return search.num_samples
    return math.prod(len(v) for v in search.grid.values()) * search.num_samples


def _check_grid_repeats(s: Search, path: str) -> None:
    """A grid never runs one configuration twice: repeats are identical trials (same seed), which
    `results` would show as a spread of n copies of one run."""
    if s.num_samples != 1:
        raise ConfigError(f"{where(path, 'search.num_samples')}: {s.num_samples} on a grid would run every point "
                          f"{s.num_samples} times with the same seed (identical trials); list seeds in the grid "
                          f"instead (search.grid: {{train.seed: [1, 2, 3]}})")
    for key, values in s.grid.items():
        seen: set[str] = set()
        for v in values:
            text = json.dumps(v, sort_keys=True, default=str)
            if text in seen:
                raise ConfigError(f"{where(path, f'search.grid.{key}')}: value {v!r} is listed twice (the grid would "
                                  f"run identical trials)")
            seen.add(text)


def _build_resources(raw: Any, path: str) -> Resources:
    check_keys(raw, [f.name for f in dataclasses.fields(Resources)], path, "resources")
    r = Resources(**{k: raw[k] for k in raw})
    for key in ("cpus", "gpus", "gpu_wait_s"):
        v = getattr(r, key)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v or v in (float("inf"), -float("inf")):
            raise ConfigError(f"{where(path, f'resources.{key}')}: must be a finite number, got {v!r}")
    if r.cpus <= 0:
        raise ConfigError(f"{where(path, 'resources.cpus')}: must be > 0, got {r.cpus}")
    if r.gpus < 0 or (r.gpus > 1 and not float(r.gpus).is_integer()):
        raise ConfigError(f"{where(path, 'resources.gpus')}: must be a fraction in [0, 1] or a whole number, "
                          f"got {r.gpus}")
    if r.gpu_wait_s < 0:
        raise ConfigError(f"{where(path, 'resources.gpu_wait_s')}: must be >= 0 seconds, got {r.gpu_wait_s}")
    if not isinstance(r.require_gpu, bool):
        raise ConfigError(f"{where(path, 'resources.require_gpu')}: must be true or false, got {r.require_gpu!r}")
    if r.require_gpu and r.gpus == 0:
        raise ConfigError(f"{where(path, 'resources.require_gpu')}: true needs resources.gpus > 0")
    return Resources(float(r.cpus), float(r.gpus), float(r.gpu_wait_s), r.require_gpu)


def validate_points(exp: Experiment) -> None:
    """Build the config of every grid point (or the bounds of every optuna dimension)."""
    base = exp.base_config()
    base_d = C.to_dict(base)
    if exp.search.mode == "grid":
        points = grid_points(exp.search)
        if len(points) > _MAX_VALIDATED_POINTS:  # huge grids: validate each value on its own
            points = [{k: v} for k, vals in exp.search.grid.items() for v in vals]
        for point in points:
            try:
                trial_config(base_d, point)
            except ConfigError as e:
                raise ConfigError(f"{exp.source}: search.grid point {json.dumps(point, default=str)}: {e}") from None
    else:
        for key, spec in exp.search.space.items():
            for value in _space_probe_values(spec):
                try:
                    trial_config(base_d, {key: value})
                except ConfigError as e:
                    raise ConfigError(f"{where(exp.source, f'search.space.{key}')}: value {value!r}: {e}") from None


def from_dict(raw: Mapping[str, Any], source: str = "experiment") -> Experiment:
    """Validate a parsed experiment mapping completely (see the module docstring)."""
    top = [f.name for f in dataclasses.fields(Experiment) if f.name != "source"]
    check_keys(raw, top, source, "")
    if "name" not in raw or not re.fullmatch(r"[A-Za-z0-9_.-]+", str(raw["name"])):
        raise ConfigError(f"{where(source, 'name')}: needs a name of letters, digits, '_', '-', '.'")
    base = raw.get("base") or {}
    try:
        C.from_dict(base, where="")
    except ConfigError as e:
        raise _with_line(e, source, "base.") from None
    metric, mode = raw.get("metric", "valid/ndcg@20"), raw.get("mode", "max")
    if not isinstance(metric, str) or not metric.startswith("valid/"):
        raise ConfigError(f"{where(source, 'metric')}: must be a validation metric such as valid/ndcg@20 "
                          f"(never tune or select on test), got {metric!r}")
    if metric not in C.metric_names("valid"):  # checked before Ray starts, not after an epoch
        raise ConfigError(f"{where(source, 'metric')}: {metric!r} is not a metric the engine reports; "
                          f"one of {', '.join(C.metric_names('valid'))}")
    if mode not in ("max", "min"):
        raise ConfigError(f"{where(source, 'mode')}: must be max or min, got {mode!r}")
    mct, mf = raw.get("max_concurrent_trials"), raw.get("max_failures", 2)
    if mct is not None and (not isinstance(mct, int) or isinstance(mct, bool) or mct < 1):
        raise ConfigError(f"{where(source, 'max_concurrent_trials')}: must be an integer >= 1 or null, got {mct!r}")
    if not isinstance(mf, int) or isinstance(mf, bool) or mf < -1:
        raise ConfigError(f"{where(source, 'max_failures')}: must be an integer >= 0 (-1 = unlimited), got {mf!r}")
    exp = Experiment(name=str(raw["name"]), base=dict(base), search=_build_search(raw.get("search") or {}, source),
                     metric=metric, mode=mode, resources=_build_resources(raw.get("resources") or {}, source),
                     max_concurrent_trials=mct, max_failures=mf, source=source)
    validate_points(exp)
    return exp


def load_experiment(path: str | Path, overrides: list[str] | None = None) -> Experiment:
    """Read and validate an experiment file; `--set a.b=c` overrides apply to its base config."""
    raw = C.load_yaml(path)
    if overrides:
        raw = {**raw, "base": C.merge(raw.get("base") or {}, C.parse_set(overrides))}
    return from_dict(raw, source=str(path))


def inert_notes(exp: Experiment) -> list[str]:
    """The distinct notes (config.inert_note) of the sweep's trial configs: settings that do nothing for
    some trials' variants (a grid often crosses them on purpose; said once each, never an error)."""
    base = C.to_dict(exp.base_config())
    points = iter_grid_points(exp.search) if exp.search.mode == "grid" else [{}]
    return list(dict.fromkeys(n for p in points if (n := C.inert_note(trial_config(base, p)))))


def prepare_groups(exp: Experiment) -> dict[str, Config]:
    """One representative config per distinct (data, semantic) section the sweep can visit.

    The representative is the group's config that needs the most from the semantic artifact (a
    contrastive variant with the largest k), so one Prepared serves every trial of the group.
    """
    base = C.to_dict(exp.base_config())
    if exp.search.mode == "grid":
        points = grid_points(exp.search)
    else:
        choice_keys = [k for k, s in exp.search.space.items() if k.split(".")[0] in ("data", "semantic", "cl")
                       and s["type"] == "choice"]
        points = [dict(zip(choice_keys, combo)) for combo in
                  itertools.product(*(exp.search.space[k]["values"] for k in choice_keys))] or [{}]
        k_spec = exp.search.space.get("cl.k")
        if k_spec and k_spec["type"] != "choice":
            points = [{**p, "cl.k": _space_probe_values(k_spec)[-1]} for p in points]
    groups: dict[str, Config] = {}
    for point in points:
        cfg = trial_config(base, point)
        key = prepare_key(cfg)
        rank = (V.get(cfg.cl.variant).uses_cl, C.max_k(cfg.cl))
        if key not in groups or rank > (V.get(groups[key].cl.variant).uses_cl, C.max_k(groups[key].cl)):
            groups[key] = cfg
    return groups


# semantic settings applied when the prepared inputs are moved to the device (training/inputs.py),
# so trials that differ only in these share one prepared input
DEVICE_ONLY_SEMANTIC = ("normalize", "exclude", "exclude_same_user", "neighbours", "item_neighbours")


def prepare_key(cfg: Config) -> str:
    """Trials with equal data and semantic sections share one prepared input."""
    d = C.to_dict(cfg)
    semantic = {k: v for k, v in d["semantic"].items() if k not in DEVICE_ONLY_SEMANTIC}
    return json.dumps({"data": d["data"], "semantic": semantic}, sort_keys=True, default=str)


def shrink_for_smoke(exp: Experiment, max_users: int = 60, epochs: int = 2, trials: int = 2,
                     cache_dir: str | None = None) -> Experiment:
    """The same experiment at CI size: packaged sample, `trials` trials of `epochs` epochs."""
    base = C.merge(exp.base, {"data": {"name": "beauty_sample", "path": None, "format": "auto",
                                       "max_users": max_users, "domain": ""},
                              "semantic": {"artifact": None, **({"cache_dir": cache_dir} if cache_dir else {})},
                              "train": {"epochs": epochs, "patience": max(epochs, 1), "progress": False}})
    search = exp.search
    if search.mode == "grid":
        grid, budget = {}, trials
        for key, values in search.grid.items():  # vary the first varying key, pin the others
            if key.split(".")[0] == "data":
                values = values[:1]
            take = values[:budget] if budget > 1 else values[:1]
            budget = max(1, budget // max(1, len(take)))
            grid[key] = take
        search = dataclasses.replace(search, grid=grid)
    else:
        # grace period past the last epoch: ASHA never prunes a smoke trial (each must write its row)
        search = dataclasses.replace(search, num_samples=trials, grace_period=epochs + 1)
    shrunk = dataclasses.replace(exp, base=base, search=search, max_concurrent_trials=None,
                                 resources=Resources(cpus=1.0, gpus=0.0))
    validate_points(shrunk)
    return shrunk
