"""Bad fidelity settings and `neighbours --stats` inputs: one line naming the culprit, exit 2, nothing written."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.badinput.harness import Case, cases_params, check_case

TRAIN = ["train", "--out", "{tmp}/run", "--set", "data.max_users=60", "--set", "train.epochs=1",
         "--set", "train.progress=false"]


def _artifact_with_bad_norms(tmp: Path) -> str:
    from sracl_ray.config import load
    from sracl_ray.data.readers import load_dataset
    from sracl_ray.data.split import leave_one_out
    from tests.conftest import fake_artifact

    cfg = load(None, ["data.max_users=60"])
    data = load_dataset(cfg.data)
    art = fake_artifact(data, leave_one_out(data, cfg.data.max_len), tmp / "art")
    norm = np.ones(len(art.unit_emb), np.float32)
    norm[3] = np.nan
    np.save(tmp / "art" / "unit_norm.npy", norm)
    return "unit_norm.npy"


def _a_file(tmp: Path) -> None:
    (tmp / "notdir").write_text("x")


CASES = [
    Case("cs_form", TRAIN + ["--set", "cl.cs_form=eq10"], ["cl.cs_form", "release", "paper"]),
    Case("ce_padding", TRAIN + ["--set", "train.ce_padding=drop"], ["train.ce_padding", "exclude", "include"]),
    Case("bad_unit_norm", TRAIN + ["--set", "semantic.artifact={tmp}/art"], ["art", "finite"],
         setup=_artifact_with_bad_norms),
    Case("stats_missing_dir", ["neighbours", "--stats", "{tmp}/nothing"], ["nothing", "no such semantic artifact"]),
    Case("stats_on_a_file", ["neighbours", "--stats", "{tmp}/notdir"], ["notdir", "is a file"], setup=_a_file),
]


@pytest.mark.parametrize("case, how", cases_params(CASES))
def test_bad_fidelity_input(case, how, tmp_path):
    check_case(case, tmp_path, how)
