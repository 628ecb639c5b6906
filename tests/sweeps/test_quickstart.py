"""`sracl-ray quickstart` in-process, shrunk (150 users, 1 epoch): the table prints the popularity
and random rows beside the arms, the report has them, and the caveat is said."""
from __future__ import annotations

import json

from sracl_ray import cli
from sracl_ray.quickstart import CAVEAT, DATASET


def test_quickstart_prints_baselines_caveat_and_report(local_ray, tmp_path, capsys):
    out = tmp_path / "qs"
    code = cli.main(["quickstart", "--out", str(out), "--set", "data.max_users=150", "--set", "train.epochs=1",
                     "--set", f"semantic.cache_dir={tmp_path / 'cache'}"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    lines = printed.splitlines()
    assert lines[0] == CAVEAT and "no LLM" in CAVEAT and "means nothing" in CAVEAT
    assert lines[-1].startswith("quickstart took ") and lines[-1].endswith(CAVEAT)
    table = [line for line in lines if line.startswith(("full ", "no_cl ", "popularity ", "random (expected) "))]
    assert [line.split()[0] for line in table] == ["full", "no_cl", "popularity", "random"]
    rows = json.loads((out / "baselines.json").read_text())
    assert [r["baseline"] for r in rows] == ["popularity", "random"]
    assert all(r["dataset"] == DATASET.name and r["n_users"] <= 150 for r in rows)
    pop_hr10 = f"{rows[0]['test/hr@10']:.4f}"
    assert pop_hr10 in table[2]
    html = (out / "report" / "index.html").read_text()
    assert "Reference rankings (no learning)" in html and pop_hr10 in html
