"""Typed, frozen experiment configs that reject unknown keys.

Precedence (lowest to highest): dataclass defaults (the paper's settings) < YAML file <
CLI ``--set section.key=value`` < a Tune sample.  Derived values (item counts, paths) are
computed elsewhere and never written back here.
"""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

from sracl_ray import metrics as M, variants as V
from sracl_ray.configtools import (ConfigError, _build, _with_line, flatten, load_yaml, merge,
                                   parse_set, require, unflatten)
from sracl_ray.semantic.settings import SECTIONS as PIPELINE_SECTIONS, PipelineConfig, pipeline_from_dict

log = logging.getLogger(__name__)


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
    # Units the L_CS neighbours are drawn from: train (the training prefixes only) | release (the
    # authors' release: also each user's whole training sequence and its test input, so validation
    # items reach training through L_CS; semantic/units.py).  release needs granularity prefix.
    unit_pool: str = "train"
    # Cache directory for artifacts built on the fly; None = <out>/../.sracl_cache
    cache_dir: str | None = None
    # Synthesis-head input: false = the raw encoder outputs (the authors' release): the stored unit
    # vector times its norm (artifact unit_norm.npy; an artifact without norms falls back to the
    # unit vectors, with a warning); true = the L2-normalised unit vectors.  docs/FIDELITY.md.
    normalize: bool = False
    # Which stored L_CS neighbours a unit may not use (the first k of the rest are kept, rows too short
    # recomputed exactly): none (the release) | same_user (the user's own other prefixes) |
    # longer_same_user (only the user's longer prefixes: the ones that contain the sample's training
    # target).  Item neighbours (L_IS) are unchanged.  semantic/composition.py, docs/FIDELITY.md.
    exclude: str = "none"
    # Deprecated spelling of exclude=same_user (still accepted, with a log line saying so).
    exclude_same_user: bool = False
    # L_CS neighbour table: semantic (the artifact's) | random_other_user (k uniformly random units of
    # other users, seeded by train.seed) | cooccurrence (Jaccard over the units' item sets: collaborative,
    # no text) | shuffled (the artifact's table as if the unit embeddings
    # were permuted among units: the same structure, the semantics scrambled).  Controls for where
    # SRA-CL's gain comes from; item neighbours (L_IS) are unchanged.  training/controls.py.
    neighbours: str = "semantic"
    # L_IS item table: semantic (the artifact's) | random (k random other items, seeded by train.seed) |
    # cooccurrence (Jaccard over the training users of each item: collaborative, no text).  The
    # item-side control; unit neighbours (L_CS) are unchanged.  training/controls.py.
    item_neighbours: str = "semantic"


@dataclass(frozen=True)
class ModelConfig:
    # sasrec | gru4rec | duorec; a setting its backbone does not use (BACKBONE_SETTINGS) must stay at
    # its default (e.g. model.heads for gru4rec: an error, not silently ignored).
    backbone: str = "sasrec"
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
    # full | no_cl | no_cs | no_is | unlearnable | self_view (sracl_ray/variants.py)
    variant: str = "full"
    alpha: float = 0.1  # weight of L_CS
    beta: float = 0.1  # weight of L_IS
    k: int = 10  # neighbours used for both L_CS and L_IS (the shortcut; k_user / k_item override it)
    k_user: int | None = None  # L_CS: unit neighbours mixed per sample (None: cl.k)
    k_item: int | None = None  # L_IS: item neighbours a substituted item is drawn from (None: cl.k)
    temperature: float = 1.0
    substitute_prob: float = 0.2  # share of items replaced by a semantic neighbour in L_IS
    attn_dropout: float = 0.5  # dropout on the synthesis weights p, as in the authors' release
    # L_CS form: "release" = 2N NT-Xent over (anchor, synthesised positive) pairs (the authors'
    # code); "paper" = Eq. 10, one-directional InfoNCE against the other rows' positives.
    cs_form: str = "release"
    # L_CS anchor: "reencode" = its own encoder pass (own dropout mask; the authors' code);
    # "shared" = the L_Rec pass reused.
    cs_anchor: str = "reencode"


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 200
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.0
    patience: int = 10
    # release: RecBole's rule as the authors' release runs it (>= on values rounded to 4 decimals,
    # stop after more than `patience` epochs without one); strict: > on the raw value, stop after
    # `patience` (training/stopping.py, docs/FIDELITY.md).
    stop_rule: str = "release"
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
    # L_Rec softmax over items 1..n ("exclude" the padding column 0: the authors' code) or over
    # 0..n ("include": padding is one more negative).
    ce_padding: str = "exclude"


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


VARIANTS = V.NAMES  # sracl_ray/variants.py
BACKBONES = ("sasrec", "gru4rec", "duorec")
DATA_FORMATS = ("auto", "paper", "recbole", "amazon_raw", "yelp_raw")
TIES = M.TIE_POLICIES
STOP_RULES = ("release", "strict")  # train.stop_rule: what each means is training/stopping.py
NEIGHBOUR_TABLES = ("semantic", "random_other_user", "cooccurrence", "shuffled")  # semantic.neighbours: training/controls.py
UNIT_POOLS = ("train", "release")  # semantic.unit_pool: semantic/units.py
EXCLUSIONS = ("none", "same_user", "longer_same_user")  # semantic.exclude: semantic/composition.py
ITEM_TABLES = ("semantic", "random", "cooccurrence")  # semantic.item_neighbours: training/controls.py
CS_FORMS, CS_ANCHORS, CE_PADDING = ("release", "paper"), ("reencode", "shared"), ("exclude", "include")
SEED_MAX = (1 << 63) - 1  # train.seed range: [0, SEED_MAX] (see validate)
# Keys that moved: the old dotted name -> the new one (the old one is rejected with this hint).
MOVED_KEYS = {"train.mask_history": "eval.mask_history", "train.eval_batch_size": "eval.batch_size"}


def dataset_label(data: DataConfig) -> str:
    """The dataset's name when the data itself is not at hand: data.name, else the path's last part."""
    if data.name:
        return data.name
    return Path(data.path).name if data.path else "beauty_sample"


def k_user(cl: CLConfig) -> int:
    """Unit neighbours L_CS mixes: cl.k_user, else cl.k."""
    return cl.k if cl.k_user is None else cl.k_user


def k_item(cl: CLConfig) -> int:
    """Item neighbours L_IS draws substitutes from: cl.k_item, else cl.k."""
    return cl.k if cl.k_item is None else cl.k_item


def exclusion(sem: SemanticConfig) -> str:
    """The L_CS neighbours left out: semantic.exclude, or same_user for the deprecated exclude_same_user."""
    return "same_user" if sem.exclude_same_user else sem.exclude


def max_k(cl: CLConfig) -> int:
    """The most neighbours either loss reads (what an artifact must store)."""
    return max(k_user(cl), k_item(cl))


def loss_weights(cl: CLConfig) -> tuple[float, float]:
    """(alpha, beta) actually applied for the configured variant (no_cl: both 0, no_cs: alpha 0, no_is: beta 0)."""
    return V.get(cl.variant).weights(cl.alpha, cl.beta)


# Settings that only one loss reads (training/step.py, training/inputs.py, training/fit.py).
CS_ONLY = ("cl.cs_form", "cl.cs_anchor", "semantic.exclude", "semantic.exclude_same_user", "semantic.unit_pool",
           "semantic.granularity", "cl.k_user", "semantic.neighbours")
SYNTH_ONLY = ("semantic.normalize", "cl.attn_dropout")  # the L_CS synthesis head (not built for unlearnable)
IS_ONLY = ("cl.substitute_prob", "cl.k_item", "semantic.item_neighbours")
CL_SHARED = ("cl.k", "cl.temperature", "semantic.artifact", "semantic.cache_dir")  # L_CS or L_IS


def inert_settings(cfg: Config) -> list[str]:
    """The settings given a non-default value that do nothing for this variant and these weights, each as
    'key=value'; [] when every setting counts.  A note (sweeps cross them on purpose), not an error."""
    alpha, beta = loss_weights(cfg.cl)
    variant = V.get(cfg.cl.variant)
    inert: list[str] = []
    if not variant.cs:
        inert.append("cl.alpha")
    if not variant.is_:
        inert.append("cl.beta")
    if alpha == 0:
        inert += [*CS_ONLY, *SYNTH_ONLY]
    elif not variant.cs_neighbours:  # self_view: L_CS reads no neighbour and no synthesis head
        inert += [k for k in CS_ONLY if k != "cl.cs_form" and k != "cl.cs_anchor"] + list(SYNTH_ONLY)
    elif not variant.learned_mix:
        inert += SYNTH_ONLY
    if beta == 0:
        inert += IS_ONLY
    if alpha == 0 and beta == 0:
        inert += CL_SHARED
    flat, default = flatten(to_dict(cfg)), flatten(to_dict(Config()))
    return [f"{key}={scalar_text(flat[key])}" for key in inert if flat[key] != default[key]]


def scalar_text(value: Any) -> str:
    """A setting's value as it is written in YAML / --set (true, null, 0.1, text)."""
    return "true" if value is True else "false" if value is False else "null" if value is None else str(value)


def inert_note(cfg: Config) -> str | None:
    """One log line naming the settings that do nothing here (inert_settings), or None."""
    inert = inert_settings(cfg)
    if not inert:
        return None
    alpha, beta = loss_weights(cfg.cl)
    used = " and ".join(n for n, w in (("L_CS", alpha), ("L_IS", beta)) if w > 0) or "neither L_CS nor L_IS"
    return (f"cl.variant={cfg.cl.variant} (alpha={alpha:g}, beta={beta:g}) trains with {used}: "
            f"{', '.join(inert)} {'has' if len(inert) == 1 else 'have'} no effect")


def metric_names(split: str = "valid") -> list[str]:
    """Every metric key the engine reports for a split, e.g. valid/ndcg@20 (sracl_ray/metrics.py)."""
    return M.keys(split)


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


# The model settings each backbone reads (models/: sasrec.py, gru4rec.py, duorec.py).  GRU4Rec is one
# GRU layer over the item embeddings (the authors' and RecBole's setup), so it has no layers/heads.
_TRANSFORMER = ("hidden", "layers", "heads", "ff", "dropout", "attn_dropout", "ln_eps", "init_std")
BACKBONE_SETTINGS = {
    "sasrec": _TRANSFORMER,
    "gru4rec": ("hidden", "dropout", "init_std"),
    "duorec": (*_TRANSFORMER, "duorec_lambda", "duorec_tau"),
}


def unused_model_settings(model: ModelConfig) -> list[str]:
    """The model settings given a non-default value that the chosen backbone does not read."""
    used, default = BACKBONE_SETTINGS.get(model.backbone, ()), ModelConfig()
    return [f.name for f in fields(ModelConfig) if f.name != "backbone" and f.name not in used
            and getattr(model, f.name) != getattr(default, f.name)]


def validate(cfg: Config) -> Config:
    """Reject impossible values with a message naming the key."""
    unused = unused_model_settings(cfg.model)
    if unused and cfg.model.backbone in BACKBONES:
        raise ConfigError(f"model.{unused[0]}: model.backbone={cfg.model.backbone} does not use it (it reads "
                          f"model.{', model.'.join(BACKBONE_SETTINGS[cfg.model.backbone])}); leave it at its "
                          f"default or choose another backbone")
    checks = [
        (cfg.model.backbone in BACKBONES, "model.backbone", f"must be one of {BACKBONES}"),
        (cfg.cl.variant in VARIANTS, "cl.variant", f"must be one of {VARIANTS}"),
        (cfg.cl.alpha >= 0, "cl.alpha", "must be >= 0"),
        (cfg.cl.beta >= 0, "cl.beta", "must be >= 0"),
        (cfg.cl.k >= 1, "cl.k", "must be >= 1"),
        (cfg.cl.k_user is None or cfg.cl.k_user >= 1, "cl.k_user", "must be >= 1 (or null: cl.k)"),
        (cfg.cl.k_item is None or cfg.cl.k_item >= 1, "cl.k_item", "must be >= 1 (or null: cl.k)"),
        (cfg.cl.temperature > 0, "cl.temperature", "must be > 0"),
        (0 <= cfg.cl.substitute_prob <= 1, "cl.substitute_prob", "must be in [0, 1]"),
        (0 <= cfg.cl.attn_dropout < 1, "cl.attn_dropout", "must be in [0, 1)"),
        (cfg.cl.cs_form in CS_FORMS, "cl.cs_form", f"must be one of {CS_FORMS}"),
        (cfg.cl.cs_anchor in CS_ANCHORS, "cl.cs_anchor", f"must be one of {CS_ANCHORS}"),
        (cfg.train.ce_padding in CE_PADDING, "train.ce_padding", f"must be one of {CE_PADDING}"),
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
        (cfg.train.stop_rule in STOP_RULES, "train.stop_rule", f"must be one of {STOP_RULES}"),
        (cfg.semantic.neighbours in NEIGHBOUR_TABLES, "semantic.neighbours", f"must be one of {NEIGHBOUR_TABLES}"),
        (cfg.semantic.exclude in EXCLUSIONS, "semantic.exclude", f"must be one of {EXCLUSIONS}"),
        (cfg.semantic.unit_pool in UNIT_POOLS, "semantic.unit_pool", f"must be one of {UNIT_POOLS}"),
        (cfg.semantic.unit_pool == "train" or cfg.semantic.granularity == "prefix", "semantic.unit_pool",
         "release is the release's pool of prefixes: it needs semantic.granularity=prefix"),
        (cfg.semantic.item_neighbours in ITEM_TABLES, "semantic.item_neighbours", f"must be one of {ITEM_TABLES}"),
        (not cfg.semantic.exclude_same_user or cfg.semantic.exclude in ("none", "same_user"),
         "semantic.exclude_same_user", f"true means semantic.exclude=same_user, which contradicts "
         f"semantic.exclude={cfg.semantic.exclude}; set only semantic.exclude"),
        (cfg.train.metric.startswith("valid/"), "train.metric", "must be a valid/ metric (never tune on test)"),
        (cfg.train.metric in metric_names("valid"), "train.metric",
         f"{cfg.train.metric!r} is not a metric the engine reports; one of {', '.join(metric_names('valid'))}"),
        (cfg.train.length_buckets >= -1, "train.length_buckets", "must be >= -1 (-1 auto, 0 = no trimming)"),
        (cfg.train.num_threads >= 0, "train.num_threads", "must be >= 0 (0 = torch default)"),
        (0 <= cfg.train.seed <= SEED_MAX, "train.seed",
         f"{cfg.train.seed} is out of range: must be in [0, 2**63 - 1] (numpy's default_rng takes no negative "
         f"seed, torch.manual_seed none >= 2**64, and results store seeds as int64)"),
        (cfg.data.format in DATA_FORMATS, "data.format", f"must be one of {DATA_FORMATS}"),
        (cfg.eval.ties in TIES, "eval.ties", f"must be one of {TIES}"),
        (cfg.eval.batch_size >= 1, "eval.batch_size", "must be >= 1"),
    ]
    require(checks)
    why = device_ok(cfg.train.device)
    if why:
        raise ConfigError(f"train.device: {why}")
    return cfg


def from_dict(data: Mapping[str, Any] | None, where: str = "config") -> Config:
    """Build a validated Config from a nested mapping (unknown keys are errors)."""
    cfg = _build(Config, data or {}, "", MOVED_KEYS)
    try:
        return validate(cfg)
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None


def to_dict(cfg: Config) -> dict[str, Any]:
    """Nested plain dict of every setting."""
    return dataclasses.asdict(cfg)


# The keys that mark a YAML mapping as an experiment file (sracl_ray/sweeps/experiment.py defines
# the format and validates every key) rather than a plain config: every experiment has a name and
# usually a base and a search; no config section is called so.
EXPERIMENT_MARKERS = ("name", "base", "search")


def is_experiment_mapping(data: Mapping[str, Any]) -> bool:
    """True for an experiment file's top level (`train --config` then uses its `base` section)."""
    return bool(set(data) & set(EXPERIMENT_MARKERS)) and not set(data) & {f.name for f in fields(Config)}


def split_sections(data: Mapping[str, Any]) -> tuple[dict, dict]:
    """(experiment-config part, pipeline part: prompts/summary/embed/neighbours) of a mapping."""
    core = {k: v for k, v in data.items() if k not in PIPELINE_SECTIONS}
    pipe = {k: v for k, v in data.items() if k in PIPELINE_SECTIONS}
    return core, pipe


def _config_part(path: str | Path) -> tuple[dict, str]:
    """(config mapping of a YAML file, where it sits in the file): an experiment file's `base`."""
    data = load_yaml(path)
    if is_experiment_mapping(data):
        base = data.get("base") or {}
        if not isinstance(base, Mapping):
            raise ConfigError(f"{path}: base: expected a mapping of config sections")
        log.info("%s is an experiment file: using its `base` section (run the whole experiment with "
                 "`sracl-ray sweep run %s --storage DIR`)", path, path)
        return dict(base), "base."
    return data, ""


def load_all(path: str | Path | None = None, overrides: list[str] | None = None,
             sample: Mapping[str, Any] | None = None) -> tuple[Config, PipelineConfig]:
    """defaults < YAML file < --set overrides < a (flat or nested) Tune sample, for both the
    experiment config and the pipeline sections; a file's errors name its line."""
    file_data, prefix = _config_part(path) if path else ({}, "")
    core_file, pipe_file = split_sections(file_data)
    if path:
        try:
            from_dict(core_file, where="")
            pipeline_from_dict(pipe_file)
        except ConfigError as e:
            raise _with_line(ConfigError(str(e).removeprefix(": ")), path, prefix) from None
    core_set, pipe_set = split_sections(parse_set(overrides))
    where = "overrides" if path else "config"
    data = merge(core_file, core_set)
    if sample:
        data = merge(data, unflatten(dict(sample)) if any("." in k for k in sample) else dict(sample))
    cfg = from_dict(data, where=where)
    if cfg.semantic.exclude_same_user:
        log.warning("semantic.exclude_same_user is deprecated: it means semantic.exclude=same_user (set that instead)")
    try:
        pipe = pipeline_from_dict(merge(pipe_file, pipe_set))
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None
    return cfg, pipe


def load(path: str | Path | None = None, overrides: list[str] | None = None,
         sample: Mapping[str, Any] | None = None) -> Config:
    """The experiment config (pipeline sections in the same file are validated, then ignored)."""
    return load_all(path, overrides, sample)[0]


__all__ = [
    "Config", "DataConfig", "SemanticConfig", "ModelConfig", "CLConfig", "TrainConfig", "EvalConfig",
    "metric_names", "MOVED_KEYS", "load_all", "split_sections", "inert_settings", "inert_note",
    "ConfigError", "VARIANTS", "BACKBONES", "load", "load_yaml", "from_dict", "to_dict",
    "flatten", "unflatten", "merge", "parse_set", "validate", "require",
]
