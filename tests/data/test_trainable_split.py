"""A dataset that leaves nothing to train on is an error, never a metric (issue 15).

Every user with exactly 3 interactions: leave-one-out keeps 2 for validation and test, and one
training item is no training sample.  Before, `train --set cl.variant=no_cl` exited 0 and reported
test HR@10 = 0.1333 from an untrained model."""
from __future__ import annotations

from pathlib import Path

import pytest

from sracl_ray.cli import main
from sracl_ray.config import load
from sracl_ray.data.errors import DataFormatError
from sracl_ray.training.prepare import prepare_inputs

ITEMS = "item_id\ttitle\n" + "".join(f"{i}\titem {i}\n" for i in range(1, 6))


def paper_dir(tmp_path: Path, seqs: list[list[int]]) -> Path:
    d = tmp_path / "d"
    d.mkdir()
    (d / "Toy.txt").write_text("".join(f"{u} {i}\n" for u, s in enumerate(seqs, 1) for i in s))
    (d / "items.tsv").write_text(ITEMS)
    return d


THREE_EACH = [[1, 2, 3], [2, 3, 4], [4, 5, 1], [5, 1, 2]]


def test_zero_training_samples_is_a_one_line_error_naming_the_dataset(tmp_path):
    d = paper_dir(tmp_path, THREE_EACH)
    with pytest.raises(DataFormatError) as e:
        prepare_inputs(load(None, [f"data.path={d}", "cl.variant=no_cl"]))
    msg = str(e.value)
    assert str(d / "Toy.txt") in msg and "'Toy'" in msg and "0 training samples" in msg
    assert "each of its 4 users has at most 3 interactions" in msg and ">= 4 interactions" in msg


def test_train_exits_2_and_writes_nothing(tmp_path, capsys):
    d = paper_dir(tmp_path, THREE_EACH)
    out = tmp_path / "run"
    rc = main(["train", "--out", str(out), "--set", f"data.path={d}", "--set", "cl.variant=no_cl",
               "--set", "train.epochs=1", "--set", "train.progress=false"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and [ln for ln in err if ln.startswith("sracl-ray:")] == [err[-1]]
    assert err[-1].startswith("sracl-ray: error: ") and "0 training samples" in err[-1]
    assert not out.exists()


def test_a_slice_that_leaves_no_sample_says_so(tmp_path):
    d = paper_dir(tmp_path, [*THREE_EACH, [1, 2, 3, 4, 5]])  # the 5th user has 2 samples, but is sliced off
    with pytest.raises(DataFormatError, match=r"among the first 4 users, data\.max_users"):
        prepare_inputs(load(None, [f"data.path={d}", "cl.variant=no_cl", "data.max_users=4"]))
    prep = prepare_inputs(load(None, [f"data.path={d}", "cl.variant=no_cl"]))
    assert prep.split.n_samples == 2 and prep.split.n_users == 5
