"""Typed, frozen experiment configs that reject unknown keys.

Precedence (lowest to highest): dataclass defaults (the paper's settings) < YAML file <
CLI ``--set section.key=value`` < a Tune sample.  Derived values (item counts, paths) are
computed elsewhere and never written back here.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Mapping

import yaml

from sracl_ray.errors import UserError


class ConfigError(UserError):
    """A config file, override or sample names an unknown key or an impossible value."""


@dataclass(frozen=True)
class DataConfig:
    # Dataset name for results and prompts; "" = from the data (the file's stem, or
    # "beauty_sample" for the packaged sample when `path` is None).
    name: str = ""
    # Where the raw files live; None = the packaged sample.
    path: str | None = None
    # "auto" | "paper" (user item .txt + items.tsv) | "recbole" | "amazon_raw" | "yelp_raw"
    format: str = "auto"
    # Maximum history length seen by the model (paper: 20).
    max_len: int = 20
    # Keep only the first N users (a slice for CPU runs); None = all.
    max_users: int | None = None
    # Domain used by prompts (beauty, sports, office, yelp, movies); "" = from the name.
    domain: str = ""


@dataclass(frozen=True)
class SemanticConfig:
    # Directory of a semantic artifact (see sracl_ray/semantic/artifact.py); None = build the
    # interim MiniLM-on-titles artifact under the run's cache directory.
    artifact: str | None = None
    # "prefix" (one unit per training prefix, the authors' release) | "user" (paper wording).
    granularity: str = "prefix"
    # Cache directory for artifacts built on the fly; None = <out>/../.sracl_cache
    cache_dir: str | None = None


@dataclass(frozen=True)
class ModelConfig:
    backbone: str = "sasrec"  # sasrec | gru4rec | duorec
    hidden: int = 64
    layers: int = 2
    heads: int = 2
    ff: int = 256
    dropout: float = 0.5  # embedding and hidden dropout
    attn_dropout: float = 0.5
    ln_eps: float = 1e-12
    init_std: float = 0.02
    # DuoRec only: weight and temperature of its own contrastive regulariser.
    duorec_lambda: float = 0.1
    duorec_tau: float = 1.0


@dataclass(frozen=True)
class CLConfig:
    # full | no_cl | no_cs | no_is | unlearnable
    variant: str = "full"
    alpha: float = 0.1  # weight of L_CS
    beta: float = 0.1  # weight of L_IS
    k: int = 10  # neighbours used for both L_CS and L_IS
    temperature: float = 1.0
    substitute_prob: float = 0.2  # share of items replaced by a semantic neighbour in L_IS
    attn_dropout: float = 0.5  # dropout on the synthesis weights p, as in the authors' release


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 200
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.0
    patience: int = 10
    metric: str = "valid/mrr@10"  # early-stopping metric, always a validation metric
    seed: int = 42
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    # Split each encoder call into this many length buckets so padding is skipped exactly
    # (1 = trim the whole call to its longest row, 0 = no trimming, -1 = auto: 4 on CPU where the
    # step is compute-bound, 1 on CUDA where it is launch-bound; measured in benchmarks/RESULTS.md).
    length_buckets: int = -1
    num_threads: int = 0  # torch CPU threads; 0 = torch default
    amp: bool = False  # bf16 autocast on CUDA
    # Capture the whole step as one CUDA graph (static shapes: no length trimming); CUDA only.
    cuda_graph: bool = False
    progress: bool = True


@dataclass(frozen=True)
class EvalConfig:
    # How a tie between the target's score and another item's counts: "pessimistic" (every tied
    # item ranks above the target: a constant model scores 0) or "expected" (the exact expectation
    # of each metric under uniformly random tie-breaking). Non-finite scores always rank last.
    ties: str = "pessimistic"
    mask_history: bool = False  # exclude the user's seen items from the ranking; paper/release: off
    batch_size: int = 1024  # users scored per forward pass


@dataclass(frozen=True)
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    semantic: SemanticConfig = field(default_factory=SemanticConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    cl: CLConfig = field(default_factory=CLConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


VARIANTS = ("full", "no_cl", "no_cs", "no_is", "unlearnable")
BACKBONES = ("sasrec", "gru4rec", "duorec")
DATA_FORMATS = ("auto", "paper", "recbole", "amazon_raw", "yelp_raw")
TIES = ("pessimistic", "expected")
# Every metric the engine reports for each split (training/evaluate.py): <split>/<name>@<k>.
METRIC_NAMES, METRIC_KS = ("hr", "ndcg", "mrr"), (5, 10, 20)
# Keys that moved: the old dotted name -> the new one (the old one is rejected with this hint).
MOVED_KEYS = {"train.mask_history": "eval.mask_history", "train.eval_batch_size": "eval.batch_size"}


def metric_names(split: str = "valid") -> list[str]:
    """Every metric key the engine reports for a split, e.g. valid/ndcg@20."""
    return [f"{split}/{m}@{k}" for m in METRIC_NAMES for k in METRIC_KS]


def device_ok(name: str) -> str | None:
    """None when the device setting is usable here, else why not."""
    import re

    if name in ("auto", "cpu"):
        return None
    m = re.fullmatch(r"cuda(?::(\d+))?", name)
    if not m:
        return "must be auto, cpu, cuda or cuda:N"
    import torch

    if not torch.cuda.is_available():
        return f"{name!r} was asked for but this machine has no CUDA device (use auto or cpu)"
    if m.group(1) is not None and int(m.group(1)) >= torch.cuda.device_count():
        return f"{name!r}: this machine has {torch.cuda.device_count()} CUDA device(s)"
    return None


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
            if not math.isfinite(number):  # inf/nan would train to NaN and fake metrics
                raise ConfigError(f"{where}: {value!r} is not a finite number")
            return number
        if base == "str":
            return str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: {value!r} is not a valid {annotation}") from None
    return value


def _build(cls: type, data: Mapping[str, Any], where: str) -> Any:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    valid = {f.name: f for f in fields(cls)}
    kwargs = {}
    for key, value in data.items():
        if key not in valid:
            moved = MOVED_KEYS.get(f"{where}.{key}" if where else str(key))
            hint = f"; it moved to '{moved}'" if moved else _suggest(str(key), list(valid))
            raise ConfigError(f"{where}: unknown key '{key}'" + hint)
        f = valid[key]
        sub = f"{where}.{key}" if where else key
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if is_dataclass(default):
            kwargs[key] = _build(type(default), value, sub)
        else:
            kwargs[key] = _coerce(value, str(f.type), sub)
    return cls(**kwargs)


def validate(cfg: Config) -> Config:
    """Reject impossible values with a message naming the key."""
    checks = [
        (cfg.model.backbone in BACKBONES, "model.backbone", f"must be one of {BACKBONES}"),
        (cfg.cl.variant in VARIANTS, "cl.variant", f"must be one of {VARIANTS}"),
        (cfg.cl.alpha >= 0, "cl.alpha", "must be >= 0"),
        (cfg.cl.beta >= 0, "cl.beta", "must be >= 0"),
        (cfg.cl.k >= 1, "cl.k", "must be >= 1"),
        (cfg.cl.temperature > 0, "cl.temperature", "must be > 0"),
        (0 <= cfg.cl.substitute_prob <= 1, "cl.substitute_prob", "must be in [0, 1]"),
        (0 <= cfg.cl.attn_dropout < 1, "cl.attn_dropout", "must be in [0, 1)"),
        (0 <= cfg.model.dropout < 1, "model.dropout", "must be in [0, 1)"),
        (0 <= cfg.model.attn_dropout < 1, "model.attn_dropout", "must be in [0, 1)"),
        (cfg.model.hidden % cfg.model.heads == 0, "model.hidden", "must be divisible by model.heads"),
        (cfg.model.duorec_lambda >= 0, "model.duorec_lambda", "must be >= 0"),
        (cfg.data.max_len >= 1, "data.max_len", "must be >= 1"),
        (cfg.data.max_users is None or cfg.data.max_users >= 1, "data.max_users", "must be >= 1"),
        (cfg.semantic.granularity in ("prefix", "user"), "semantic.granularity", "must be prefix or user"),
        (cfg.train.batch_size >= 2, "train.batch_size", "must be >= 2 (in-batch negatives)"),
        (cfg.train.lr > 0, "train.lr", "must be > 0"),
        (cfg.train.epochs >= 1, "train.epochs", "must be >= 1"),
        (cfg.train.patience >= 1, "train.patience", "must be >= 1"),
        (cfg.train.metric.startswith("valid/"), "train.metric", "must be a valid/ metric (never tune on test)"),
        (cfg.train.metric in metric_names("valid"), "train.metric",
         f"{cfg.train.metric!r} is not a metric the engine reports; one of {', '.join(metric_names('valid'))}"),
        (cfg.train.length_buckets >= -1, "train.length_buckets", "must be >= -1 (-1 auto, 0 = no trimming)"),
        (cfg.train.num_threads >= 0, "train.num_threads", "must be >= 0 (0 = torch default)"),
        (cfg.data.format in DATA_FORMATS, "data.format", f"must be one of {DATA_FORMATS}"),
        (cfg.eval.ties in TIES, "eval.ties", f"must be one of {TIES}"),
        (cfg.eval.batch_size >= 1, "eval.batch_size", "must be >= 1"),
    ]
    require(checks)
    why = device_ok(cfg.train.device)
    if why:
        raise ConfigError(f"train.device: {why}")
    return cfg


def require(checks: list[tuple[bool, str, str]]) -> None:
    """Raise ConfigError('key: why') for the first (ok, key, why) that is not ok."""
    for ok, key, why in checks:
        if not ok:
            raise ConfigError(f"{key}: {why}")


def from_dict(data: Mapping[str, Any] | None, where: str = "config") -> Config:
    """Build a validated Config from a nested mapping (unknown keys are errors)."""
    cfg = _build(Config, data or {}, "")
    try:
        return validate(cfg)
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None


def to_dict(cfg: Config) -> dict[str, Any]:
    """Nested plain dict of every setting."""
    return dataclasses.asdict(cfg)


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


def _with_line(err: ConfigError, path: str | Path) -> ConfigError:
    """Prefix an error about key a.b with 'FILE, line N' when the key came from the file."""
    msg = str(err)
    key = msg.split(":", 1)[0].strip()
    if "unknown key '" in msg:
        head = msg.split(": unknown key '")[0].strip()
        bad = msg.split("unknown key '")[1].split("'")[0]
        key = f"{head}.{bad}" if head else bad
    line = yaml_key_lines(path).get(key)
    where = f"{path}, line {line}" if line else f"{path}"
    return ConfigError(f"{where}: {msg}")


# Sections of the same YAML files that belong to the semantic pipeline (semantic/settings.py):
# training ignores them, but they are still validated so a typo there is caught by any command.
PIPELINE_SECTIONS = ("prompts", "summary", "embed", "neighbours")


def _drop_pipeline(data: Mapping[str, Any]) -> dict[str, Any]:
    """The experiment-config part of a mapping; the pipeline sections are validated, then dropped."""
    pipe = {k: v for k, v in data.items() if k in PIPELINE_SECTIONS}
    if pipe:
        from sracl_ray.semantic.settings import pipeline_from_dict  # lazy: settings imports this module

        pipeline_from_dict(pipe)
    return {k: v for k, v in data.items() if k not in PIPELINE_SECTIONS}


def load(path: str | Path | None = None, overrides: list[str] | None = None,
         sample: Mapping[str, Any] | None = None) -> Config:
    """defaults < YAML file < --set overrides < a (flat or nested) Tune sample."""
    data: dict[str, Any] = load_yaml(path) if path else {}
    if path:
        try:
            data = _drop_pipeline(data)
            from_dict(data, where="")
        except ConfigError as e:
            raise _with_line(ConfigError(str(e).removeprefix(": ")), path) from None
    data = merge(data, _drop_pipeline(parse_set(overrides)))
    if sample:
        data = merge(data, unflatten(dict(sample)) if any("." in k for k in sample) else dict(sample))
    return from_dict(data, where="overrides" if path else "config")


__all__ = [
    "Config", "DataConfig", "SemanticConfig", "ModelConfig", "CLConfig", "TrainConfig", "EvalConfig",
    "metric_names", "MOVED_KEYS",
    "ConfigError", "VARIANTS", "BACKBONES", "load", "load_yaml", "from_dict", "to_dict",
    "flatten", "unflatten", "merge", "parse_set", "validate", "require",
]
