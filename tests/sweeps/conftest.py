"""Fixtures for the sweep platform tests: a fast real engine setup.

The local Ray and the PYTHONPATH entry that lets Ray workers import the test engines (sweep_fakes)
are in tests/conftest.py.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # `import sweep_fakes` in this folder's tests
    sys.path.insert(0, str(HERE))
os.environ.setdefault("RAY_AUTH_MODE", "disabled")


USERS = 40  # packaged-sample slice for real-engine sweeps (about 230 training prefixes)


@pytest.fixture(scope="session")
def real_base(tmp_path_factory) -> dict:
    """Experiment base for the real engine: a 40-user slice and a seeded random semantic artifact."""
    import numpy as np

    from sracl_ray.config import load, parse_set
    from sracl_ray.data.readers import load_dataset
    from sracl_ray.data.split import leave_one_out
    from sracl_ray.semantic.artifact import SemanticArtifact, save_artifact
    from sracl_ray.semantic.interim import build_from_item_embeddings

    cfg = load(None, [f"data.max_users={USERS}"])
    split = leave_one_out(load_dataset(cfg.data), cfg.data.max_len)
    vecs = np.random.default_rng(0).normal(size=(split.n_items, 16)).astype(np.float32)
    art = build_from_item_embeddings(split, vecs, "prefix", 20, {"builder": "test-random", "granularity": "prefix"})
    art_dir = tmp_path_factory.mktemp("sweep_artifact")
    save_artifact(art_dir, SemanticArtifact(**{**art.__dict__, "manifest": {"stage": "test",
                                                                            "settings": {"granularity": "prefix"}}}))
    return parse_set([f"data.max_users={USERS}", f"semantic.artifact={art_dir}", "train.progress=false",
                      "train.num_threads=1", "train.epochs=1", "cl.k=5"])
