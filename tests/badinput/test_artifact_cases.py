"""Bad semantic artifacts given to `train`: one line naming the file, exit 2, nothing written.

Each case copies a valid artifact built for the same 60-user slice (tests/conftest.py's
`fake_artifact`), breaks one thing, and runs the real CLI (tests/badinput/harness.py).  The
artifact is validated before training creates --out, so no file appears.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.badinput.harness import Case, check_case

SLICE = 60
TRAIN = ["train", "--out", "{tmp}/run", "--set", "semantic.artifact={tmp}/art", "--set", f"data.max_users={SLICE}",
         "--set", "train.epochs=1", "--set", "train.progress=false", "--set", "train.num_threads=1"]
TEMPLATES: dict[str, Path] = {}  # name -> a valid artifact dir, built once per module


def _build(out: Path, max_users: int = SLICE, max_len: int | None = None) -> Path:
    from sracl_ray.config import load
    from sracl_ray.data.readers import load_dataset
    from sracl_ray.data.split import leave_one_out
    from tests.conftest import fake_artifact

    cfg = load(None, [f"data.max_users={max_users}"])
    data = load_dataset(cfg.data)
    fake_artifact(data, leave_one_out(data, max_len or cfg.data.max_len), out)
    return out


@pytest.fixture(scope="module", autouse=True)
def templates(tmp_path_factory):
    root = tmp_path_factory.mktemp("artifact_templates")
    TEMPLATES["good"] = _build(root / "good")
    TEMPLATES["max_len10"] = _build(root / "max_len10", max_len=10)
    TEMPLATES["users50"] = _build(root / "users50", max_users=50)
    yield
    TEMPLATES.clear()


def copy(tmp: Path, name: str = "good") -> Path:
    art = tmp / "art"
    shutil.copytree(TEMPLATES[name], art)
    return art


def truncate(file: str, keep: float = 0.5):
    def setup(tmp: Path) -> str:
        path = copy(tmp) / file
        raw = path.read_bytes()
        path.write_bytes(raw[: int(len(raw) * keep)])
        return str(path)
    return setup


def edit_npy(file: str, change):
    def setup(tmp: Path) -> str:
        path = copy(tmp) / file
        np.save(path, change(np.load(path)), allow_pickle=True)
        return str(path)
    return setup


def put(index, value):
    def change(a):
        a = a.copy()
        a[index] = value
        return a
    return change


def remove(file: str):
    def setup(tmp: Path) -> str:
        art = copy(tmp)
        (art / file).unlink()
        return str(art)
    return setup


def shuffled_unit_keys(tmp: Path) -> str:
    art = copy(tmp)
    units = pd.read_parquet(art / "units.parquet")
    units["key"] = units["key"].to_numpy()[::-1]
    units.to_parquet(art / "units.parquet", index=False)
    return str(art)


def list_manifest(tmp: Path) -> str:
    path = copy(tmp) / "manifest.json"
    path.write_text(json.dumps([1]))
    return str(path)


def write_file(tmp: Path) -> str:
    (tmp / "art").write_text("not a directory\n")
    return str(tmp / "art")


CASES = [
    Case("truncated_item_emb", TRAIN, ["not a readable .npy"], truncate("item_emb.npy")),
    Case("truncated_item_emb_header", TRAIN, ["not a readable .npy"], truncate("item_emb.npy", 0.05)),
    Case("truncated_unit_nbrs", TRAIN, ["not a readable .npy"], truncate("unit_nbrs.npy")),
    Case("nan_unit_emb", TRAIN, ["NaN or inf", "rows"], edit_npy("unit_emb.npy", put((3, 0), np.nan))),
    Case("inf_item_emb", TRAIN, ["NaN or inf", "row 7"], edit_npy("item_emb.npy", put((7, 2), np.inf))),
    Case("zero_unit_emb_row", TRAIN, ["all zeros"], edit_npy("unit_emb.npy", put(5, 0.0))),
    Case("float_item_nbrs", TRAIN, ["2-d array of integers"], edit_npy("item_nbrs.npy", lambda a: a.astype(float))),
    Case("pickled_unit_nbrs", TRAIN, ["not a readable .npy"],
         edit_npy("unit_nbrs.npy", lambda a: np.array([{"x": 1}], dtype=object))),
    Case("truncated_manifest", TRAIN, ["not a valid manifest"], truncate("manifest.json")),
    Case("manifest_not_object", TRAIN, ["expected a JSON object"], list_manifest),
    Case("missing_manifest", TRAIN, ["no manifest.json"], remove("manifest.json")),
    Case("missing_unit_emb", TRAIN, ["missing unit_emb.npy"], remove("unit_emb.npy")),
    Case("truncated_units", TRAIN, ["not a readable Parquet"], truncate("units.parquet")),
    Case("units_other_max_len", TRAIN, ["units do not match"],
         lambda t: str(copy(t, "max_len10"))),
    Case("units_shuffled", TRAIN, ["units do not match"], shuffled_unit_keys),
    Case("other_data", TRAIN, ["built for", "items"], lambda t: str(copy(t, "users50"))),
    Case("k_larger_than_stored", TRAIN + ["--set", "cl.k=50"], ["cl.k=50", "20 neighbours"], lambda t: str(copy(t))),
    Case("artifact_missing", TRAIN, ["no such semantic artifact directory"], lambda t: str(t / "art")),
    Case("artifact_is_file", TRAIN, ["is a file"], write_file),
    Case("item_nbrs_out_of_range", TRAIN, ["item_nbrs.npy", "outside"],
         edit_npy("item_nbrs.npy", put((4, 1), 10_000))),
    Case("item_nbrs_padding_id", TRAIN, ["item_nbrs.npy", "outside"], edit_npy("item_nbrs.npy", put((4, 1), 0))),
    Case("unit_nbrs_negative", TRAIN, ["unit_nbrs.npy", "outside"], edit_npy("unit_nbrs.npy", put((2, 0), -1))),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_artifact(case, tmp_path):
    check_case(case, tmp_path)
