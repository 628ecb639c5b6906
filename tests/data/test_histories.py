"""The vectorised history gather equals the per-row left_pad it replaced (split, units, any lengths)."""
from __future__ import annotations

import numpy as np
import pytest

from sracl_ray.data.split import histories, left_pad


@pytest.mark.parametrize("max_len", [1, 3, 20, 50])
def test_histories_equal_left_pad_rows(max_len):
    rng = np.random.default_rng(max_len)
    seqs = [np.zeros(0, np.int64)] + [rng.integers(1, 100, size=rng.integers(0, 40)) for _ in range(300)]
    users = rng.integers(1, len(seqs), size=2000)
    lens = np.array([rng.integers(0, len(seqs[u]) + 1) for u in users])
    want = np.stack([left_pad(seqs[u][:n], max_len) for u, n in zip(users, lens)])
    assert np.array_equal(histories(seqs, users, lens, max_len), want)
    assert histories(seqs, users[:0], lens[:0], max_len).shape == (0, max_len)


def test_split_and_units_use_it(small_split):
    from sracl_ray.semantic.units import build_units, unit_histories

    split = small_split
    rows = [left_pad(split.train_seqs[u][:t], split.max_len) for u, t in zip(split.sample_user, split.sample_len)]
    assert np.array_equal(split.sample_hist, np.stack(rows))
    for granularity, expect in (("prefix", split.sample_hist), ("user", split.valid_hist)):
        assert np.array_equal(unit_histories(split, build_units(split, granularity)), expect)


@pytest.fixture
def small_split():
    from sracl_ray.config import load
    from sracl_ray.data.readers import load_dataset
    from sracl_ray.data.split import leave_one_out

    cfg = load(None, ["data.max_users=80"])
    return leave_one_out(load_dataset(cfg.data), cfg.data.max_len)
