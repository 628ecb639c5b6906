"""A small synthetic results store with known numbers, shared by the analysis tests.

Per dataset (beauty, office), seeds 1-3:
- main runs: sasrec and gru4rec, each `full` and `no_cl` (alpha=beta=k settings as recorded:
  no_cl stores alpha=beta=0 to check that irrelevant settings are ignored), with ranks files;
- ablations: sasrec no_cs (alpha=0), no_is (beta=0), unlearnable;
- sweeps: sasrec full at alpha 0.05 / 0.2 and at k 5 / 20 (reference: alpha=beta=0.1, k=10).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

DATASETS = {"beauty": 0.10, "office": 0.15}
BACKBONES = {"sasrec": 0.01, "gru4rec": -0.02}
VARIANTS = {"no_cl": 0.0, "no_cs": 0.006, "no_is": 0.007, "unlearnable": 0.009, "full": 0.012}
SEEDS = (1, 2, 3)
SEED_NOISE = {1: -0.001, 2: 0.0, 3: 0.0015}
METRIC_SCALE = {"hr@10": 0.6, "hr@20": 1.0, "ndcg@10": 0.4, "ndcg@20": 0.45}
N_USERS = 60


def value(dataset: str, backbone: str, variant: str, seed: int, alpha: float = 0.1,
          k: int = 10) -> float:
    """The synthetic test/hr@20 of one run."""
    v = DATASETS[dataset] + BACKBONES[backbone] + VARIANTS[variant] + SEED_NOISE[seed]
    if variant != "no_cl":
        v += seed * 0.0003 - abs(alpha - 0.1) * 0.05 - abs(k - 10) * 0.0005
    return v


def ranks_frame(seed: int, offset: int) -> pd.DataFrame:
    """Per-user ranks with train_len cycling 3..15 (so every sparsity group is populated)."""
    users = np.arange(1, N_USERS + 1)
    train_len = 3 + (users % 13)
    rank_test = (users * 7 + seed * 3 + offset) % 41
    return pd.DataFrame({"user": users, "rank_valid": (rank_test + 1) % 41, "rank_test": rank_test,
                         "train_len": train_len, "test_input_len": train_len + 1})


def make_row(trial_id: str, dataset: str, backbone: str, variant: str, seed: int,
             alpha: float = 0.1, beta: float = 0.1, k: int = 10,
             ranks_path: str | None = None) -> dict:
    """One store row following docs/CONTRACTS.md."""
    v = value(dataset, backbone, variant, seed, alpha, k)
    row = {"trial_id": trial_id, "experiment": "synthetic", "dataset": dataset,
           "backbone": backbone, "variant": variant, "seed": seed, "alpha": alpha, "beta": beta,
           "k": k, "mask_history": False, "max_len": 20, "best_epoch": 5, "epochs_run": 15,
           "wall_time_s": 1.5, "code_version": "test", "ranks_path": ranks_path}
    for name, scale in METRIC_SCALE.items():
        row[f"test/{name}"] = v * scale
        row[f"valid/{name}"] = v * scale * 0.98
    row["cfg.cl.variant"] = variant
    row["cfg.train.seed"] = seed
    return row


def write_row(results: Path, row: dict) -> None:
    """One-row Parquet, like the results store writes."""
    results.mkdir(parents=True, exist_ok=True)
    pd.DataFrame([row]).to_parquet(results / f"trial-{row['trial_id']}.parquet", index=False)


def build_store(root: Path, sweeps: bool = True, ablations: bool = True) -> list[dict]:
    """Write the synthetic store under ``root`` (storage dir); return the rows written."""
    results, rows, n = root / "results", [], 0
    offsets = {("sasrec", "full"): 0, ("sasrec", "no_cl"): 5, ("gru4rec", "full"): 9,
               ("gru4rec", "no_cl"): 14}
    for dataset in DATASETS:
        for seed in SEEDS:
            specs = [(b, v, {}) for b in BACKBONES for v in ("no_cl", "full")]
            if ablations:
                specs += [("sasrec", "no_cs", {"alpha": 0.0}), ("sasrec", "no_is", {"beta": 0.0}),
                          ("sasrec", "unlearnable", {})]
            if sweeps:
                specs += [("sasrec", "full", {"alpha": a}) for a in (0.05, 0.2)]
                specs += [("sasrec", "full", {"k": k}) for k in (5, 20)]
            for backbone, variant, kw in specs:
                n += 1
                tid = f"t{n:04d}"
                main = variant in ("full", "no_cl") and not kw
                if variant == "no_cl":
                    kw = {"alpha": 0.0, "beta": 0.0} | kw
                ranks = None
                if main:  # main runs get ranks files
                    off = offsets[(backbone, variant)] + (3 if dataset == "office" else 0)
                    rel = Path("runs") / tid / "ranks.parquet"
                    (root / rel).parent.mkdir(parents=True)
                    ranks_frame(seed, off).to_parquet(root / rel, index=False)
                    # half the rows store an absolute path, half a storage-relative one
                    ranks = str(root / rel) if n % 2 else str(rel)
                row = make_row(tid, dataset, backbone, variant, seed, ranks_path=ranks, **kw)
                write_row(results, row)
                rows.append(row)
    return rows


@pytest.fixture(scope="session")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    """(storage dir, DataFrame of the rows written) of the full synthetic store; read-only."""
    root = tmp_path_factory.mktemp("analysis") / "sweep"
    rows = build_store(root)
    return root, pd.DataFrame(rows)


@pytest.fixture(scope="session")
def loaded(store):
    """The synthetic store loaded through analysis.store; read-only (copy before changing)."""
    from analysis.store import load_store

    return load_store(store[0])


@pytest.fixture()
def store_builder():
    """``build_store``, for tests needing another store (``import conftest`` is ambiguous)."""
    return build_store
