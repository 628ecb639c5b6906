"""The existing readers (paper, RecBole) on real data, malformed input, and the leave-one-out split."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from sracl_ray.config import DataConfig
from sracl_ray.data.dataset import InteractionData
from sracl_ray.data.errors import DataFormatError
from sracl_ray.data.readers import SAMPLE_DIR, load_dataset, read_any, read_paper, read_recbole
from sracl_ray.data.split import leave_one_out

SHARED = Path(__file__).resolve().parents[2].parent / "shared"  # CI: ../shared beside the clone
BEAUTY = SHARED / "data" / "beauty"
ML100K = SHARED / "data" / "ml-100k"
needs_beauty = pytest.mark.skipif(not BEAUTY.exists(), reason=f"{BEAUTY} not present")
needs_ml100k = pytest.mark.skipif(not ML100K.exists(), reason=f"{ML100K} not present")


def counts(data: InteractionData) -> tuple[int, int, int]:
    """(users, items, interactions)."""
    return data.n_users, data.n_items, len(data.interactions)


def test_packaged_sample_loads() -> None:
    data = read_any(SAMPLE_DIR)
    assert counts(data) == (1000, 4910, 8495)
    assert data.domain == "beauty" and len(data.items) == 4910
    assert data.items["item"].tolist() == list(range(1, 4911))
    cfg_data = load_dataset(DataConfig())
    assert cfg_data.name == "beauty_sample" and counts(cfg_data) == (1000, 4910, 8495)
    assert cfg_data.fingerprint == data.fingerprint


@needs_beauty
def test_full_beauty_loads() -> None:
    data = read_paper(BEAUTY)
    assert counts(data) == (22363, 12101, 198502)
    assert len(data.items) == 12101 and data.items["title"].ne("").mean() > 0.99
    assert data.items.loc[0, "asin"] == "B007IY97U0"  # item 1 of the release (user 1's first item)


@needs_ml100k
def test_ml100k_recbole_in_timestamp_order() -> None:
    data = read_recbole(ML100K)
    assert counts(data) == (943, 1682, 100000)
    assert data.domain == "movies" and data.items["title"].ne("").all()
    # Independent reconstruction: raw rows sorted by (numeric user, timestamp), stable.
    raw = pd.read_csv(ML100K / "ml-100k.inter", sep="\t", dtype=str)
    raw.columns = [c.split(":")[0] for c in raw.columns]
    raw["user_id"] = raw["user_id"].astype(int)
    raw["timestamp"] = raw["timestamp"].astype(float)
    raw = raw.sort_values(["user_id", "timestamp"], kind="stable").reset_index(drop=True)
    inter = data.interactions.sort_values(["user", "order"], kind="stable").reset_index(drop=True)
    tokens = data.items.set_index("item")["token"]
    assert (inter["user"].to_numpy() == raw["user_id"].to_numpy()).all()  # user id == raw user token
    assert (tokens.loc[inter["item"]].to_numpy() == raw["item_id"].to_numpy()).all()
    assert (raw.groupby("user_id")["timestamp"].diff().dropna() >= 0).all()


def test_malformed_user_item_line(tmp_path: Path) -> None:
    path = tmp_path / "Toy.txt"
    path.write_text("1 1\n1 2\n\n2 x\n")
    with pytest.raises(DataFormatError, match="two positive integer ids") as err:
        read_paper(tmp_path)
    assert "Toy.txt, line 4:" in str(err.value) and err.value.line == 4
    path.write_text("1 1\n1 0\n")
    with pytest.raises(DataFormatError, match=r"Toy.txt, line 2: expected ids >= 1"):
        read_paper(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Toy.txt"]  # nothing written


def test_malformed_inter_line(tmp_path: Path) -> None:
    path = tmp_path / "toy.inter"
    header = "user_id:token\titem_id:token\ttimestamp:float\n"
    path.write_text(header + "1\t10\t5\n1\t11\n2\t10\t6\n")
    with pytest.raises(DataFormatError, match="3 tab-separated fields") as err:
        read_recbole(tmp_path)
    assert "toy.inter, line 3:" in str(err.value) and err.value.line == 3
    path.write_text(header + "1\t10\t5\n1\t11\t6\n2\t10\tsoon\n")
    with pytest.raises(DataFormatError, match=r"toy.inter, line 4: expected a finite numeric timestamp"):
        read_recbole(tmp_path)
    path.write_text("user_id\titem_id\n1\t2\n")
    with pytest.raises(DataFormatError, match=r"toy.inter, line 1: expected typed header"):
        read_recbole(tmp_path)


@needs_beauty
def test_full_beauty_training_prefixes() -> None:
    split = leave_one_out(read_paper(BEAUTY), max_len=20)
    assert split.n_samples == 131413  # = 198502 - 3 * 22363
    assert split.sample_hist.shape == (131413, 20)


@pytest.mark.parametrize("max_len", [20, 3])
def test_split_never_leaks_valid_or_test_targets(max_len: int) -> None:
    data = read_any(SAMPLE_DIR)
    split = leave_one_out(data, max_len=max_len)
    seqs = data.sequences
    assert split.n_samples == sum(len(s) - 3 for s in seqs[1:])
    assert (split.valid_target == [s[-2] for s in seqs[1:]]).all()
    assert (split.test_target == [s[-1] for s in seqs[1:]]).all()
    for row in range(split.n_samples):
        u, t = int(split.sample_user[row]), int(split.sample_len[row])
        s = seqs[u]
        held_out = {int(s[-2]), int(s[-1])}
        hist = split.sample_hist[row]
        assert 1 <= t <= len(s) - 3  # inputs and target come from s[:-2] only
        assert int(split.sample_target[row]) == s[t] and int(s[t]) not in held_out
        assert not held_out & set(hist.tolist())
        assert hist[max_len - min(t, max_len):].tolist() == s[max(0, t - max_len):t].tolist()
        assert not hist[:max_len - min(t, max_len)].any()  # left padding
    for u in range(1, data.n_users + 1):
        assert not {int(seqs[u][-2]), int(seqs[u][-1])} & set(split.train_seqs[u].tolist())
        assert int(seqs[u][-2]) not in split.valid_hist[u - 1] and int(seqs[u][-1]) not in split.test_hist[u - 1]
