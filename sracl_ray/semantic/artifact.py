"""The semantic artifact that training consumes, and its on-disk format.

A directory holding:
  item_emb.npy   float32 [n_items + 1, D]  L2-normalised item embeddings; row 0 (padding) zeros
  unit_emb.npy   float32 [n_units, D]      L2-normalised user-unit embeddings
  item_nbrs.npy  int64   [n_items + 1, K]  top-K item ids by cosine, self excluded; row 0 zeros
  unit_nbrs.npy  int64   [n_units, K]      top-K unit indices by cosine, self excluded
  units.parquet  (unit, user, length, key)  see sracl_ray/semantic/units.py
  manifest.json  settings, input fingerprints, code version (sracl_ray/manifest.py)
  unit_norm.npy  float32 [n_units]  optional: the L2 norm of each unit's raw vector, so that
                 unit_emb * unit_norm is that vector (semantic.normalize=false, docs/FIDELITY.md):
                 the encoder's raw output (pipeline embed stage) or the plain mean of the unit's
                 item vectors (interim builder); written by both builders
Any embedding width D works; K is the number stored (up to 100), k <= K is chosen at train time.
Items without text (and units whose items all lack text) are in no neighbour list; their own row
holds their own id in every column, so substitution keeps them (manifest: `textless_items`).

Loading checks everything a bad copy could hide: unreadable or truncated files, wrong dtypes or
shapes, NaN/inf and zero-norm embedding rows (a zero vector has no cosine), neighbour indices out
of range.  Each failure is one ArtifactError naming the file.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from sracl_ray.errors import UserError
from sracl_ray.manifest import read_manifest, write_manifest

FILES = ("item_emb.npy", "unit_emb.npy", "item_nbrs.npy", "unit_nbrs.npy", "units.parquet")
UNIT_COLUMNS = ("unit", "user", "length", "key")
MAX_LISTED_IDS = 10_000  # the manifest lists text-less ids up to this many (always the count)


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
    unit_norm: np.ndarray | None = None  # [n_units] raw-output norms, when the builder kept them

    @property
    def granularity(self) -> str:
        return self.manifest.get("settings", {}).get("granularity", "prefix")

    @property
    def unit_pool(self) -> str:
        """Which units it holds (semantic/units.py UNIT_POOLS): train, or the release's pool."""
        return self.manifest.get("settings", {}).get("unit_pool", "train")

    @property
    def max_k(self) -> int:
        return int(min(self.item_nbrs.shape[1], self.unit_nbrs.shape[1]))

    def check(self, n_items: int, n_units: int, k: int, where: str = "semantic artifact") -> None:
        """Raise ArtifactError unless the artifact fits a dataset with these sizes and k."""
        if self.item_emb.shape[0] != n_items + 1 or self.item_nbrs.shape[0] != n_items + 1:
            raise ArtifactError(f"{where}: built for {self.item_emb.shape[0] - 1} items, dataset has {n_items} "
                                f"(another dataset or data.max_users?)")
        if self.unit_emb.shape[0] != n_units or self.unit_nbrs.shape[0] != n_units:
            raise ArtifactError(f"{where}: has {self.unit_emb.shape[0]} user units, dataset needs {n_units} "
                                f"(another dataset, data.max_len or semantic.granularity?)")
        if k > self.max_k:
            raise ArtifactError(f"cl.k={k} is larger than the {self.max_k} neighbours stored in {where}")
        if self.unit_nbrs.size and (self.unit_nbrs.min() < 0 or self.unit_nbrs.max() >= n_units):
            raise ArtifactError(f"{where}/unit_nbrs.npy: holds unit indices outside [0, {n_units})")
        if self.item_nbrs[1:].size and (self.item_nbrs[1:].min() < 1 or self.item_nbrs.max() > n_items):
            raise ArtifactError(f"{where}/item_nbrs.npy: holds item ids outside [1, {n_items}]")


def textless_entry(ids: np.ndarray) -> dict:
    """The manifest's record of text-less items (or units): the count, and the ids when not too many."""
    ids = np.asarray(ids, dtype=np.int64)
    entry = {"count": int(len(ids))}
    if len(ids) <= MAX_LISTED_IDS:
        entry["ids"] = [int(i) for i in ids]
    return entry


def save_artifact(out_dir: str | Path, art: SemanticArtifact) -> None:
    """Write every file, then the manifest last (a manifest means the artifact is complete)."""
    from sracl_ray.manifest import atomic_write

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name in ("item_emb", "unit_emb", "item_nbrs", "unit_nbrs"):
        arr = getattr(art, name)
        atomic_write(out / f"{name}.npy", lambda p, a=arr: np.save(p, a, allow_pickle=False))
    atomic_write(out / "units.parquet", lambda p: art.units.to_parquet(p, index=False))
    if art.unit_norm is not None:
        atomic_write(out / "unit_norm.npy", lambda p: np.save(p, np.asarray(art.unit_norm, np.float32)))
    write_manifest(out, art.manifest)


def load_npy(path: Path, kind: str) -> np.ndarray:
    """A 2-d .npy of floats (kind "emb") or integers (kind "nbrs"), or ArtifactError naming the file."""
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, EOFError, OSError) as e:  # truncated, not an .npy, an object array
        raise ArtifactError(f"{path}: not a readable .npy file (truncated or corrupt: "
                            f"{type(e).__name__}: {e})") from e
    want = np.floating if kind == "emb" else np.integer
    if not np.issubdtype(arr.dtype, want) or arr.ndim != 2:
        what = "floats" if kind == "emb" else "integers"
        raise ArtifactError(f"{path}: expected a 2-d array of {what}, found {arr.ndim}-d {arr.dtype}")
    return arr


def bad_embedding_rows(emb: np.ndarray, skip_first: bool = False, chunk: int = 16384) -> tuple[np.ndarray, np.ndarray]:
    """(rows holding NaN/inf, finite rows of zero norm) of a [N, D] matrix, in chunks (bounded memory)."""
    nonfinite, zero = [], []
    for s in range(0, len(emb), chunk):
        part = emb[s:s + chunk]
        finite = np.isfinite(part).all(1)
        nonfinite.append(np.flatnonzero(~finite) + s)
        norms = np.linalg.norm(np.where(finite[:, None], part, 0).astype(np.float64), axis=1)
        zero.append(np.flatnonzero(finite & (norms < 1e-12)) + s)
    zero_rows = np.concatenate(zero) if zero else np.zeros(0, np.int64)
    if skip_first:
        zero_rows = zero_rows[zero_rows != 0]
    return (np.concatenate(nonfinite) if nonfinite else np.zeros(0, np.int64)), zero_rows


def check_embeddings(path: Path, emb: np.ndarray, padding_row: bool) -> None:
    """ArtifactError naming the file when a row holds NaN/inf or (but for the padding row) is all zeros."""
    nonfinite, zero = bad_embedding_rows(emb, skip_first=padding_row)
    if len(nonfinite):
        raise ArtifactError(f"{path}: {len(nonfinite)} of {len(emb)} rows hold NaN or inf "
                            f"(first: row {int(nonfinite[0])}); rebuild the artifact")
    if len(zero):
        raise ArtifactError(f"{path}: {len(zero)} of {len(emb)} rows are all zeros (first: row {int(zero[0])}); "
                            f"a zero vector has no cosine similarity, rebuild the artifact")


def _read_units(path: Path) -> pd.DataFrame:
    try:
        units = pd.read_parquet(path)
    except Exception as e:  # pyarrow raises ArrowInvalid / OSError on a truncated or foreign file
        raise ArtifactError(f"{path}: not a readable Parquet file (truncated or corrupt: "
                            f"{type(e).__name__}: {e})") from e
    missing = [c for c in UNIT_COLUMNS if c not in units.columns]
    if missing:
        raise ArtifactError(f"{path}: lacks the column(s) {', '.join(missing)} (expected {', '.join(UNIT_COLUMNS)})")
    for col in ("user", "length"):
        if col in units.columns and not pd.api.types.is_integer_dtype(units[col]):
            raise ArtifactError(f"{path}: column {col!r} must hold integers, found {units[col].dtype}")
        if col in units.columns and len(units) and units[col].min() < (1 if col == "length" else 0):
            raise ArtifactError(f"{path}: column {col!r} holds {units[col].min()}, expected >= "
                                f"{1 if col == 'length' else 0}")
    return units


def _read_manifest(path: Path) -> dict:
    try:
        manifest = read_manifest(path)
    except UserError as e:  # already names the file
        raise ArtifactError(str(e)) from e
    except OSError as e:
        raise ArtifactError(f"{path / 'manifest.json'}: unreadable ({e.strerror or e})") from e
    if manifest is None:
        raise ArtifactError(f"{path}: no manifest.json (not a finished semantic artifact)")
    if not isinstance(manifest, dict) or not isinstance(manifest.get("settings", {}), dict):
        raise ArtifactError(f"{path / 'manifest.json'}: expected a JSON object with a 'settings' object")
    granularity = manifest.get("settings", {}).get("granularity", "prefix")
    if granularity not in ("prefix", "user"):
        raise ArtifactError(f"{path / 'manifest.json'}: settings.granularity must be prefix or user, "
                            f"got {granularity!r}")
    return manifest


def load_artifact(path: str | Path) -> SemanticArtifact:
    """Load and validate an artifact directory (no pickle); ArtifactError names the bad file."""
    path = Path(path)
    if not path.exists():
        raise ArtifactError(f"{path}: no such semantic artifact directory")
    if not path.is_dir():
        raise ArtifactError(f"{path}: is a file, expected a semantic artifact directory")
    manifest = _read_manifest(path)
    missing = [f for f in FILES if not (path / f).is_file()]
    if missing:
        raise ArtifactError(f"{path}: missing {', '.join(missing)}")
    item_emb, unit_emb = (load_npy(path / f"{n}.npy", "emb") for n in ("item_emb", "unit_emb"))
    item_nbrs, unit_nbrs = (load_npy(path / f"{n}.npy", "nbrs") for n in ("item_nbrs", "unit_nbrs"))
    units = _read_units(path / "units.parquet")
    if item_emb.shape[1] != unit_emb.shape[1]:
        raise ArtifactError(f"{path}: item_emb.npy is {item_emb.shape[1]}-d but unit_emb.npy {unit_emb.shape[1]}-d")
    for name, emb, nbrs in (("item", item_emb, item_nbrs), ("unit", unit_emb, unit_nbrs)):
        if len(nbrs) != len(emb):
            raise ArtifactError(f"{path / f'{name}_nbrs.npy'}: {len(nbrs)} rows, but {name}_emb.npy has {len(emb)}")
        if nbrs.size and (nbrs.min() < 0 or nbrs.max() >= len(emb)):
            raise ArtifactError(f"{path / f'{name}_nbrs.npy'}: holds indices outside [0, {len(emb)})")
    if len(units) != len(unit_emb):
        raise ArtifactError(f"{path / 'units.parquet'}: {len(units)} units, but unit_emb.npy has {len(unit_emb)} rows")
    check_embeddings(path / "item_emb.npy", item_emb, padding_row=True)
    check_embeddings(path / "unit_emb.npy", unit_emb, padding_row=False)
    unit_norm = _read_unit_norm(path / "unit_norm.npy", len(unit_emb)) if (path / "unit_norm.npy").exists() else None
    return SemanticArtifact(item_emb.astype(np.float32, copy=False), unit_emb.astype(np.float32, copy=False),
                            item_nbrs.astype(np.int64, copy=False), unit_nbrs.astype(np.int64, copy=False),
                            units, manifest, unit_norm)


def _read_unit_norm(path: Path, n_units: int) -> np.ndarray:
    """The optional [n_units] raw-output norms: finite, > 0, one per unit; else ArtifactError."""
    try:
        norm = np.load(path, allow_pickle=False)
    except (ValueError, EOFError, OSError) as e:
        raise ArtifactError(f"{path}: not a readable .npy file ({type(e).__name__}: {e})") from e
    if not np.issubdtype(norm.dtype, np.floating) or norm.shape != (n_units,):
        raise ArtifactError(f"{path}: expected {n_units} floats (one per unit), found {norm.dtype} {norm.shape}")
    if not (np.isfinite(norm) & (norm > 0)).all():
        raise ArtifactError(f"{path}: every norm must be finite and > 0")
    return norm.astype(np.float32, copy=False)
