"""What a trial needs before any tensor exists: dataset, leave-one-out split, semantic artifact.

Torch-free on purpose: `sracl-ray train` reads and checks every input (and so reports a bad one)
before torch is imported, and a sweep prepares this once and shares it through the object store.
training/inputs.py moves it onto a device.
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from sracl_ray.config import Config, ConfigError, dataset_label, loss_weights, max_k
from sracl_ray.data.dataset import InteractionData
from sracl_ray.data.errors import DataFormatError
from sracl_ray.data.readers import load_dataset
from sracl_ray.data.split import Split, leave_one_out
from sracl_ray.semantic.artifact import ArtifactError, SemanticArtifact, load_artifact
from sracl_ray.semantic.units import build_units, unit_histories

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prepared:
    data: InteractionData
    split: Split
    semantic: SemanticArtifact | None
    semantic_source: str  # artifact path, or "none"
    # the semantic units (semantic/units.py: unit, user, length, key) and their [U, L] histories, built
    # once here and checked against the artifact's; None without an artifact
    units: pd.DataFrame | None = None
    unit_hist: np.ndarray | None = None

    @cached_property
    def semantic_fingerprint(self) -> str | None:
        """sha256 over the artifact's arrays (what training reads), None without an artifact."""
        art = self.semantic
        if art is None:
            return None
        h = hashlib.sha256()
        norms = () if art.unit_norm is None else (art.unit_norm,)  # an old artifact keeps its fingerprint
        for a in (art.item_emb, art.unit_emb, art.item_nbrs, art.unit_nbrs, *norms):
            h.update(str((a.dtype, a.shape)).encode())
            h.update(np.ascontiguousarray(a).tobytes())
        return h.hexdigest()[:16]

    def unit_inputs(self) -> tuple[pd.DataFrame, np.ndarray]:
        """(units, [U, L] unit histories) for the artifact's granularity: the ones built with this
        Prepared, or built now for one made without them (benchmarks)."""
        if self.units is not None and self.unit_hist is not None:
            return self.units, self.unit_hist
        units = build_units(self.split, self.semantic.granularity, self.semantic.unit_pool)
        return units, unit_histories(self.split, units)

    @property
    def semantic_builder(self) -> str:
        """What built the artifact: the interim builder's name, the pipeline stage, or 'none'."""
        if self.semantic is None:
            return "none"
        m = self.semantic.manifest
        return str((m.get("settings") or {}).get("builder") or m.get("stage") or "unknown")


def needs_semantic(cfg: Config) -> bool:
    alpha, beta = loss_weights(cfg.cl)
    return alpha > 0 or beta > 0


def default_cache_dir(cfg: Config) -> Path:
    return Path(cfg.semantic.cache_dir or Path.cwd() / ".sracl_cache")


def resolve_artifact(cfg: Config, data: InteractionData, split: Split) -> tuple[SemanticArtifact, str, pd.DataFrame]:
    """Load the configured artifact, or build/reuse the interim MiniLM one in the cache; -> (artifact,
    its path, this split's units, checked equal to the artifact's)."""
    if cfg.semantic.artifact:
        path = Path(cfg.semantic.artifact)
        art = load_artifact(path)
    else:
        from sracl_ray.semantic.interim import build_interim

        pool = cfg.semantic.unit_pool
        path = default_cache_dir(cfg) / (f"interim-{data.fingerprint}-L{split.max_len}-{cfg.semantic.granularity}"
                                         + ("" if pool == "train" else f"-{pool}"))
        art = build_interim(data, split, path, granularity=cfg.semantic.granularity, progress=cfg.train.progress,
                            unit_pool=pool)
    if art.unit_pool != cfg.semantic.unit_pool:
        raise ArtifactError(f"{path}: built with semantic.unit_pool={art.unit_pool}, the config asks for "
                            f"semantic.unit_pool={cfg.semantic.unit_pool} (build one with that pool, or leave "
                            f"semantic.artifact unset for the interim one)")
    units = build_units(split, art.granularity, art.unit_pool)
    if art.unit_pool == "release":
        log.warning("semantic.unit_pool=release: %d units of each user's whole training sequence and test input join "
                    "the L_CS neighbour pool, as in the authors' release: validation items reach training through "
                    "L_CS (the test item never does); docs/FIDELITY.md", len(units) - split.n_samples)
    art.check(split.n_items, len(units), max_k(cfg.cl), where=str(path))
    if not np.array_equal(art.units["key"].to_numpy(), units["key"].to_numpy()):
        raise ArtifactError(f"{Path(path) / 'units.parquet'}: its units do not match this dataset's training "
                            f"prefixes (built from other data, data.max_users or data.max_len)")
    return art, str(path), units


def check_trainable(data: InteractionData, split: Split, cfg: Config) -> None:
    """A split with no training sample (or no user to evaluate) trains nothing: its metrics would be an
    untrained model's, so it is an error naming the dataset and what it needs."""
    among = f" (among the first {cfg.data.max_users} users, data.max_users)" if cfg.data.max_users else ""
    where = data.source or dataset_label(cfg.data)
    if split.n_users == 0:
        raise DataFormatError(where, None, message=f"dataset {data.name!r} has no user to evaluate{among}")
    if split.n_samples == 0:
        longest = int(max(len(s) for s in data.sequences[1:]))
        raise DataFormatError(where, None, message=(
            f"dataset {data.name!r} has 0 training samples{among}: each of its {split.n_users} users has at most "
            f"{longest} interactions, and leave-one-out keeps the last 2 for validation and test, so a training "
            f"sample needs users with >= 4 interactions"))


def load_data(cfg: Config) -> tuple[InteractionData, Split]:
    """The dataset and its leave-one-out split: from the pipeline's prepared/ stage when
    semantic.artifact is that pipeline's artifact and the stage is fresh for cfg.data (what the stages
    wrote, no re-parse and re-split), else from the raw files."""
    if cfg.semantic.artifact and needs_semantic(cfg):
        from sracl_ray.semantic.pipeline import fresh_prepared, load_prepared

        prepared = fresh_prepared(cfg, cfg.semantic.artifact)
        if prepared is not None:
            log.info("data and split from the prepare stage %s (the one %s was built from)", prepared,
                     cfg.semantic.artifact)
            return load_prepared(prepared)
    data = load_dataset(cfg.data)
    return data, leave_one_out(data, cfg.data.max_len)


def prepare_inputs(cfg: Config) -> Prepared:
    """Dataset, leave-one-out split and (when the variant needs it) the semantic artifact."""
    data, split = load_data(cfg)
    check_trainable(data, split, cfg)
    if not needs_semantic(cfg):
        return Prepared(data, split, None, "none")
    art, source, units = resolve_artifact(cfg, data, split)
    return Prepared(data, split, art, source, units, unit_histories(split, units))


def check_out_dir(out: str | Path) -> None:
    """--out must be a directory (or not exist yet)."""
    if Path(out).exists() and not Path(out).is_dir():
        raise ConfigError(f"--out {out}: exists and is not a directory")
