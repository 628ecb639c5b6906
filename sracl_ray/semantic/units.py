"""Semantic units: what one user summary/embedding stands for.

granularity "prefix": one unit per training prefix (the authors' release), unit i = training
sample i; granularity "user": one unit per user, its whole training sequence (the paper's
wording, ~6x fewer LLM calls).  Both use training data only.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from sracl_ray.data.split import Split, histories, prefix_key


def build_units(split: Split, granularity: str = "prefix") -> pd.DataFrame:
    """Frame (unit, user, length, key): unit histories are train_seqs[user][:length]."""
    if granularity == "prefix":
        users, lens = split.sample_user, split.sample_len
        hists = split.sample_hist
    elif granularity == "user":
        users = np.arange(1, split.n_users + 1, dtype=np.int64)
        lens = split.train_len
        hists = split.valid_hist
    else:
        raise ValueError(f"semantic.granularity: must be prefix or user, got {granularity!r}")
    keys = [prefix_key(u, h) for u, h in zip(users, hists)]
    return pd.DataFrame({"unit": np.arange(len(users), dtype=np.int64), "user": users,
                         "length": lens, "key": keys})


def unit_histories(split: Split, units: pd.DataFrame) -> np.ndarray:
    """[n_units, L] left-padded histories of each unit (last L items of train_seqs[user][:length])."""
    return histories(split.train_seqs, units["user"].to_numpy(), units["length"].to_numpy(), split.max_len)


def sample_units(split: Split, granularity: str) -> np.ndarray:
    """[N] the unit index of each training sample."""
    if granularity == "prefix":
        return np.arange(split.n_samples, dtype=np.int64)
    return split.sample_user - 1
