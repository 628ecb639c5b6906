"""Semantic units: what one user summary/embedding stands for.

granularity "prefix": one unit per training prefix (the authors' release), unit i = training
sample i; granularity "user": one unit per user, its whole training sequence (the paper's
wording, ~6x fewer LLM calls).  Both use training data only.

unit pool "release" (semantic.unit_pool, config.UNIT_POOLS; prefix granularity only): the pool the authors' release
builds (its data notebook makes a unit of every prefix of the *full* sequence): the training
prefixes, then per user two more units appended after them: its whole training sequence (whose
next item is the validation item) and that plus the validation item (the test input).  Training
samples keep units 0..N-1; the extra units are only ever neighbours, so through L_CS (which
encodes the neighbours' histories) the validation item reaches training, as it does in the
release.  The test item never does.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from sracl_ray.config import UNIT_POOLS
from sracl_ray.data.split import Split, histories, prefix_key


def pool_sequences(split: Split) -> list[np.ndarray]:
    """Per user the sequence units are prefixes of: its training items plus its validation item (a
    training-pool unit is at most the training sequence less its last item, so never reaches it)."""
    return [np.asarray(split.train_seqs[0])] + [np.append(s, v) for s, v in zip(split.train_seqs[1:],
                                                                                split.valid_target)]


def build_units(split: Split, granularity: str = "prefix", pool: str = "train") -> pd.DataFrame:
    """Frame (unit, user, length, key): unit histories are pool_sequences(split)[user][:length]."""
    if pool not in UNIT_POOLS:
        raise ValueError(f"semantic.unit_pool: must be one of {UNIT_POOLS}, got {pool!r}")
    if pool == "release" and granularity != "prefix":
        raise ValueError("semantic.unit_pool=release is the release's pool of prefixes: it needs "
                         "semantic.granularity=prefix")
    if granularity == "prefix":
        users, lens = split.sample_user, split.sample_len
        hists = split.sample_hist
        if pool == "release":  # + per user: the whole training sequence, and the test input
            every = np.arange(1, split.n_users + 1, dtype=np.int64)
            extra_u = np.repeat(every, 2)
            extra_l = np.stack([split.train_len, split.train_len + 1], 1).ravel()
            users, lens = np.concatenate([users, extra_u]), np.concatenate([lens, extra_l])
            hists = np.concatenate([hists, histories(pool_sequences(split), extra_u, extra_l, split.max_len)])
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
    return histories(pool_sequences(split), units["user"].to_numpy(), units["length"].to_numpy(), split.max_len)


def sample_units(split: Split, granularity: str) -> np.ndarray:
    """[N] the unit index of each training sample."""
    if granularity == "prefix":
        return np.arange(split.n_samples, dtype=np.int64)
    return split.sample_user - 1
