"""Tiny inputs for the benchmarks' --smoke mode: a user slice of the packaged sample and a semantic
artifact from seeded random item vectors (no MiniLM, no download, built in well under a second)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

SMOKE_USERS = 60


def random_artifact(max_users: int, out_dir: Path, granularity: str = "prefix", dim: int = 16,
                    path: str = "") -> Path:
    """Save an artifact for the first `max_users` users of the packaged sample (or of `path`); returns its dir."""
    from sracl_ray.config import DataConfig
    from sracl_ray.data.readers import load_dataset
    from sracl_ray.data.split import leave_one_out
    from sracl_ray.semantic.artifact import save_artifact
    from sracl_ray.semantic.interim import build_from_item_embeddings

    data = load_dataset(DataConfig(max_users=max_users, path=path))
    split = leave_one_out(data, DataConfig().max_len)
    vecs = np.random.default_rng(0).normal(size=(split.n_items, dim)).astype(np.float32)
    art = build_from_item_embeddings(split, vecs, granularity, 20,
                                     {"builder": "benchmark-smoke-random", "granularity": granularity})
    save_artifact(out_dir, art)
    return out_dir
