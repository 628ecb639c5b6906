"""Everything a training step or an evaluation reads, moved onto one device (DeviceData).

The inputs themselves are prepared without torch in training/prepare.py (re-exported here).
"""
from __future__ import annotations

import logging

import numpy as np
import torch

from sracl_ray import config as C
from sracl_ray.config import Config
from sracl_ray.semantic.artifact import SemanticArtifact
from sracl_ray.semantic.units import sample_units
from sracl_ray.training.prepare import Prepared, needs_semantic, prepare_inputs  # noqa: F401 (re-exported)

log = logging.getLogger(__name__)


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


def seen_matrix(split, which: str) -> np.ndarray:
    """[U, Hmax] what user u had seen before its `which` ("valid" | "test") target: its training
    sequence, plus the validation item for test (the items history masking removes)."""
    if which == "valid":
        return history_matrix(split.train_seqs[1:])
    return history_matrix([np.append(s, v) for s, v in zip(split.train_seqs[1:], split.valid_target)])


def synthesis_inputs(art: SemanticArtifact, normalize: bool, where: str = "semantic artifact") -> np.ndarray:
    """[U, D] what the L_CS synthesis head reads: unit vectors (semantic.normalize=true) or the raw
    encoder outputs = unit vector x stored norm (false; without stored norms: the unit vectors, warned)."""
    emb = art.unit_emb.astype(np.float32)
    if normalize:
        return emb
    if art.unit_norm is None:
        log.warning("semantic.normalize=false asks for the raw encoder outputs, but %s stores no unit_norm.npy: "
                    "the synthesis head reads the unit vectors (as semantic.normalize=true); docs/FIDELITY.md", where)
        return emb
    return emb * art.unit_norm.astype(np.float32)[:, None]


def unit_pools(art: SemanticArtifact, units, k: int, exclude: str = "none",
               table: np.ndarray | None = None, emb: np.ndarray | None = None) -> np.ndarray:
    """[U, k] L_CS neighbour pools: the first k of the table (the artifact's unless a control gives one),
    or the first k not excluded by semantic.exclude (same_user | longer_same_user)."""
    table = art.unit_nbrs if table is None else table
    if exclude == "none":
        return table[:, :k]
    from sracl_ray.semantic.composition import allowed_neighbours

    pools, recomputed = allowed_neighbours(table, units["user"].to_numpy(), k, art.unit_emb if emb is None else emb,
                                           exclude, units["length"].to_numpy())
    log.info("semantic.exclude=%s: L_CS pools of %d units drawn without %s; %d units had fewer than k=%d allowed "
             "neighbours among the %d stored and were recomputed exactly", exclude, len(pools),
             "their user's other units" if exclude == "same_user" else
             "their user's longer prefixes (which hold the training target)", recomputed, k, table.shape[1])
    return pools


def neighbour_control(art: SemanticArtifact, units, cfg: Config, hist: np.ndarray | None = None
                      ) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(the L_CS neighbour table semantic.neighbours asks for, or None for the artifact's; the unit
    permutation the embeddings follow, or None).  training/controls.py."""
    kind = cfg.semantic.neighbours
    if kind == "semantic":
        return None, None
    from sracl_ray.training import controls

    if kind == "random_other_user":
        table = controls.random_other_user(art.unit_nbrs, units["user"].to_numpy(), C.k_user(cfg.cl), cfg.train.seed)
        log.info("semantic.neighbours=random_other_user: L_CS pools of %d units are random units of other users "
                 "(seed %d): no semantic neighbour", len(table), cfg.train.seed)
        return table, None
    if kind == "cooccurrence":  # built with the exclusion applied: unit_pools then finds k allowed per row
        table = controls.cooccurrence_units(hist, art.unit_nbrs, C.k_user(cfg.cl), units["user"].to_numpy(),
                                            units["length"].to_numpy(), C.exclusion(cfg.semantic))
        log.info("semantic.neighbours=cooccurrence: L_CS pools of %d units are their Jaccard neighbours over the "
                 "items of their histories (no text)", len(table))
        return table, None
    table, pi = controls.shuffled(art.unit_nbrs, cfg.train.seed)
    log.info("semantic.neighbours=shuffled: the unit embeddings permuted among %d units (seed %d): the neighbour "
             "table keeps its structure, its semantics are scrambled", len(table), cfg.train.seed)
    return table, pi


def item_table(art: SemanticArtifact, split, cfg: Config) -> np.ndarray:
    """[n_items + 1, k_item] the L_IS substitute pools semantic.item_neighbours asks for."""
    kind, k = cfg.semantic.item_neighbours, C.k_item(cfg.cl)
    if kind == "semantic":
        return art.item_nbrs[:, :k]
    from sracl_ray.training import controls

    if kind == "random":
        table = controls.random_items(split.n_items, k, cfg.train.seed)
        log.info("semantic.item_neighbours=random: L_IS substitutes of %d items are random other items (seed %d)",
                 split.n_items, cfg.train.seed)
        return table
    table = controls.cooccurrence_items(split.train_seqs[1:], split.n_items, k)
    log.info("semantic.item_neighbours=cooccurrence: L_IS substitutes of %d items are their Jaccard neighbours "
             "over training users (no text)", split.n_items)
    return table


class DeviceData:
    """Every tensor a training step or an evaluation reads, resident on one device."""

    def __init__(self, prep: Prepared, cfg: Config, device: torch.device):
        # Arrays from Ray's object store are read-only: copy those (np.require) rather than share them.
        sp, t = prep.split, (lambda a: torch.as_tensor(np.require(a, requirements=["C", "W"]), device=device))
        self.hist, self.target = t(sp.sample_hist), t(sp.sample_target)
        self.valid_hist, self.valid_target = t(sp.valid_hist), t(sp.valid_target)
        self.test_hist, self.test_target = t(sp.test_hist), t(sp.test_target)
        self.valid_seen, self.test_seen = t(seen_matrix(sp, "valid")), t(seen_matrix(sp, "test"))
        ptr, idx = same_target_table(sp.sample_target, sp.n_items)
        pos = np.empty_like(idx)
        pos[idx] = np.arange(len(idx))
        self.same_ptr, self.same_idx, self.same_pos = t(ptr), t(idx), t(pos)  # same_pos: slot in same_idx
        art = prep.semantic
        if art is not None:
            units, hist = prep.unit_inputs()
            self.unit = t(sample_units(sp, art.granularity))
            self.unit_hist = t(hist)
            emb_in = synthesis_inputs(art, cfg.semantic.normalize, prep.semantic_source)
            table, emb_unit = neighbour_control(art, units, cfg, hist)
            if emb_unit is not None:  # shuffled: the head reads the permuted embeddings too
                emb_in = emb_in[emb_unit]
            self.unit_emb = t(emb_in)
            self.unit_nbrs = t(unit_pools(art, units, C.k_user(cfg.cl), C.exclusion(cfg.semantic), table,
                                          None if emb_unit is None else art.unit_emb[emb_unit]))
            self.item_nbrs = t(item_table(art, sp, cfg))
            self.sem_dim = art.unit_emb.shape[1]

    @property
    def n_samples(self) -> int:
        return len(self.target)
