"""A sweep whose one trial diverges: that trial ends errored (never best), the others are ok,
the store says so, and `results`/`report` are built from the ok rows only."""
from __future__ import annotations

import math
import re

import sweep_fakes

from sracl_ray import config as C
from sracl_ray.results import store as S
from sracl_ray.sweeps import experiment as E
from sracl_ray.sweeps import runner


def test_diverging_trial_ends_errored_and_the_report_uses_the_ok_ones(local_ray, real_base, tmp_path):
    base = C.merge(real_base, {"train": {"epochs": 2}, "cl": {"variant": "no_cl"}})
    exp = E.from_dict({
        "name": "div", "base": base, "metric": "valid/ndcg@20", "max_failures": 1,
        # lr 1e30 makes Adam's first steps overflow: a real divergence, not a mock
        "search": {"mode": "grid", "grid": {"train.lr": [0.001, 0.002, 1e30]}},
    })
    lines: list[str] = []
    storage = tmp_path / "s"
    out = runner.run_sweep(exp, storage, engine=sweep_fakes.real_counting_engine(), write=lines.append)
    assert (out.n_trials, out.n_finished, out.n_errored) == (3, 2, 1)
    assert out.best is not None and out.best["config"]["train.lr"] in (0.001, 0.002)

    df = S.read_store(storage)
    assert sorted(df["status"]) == ["diverged", "ok", "ok"]
    bad = df[df["status"] == "diverged"].iloc[0]
    assert bad["cfg.train.lr"] == 1e30 and re.search(r"diverged: non-finite loss .* at epoch \d+, step \d+", bad["error"])
    assert bad["ranks_path"] is None or (isinstance(bad["ranks_path"], float) and math.isnan(bad["ranks_path"]))
    assert all(math.isnan(bad[c]) for c in ("valid/ndcg@20", "test/hr@10") if c in df.columns)
    ok = df[df["status"] == "ok"]
    assert ok["test/hr@10"].notna().all() and (ok["alpha_applied"] == 0).all() and ok["host"].notna().all()
    # the retry failed fast: fit() ran once for the diverged trial (its marker ends the retry)
    assert sweep_fakes.fit_calls(storage / "trials" / bad["trial_id"]) == [0]

    from analysis.report import write_report

    markdown = write_report(storage, tmp_path / "report")
    assert "1 trial" in markdown and "diverged" in markdown  # the report says what it left out
    assert (tmp_path / "report" / "index.html").exists()
