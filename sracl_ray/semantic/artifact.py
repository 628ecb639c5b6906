"""The semantic artifact that training consumes, and its on-disk format.

A directory holding:
  item_emb.npy   float32 [n_items + 1, D]  L2-normalised item embeddings; row 0 (padding) zeros
  unit_emb.npy   float32 [n_units, D]      L2-normalised user-unit embeddings
  item_nbrs.npy  int64   [n_items + 1, K]  top-K item ids by cosine, self excluded; row 0 zeros
  unit_nbrs.npy  int64   [n_units, K]      top-K unit indices by cosine, self excluded
  units.parquet  (unit, user, length, key)  see sracl_ray/semantic/units.py
  manifest.json  settings, input fingerprints, code version (sracl_ray/manifest.py)
Any embedding width D works; K is the number stored (up to 100), k <= K is chosen at train time.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from sracl_ray.errors import UserError
from sracl_ray.manifest import read_manifest, write_manifest

FILES = ("item_emb.npy", "unit_emb.npy", "item_nbrs.npy", "unit_nbrs.npy", "units.parquet")


class ArtifactError(UserError):
    """A semantic artifact is missing, inconsistent or does not fit the dataset or k."""


@dataclass(frozen=True)
class SemanticArtifact:
    item_emb: np.ndarray
    unit_emb: np.ndarray
    item_nbrs: np.ndarray
    unit_nbrs: np.ndarray
    units: pd.DataFrame
    manifest: dict

    @property
    def granularity(self) -> str:
        return self.manifest.get("settings", {}).get("granularity", "prefix")

    @property
    def max_k(self) -> int:
        return int(min(self.item_nbrs.shape[1], self.unit_nbrs.shape[1]))

    def check(self, n_items: int, n_units: int, k: int, where: str = "semantic artifact") -> None:
        """Raise ArtifactError unless the artifact fits a dataset with these sizes and k."""
        if self.item_emb.shape[0] != n_items + 1 or self.item_nbrs.shape[0] != n_items + 1:
            raise ArtifactError(f"{where}: built for {self.item_emb.shape[0] - 1} items, dataset has {n_items}")
        if self.unit_emb.shape[0] != n_units or self.unit_nbrs.shape[0] != n_units:
            raise ArtifactError(f"{where}: has {self.unit_emb.shape[0]} user units, dataset needs {n_units}")
        if k > self.max_k:
            raise ArtifactError(f"cl.k={k} is larger than the {self.max_k} neighbours stored in {where}")
        if self.unit_nbrs.size and (self.unit_nbrs.min() < 0 or self.unit_nbrs.max() >= n_units):
            raise ArtifactError(f"{where}: unit_nbrs holds indices outside [0, {n_units})")
        if self.item_nbrs[1:].size and (self.item_nbrs[1:].min() < 1 or self.item_nbrs.max() > n_items):
            raise ArtifactError(f"{where}: item_nbrs holds ids outside [1, {n_items}]")


def save_artifact(out_dir: str | Path, art: SemanticArtifact) -> None:
    """Write every file, then the manifest last (a manifest means the artifact is complete)."""
    from sracl_ray.manifest import atomic_write

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name in ("item_emb", "unit_emb", "item_nbrs", "unit_nbrs"):
        arr = getattr(art, name)
        atomic_write(out / f"{name}.npy", lambda p, a=arr: np.save(p, a, allow_pickle=False))
    atomic_write(out / "units.parquet", lambda p: art.units.to_parquet(p, index=False))
    write_manifest(out, art.manifest)


def load_artifact(path: str | Path) -> SemanticArtifact:
    """Load an artifact directory (no pickle)."""
    path = Path(path)
    manifest = read_manifest(path)
    if manifest is None:
        raise ArtifactError(f"{path}: no manifest.json (not a finished semantic artifact)")
    missing = [f for f in FILES if not (path / f).exists()]
    if missing:
        raise ArtifactError(f"{path}: missing {', '.join(missing)}")
    arrays = {n: np.load(path / f"{n}.npy", allow_pickle=False)
              for n in ("item_emb", "unit_emb", "item_nbrs", "unit_nbrs")}
    return SemanticArtifact(units=pd.read_parquet(path / "units.parquet"), manifest=manifest,
                            **{k: v.astype(np.int64) if "nbrs" in k else v.astype(np.float32)
                               for k, v in arrays.items()})
