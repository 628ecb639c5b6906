"""Everything a trial needs, prepared once (shared by sweep trials) and moved to the device."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from sracl_ray.config import Config
from sracl_ray.data.dataset import InteractionData
from sracl_ray.data.readers import load_dataset
from sracl_ray.data.split import Split, leave_one_out
from sracl_ray.models.sracl import loss_weights
from sracl_ray.semantic.artifact import ArtifactError, SemanticArtifact, load_artifact
from sracl_ray.semantic.units import build_units, sample_units, unit_histories

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prepared:
    data: InteractionData
    split: Split
    semantic: SemanticArtifact | None
    semantic_source: str  # artifact path, or "none"


def needs_semantic(cfg: Config) -> bool:
    alpha, beta = loss_weights(cfg.cl)
    return alpha > 0 or beta > 0


def default_cache_dir(cfg: Config) -> Path:
    return Path(cfg.semantic.cache_dir or Path.cwd() / ".sracl_cache")


def resolve_artifact(cfg: Config, data: InteractionData, split: Split) -> tuple[SemanticArtifact, str]:
    """Load the configured artifact, or build/reuse the interim MiniLM one in the cache."""
    if cfg.semantic.artifact:
        path = Path(cfg.semantic.artifact)
        art = load_artifact(path)
    else:
        from sracl_ray.semantic.interim import build_interim

        path = default_cache_dir(cfg) / f"interim-{data.fingerprint}-L{split.max_len}-{cfg.semantic.granularity}"
        art = build_interim(data, split, path, granularity=cfg.semantic.granularity)
    units = build_units(split, art.granularity)
    art.check(split.n_items, len(units), cfg.cl.k, where=str(path))
    if not np.array_equal(art.units["key"].to_numpy(), units["key"].to_numpy()):
        raise ArtifactError(f"{path}: its units do not match this dataset's training prefixes "
                            f"(built from other data or max_len)")
    return art, str(path)


def prepare_inputs(cfg: Config) -> Prepared:
    """Dataset, leave-one-out split and (when the variant needs it) the semantic artifact."""
    data = load_dataset(cfg.data)
    split = leave_one_out(data, cfg.data.max_len)
    if not needs_semantic(cfg):
        return Prepared(data, split, None, "none")
    art, source = resolve_artifact(cfg, data, split)
    return Prepared(data, split, art, source)


def same_target_table(target: np.ndarray, n_items: int) -> tuple[np.ndarray, np.ndarray]:
    """CSR (ptr [I+2], idx [N]): samples grouped by target item, for DuoRec's supervised view."""
    idx = np.argsort(target, kind="stable")
    ptr = np.zeros(n_items + 2, dtype=np.int64)
    np.add.at(ptr, target + 1, 1)
    return np.cumsum(ptr), idx


def history_matrix(seqs: list[np.ndarray]) -> np.ndarray:
    """[U, Hmax] all items of each user's list (right-padded with 0), for history masking."""
    width = max(1, max(len(s) for s in seqs))
    out = np.zeros((len(seqs), width), dtype=np.int64)
    for r, s in enumerate(seqs):
        out[r, :len(s)] = s
    return out


class DeviceData:
    """Every tensor a training step or an evaluation reads, resident on one device."""

    def __init__(self, prep: Prepared, cfg: Config, device: torch.device):
        # Arrays from Ray's object store are read-only: copy those (np.require) rather than share them.
        sp, t = prep.split, (lambda a: torch.as_tensor(np.require(a, requirements=["C", "W"]), device=device))
        self.hist, self.target = t(sp.sample_hist), t(sp.sample_target)
        self.valid_hist, self.valid_target = t(sp.valid_hist), t(sp.valid_target)
        self.test_hist, self.test_target = t(sp.test_hist), t(sp.test_target)
        self.valid_seen = t(history_matrix(sp.train_seqs[1:]))
        self.test_seen = t(history_matrix([np.append(s, v) for s, v in zip(sp.train_seqs[1:], sp.valid_target)]))
        ptr, idx = same_target_table(sp.sample_target, sp.n_items)
        self.same_ptr, self.same_idx = t(ptr), t(idx)
        art, k = prep.semantic, cfg.cl.k
        if art is not None:
            units = build_units(sp, art.granularity)
            self.unit = t(sample_units(sp, art.granularity))
            self.unit_hist = t(unit_histories(sp, units))
            self.unit_emb = t(art.unit_emb.astype(np.float32))
            self.unit_nbrs = t(art.unit_nbrs[:, :k])
            self.item_nbrs = t(art.item_nbrs[:, :k])
            self.sem_dim = art.unit_emb.shape[1]

    @property
    def n_samples(self) -> int:
        return len(self.target)
