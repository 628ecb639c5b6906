"""Leave-one-out split and training prefixes.

For user u with items s[0..n-1]: test target s[n-1], validation target s[n-2], training items
s[0..n-3].  Training samples are all prefixes (s[max(0,t-L):t], s[t]) for 1 <= t <= n-3, so no
validation or test target ever appears in a training input or target.  Histories are
left-padded with 0 to `max_len` columns: the last column always holds the newest item.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sracl_ray.data.dataset import InteractionData


@dataclass(frozen=True)
class Split:
    max_len: int
    n_items: int
    n_users: int
    train_seqs: list[np.ndarray]  # train_seqs[u] = training items of user u; [0] empty
    sample_user: np.ndarray  # [N] user of each training prefix
    sample_len: np.ndarray  # [N] t = number of training items before the target (untruncated)
    sample_hist: np.ndarray  # [N, L] left-padded history (last L items of the prefix)
    sample_target: np.ndarray  # [N]
    valid_hist: np.ndarray  # [U, L] row u-1 = user u's training items (last L)
    valid_target: np.ndarray  # [U]
    test_hist: np.ndarray  # [U, L] training items + validation item (last L)
    test_target: np.ndarray  # [U]

    @property
    def n_samples(self) -> int:
        return len(self.sample_target)

    @property
    def train_len(self) -> np.ndarray:
        """[U] length of each user's training sequence."""
        return np.array([len(s) for s in self.train_seqs[1:]], dtype=np.int64)


def left_pad(seq: np.ndarray, max_len: int) -> np.ndarray:
    """Last `max_len` items of seq, left-padded with 0."""
    out = np.zeros(max_len, dtype=np.int64)
    tail = seq[-max_len:] if len(seq) else seq
    if len(tail):
        out[max_len - len(tail):] = tail
    return out


def histories(train_seqs: list[np.ndarray], users: np.ndarray, lengths: np.ndarray, max_len: int) -> np.ndarray:
    """[N, max_len] left-padded histories: row r = the last max_len of train_seqs[users[r]][:lengths[r]].

    Vectorised (one gather over a padded matrix of the sequences), the same rows left_pad gives."""
    users, lengths = np.asarray(users, np.int64), np.asarray(lengths, np.int64)
    width = max(1, max((len(s) for s in train_seqs), default=1))
    mat = np.zeros((len(train_seqs), width), np.int64)
    for u, s in enumerate(train_seqs):
        mat[u, :len(s)] = s
    idx = lengths[:, None] - max_len + np.arange(max_len, dtype=np.int64)[None, :]  # [N, L] positions
    out = mat[users[:, None], np.clip(idx, 0, None)]
    out[idx < 0] = 0
    return out


def prefix_key(user: int, hist: np.ndarray) -> str:
    """Key of a semantic unit: 'uid:i1:...:ik' over the non-padding history items."""
    return ":".join([str(int(user))] + [str(int(i)) for i in hist if i != 0])


def leave_one_out(data: InteractionData, max_len: int = 20) -> Split:
    """Split every user's sequence; build all training prefixes."""
    seqs = data.sequences
    n_users = data.n_users
    if min((len(s) for s in seqs[1:]), default=0) < 3:  # load_dataset drops such users first
        raise ValueError(f"{data.name}: leave-one-out needs >= 3 interactions per user (use drop_short_users)")
    train_seqs = [np.zeros(0, np.int64)] + [s[:-2] for s in seqs[1:]]
    users, lens, targets = [], [], []
    for u in range(1, n_users + 1):
        n = len(train_seqs[u])
        if n >= 2:
            t = np.arange(1, n, dtype=np.int64)
            users.append(np.full(n - 1, u, np.int64))
            lens.append(t)
            targets.append(train_seqs[u][1:])
    sample_user = np.concatenate(users) if users else np.zeros(0, np.int64)
    sample_len = np.concatenate(lens) if lens else np.zeros(0, np.int64)
    sample_target = np.concatenate(targets) if targets else np.zeros(0, np.int64)
    hist = histories(train_seqs, sample_user, sample_len, max_len)
    valid_hist = np.stack([left_pad(train_seqs[u], max_len) for u in range(1, n_users + 1)])
    test_hist = np.stack([left_pad(seqs[u][:-1], max_len) for u in range(1, n_users + 1)])
    return Split(
        max_len=max_len, n_items=data.n_items, n_users=n_users, train_seqs=train_seqs,
        sample_user=sample_user, sample_len=sample_len, sample_hist=hist, sample_target=sample_target,
        valid_hist=valid_hist, valid_target=np.array([s[-2] for s in seqs[1:]], np.int64),
        test_hist=test_hist, test_target=np.array([s[-1] for s in seqs[1:]], np.int64),
    )
