"""`sracl-ray quickstart` in-process, shrunk: benchmarks/quickstart_time.py --smoke (60 users, 1
epoch, a random-vector artifact) drives it, so this one run checks both the command (the table
prints the popularity and random rows beside the arms, the report has them, the caveat is said
first and last) and the benchmark's record (its smoke is not run again as a subprocess)."""
from __future__ import annotations

import json
from pathlib import Path

from sracl_ray.quickstart import CAVEAT, DATASET
from tests.benchmarks.test_benchmark_smoke import BENCH, check_record, results_listing


def test_quickstart_prints_baselines_caveat_and_report(local_ray, tmp_path, capsys, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))
    import quickstart_time

    before = results_listing()
    storage, record = tmp_path / "qs", tmp_path / "quickstart_time.json"
    quickstart_time.main(["--smoke", "--storage", str(storage), "--out", str(record)])
    printed = capsys.readouterr().out
    rec = json.loads(record.read_text())
    check_record(rec, "quickstart_time")
    assert rec["results"]["exit_code"] == 0, printed
    assert results_listing() == before, "a smoke run wrote into benchmarks/results"

    lines = printed.splitlines()
    said = [i for i, line in enumerate(lines) if CAVEAT in line]
    assert "no LLM" in CAVEAT and "means nothing" in CAVEAT
    assert lines[said[0]] == CAVEAT and lines[said[-1]].startswith("quickstart took ") and len(said) == 2
    assert not any(line.startswith(("full ", "no_cl ")) for line in lines[:said[0]])  # said before anything
    table = [line for line in lines if line.startswith(("full ", "no_cl ", "popularity ", "random (expected) "))]
    assert [line.split()[0] for line in table] == ["full", "no_cl", "popularity", "random"]
    rows = json.loads((storage / "baselines.json").read_text())
    assert [r["baseline"] for r in rows] == ["popularity", "random"]
    assert all(r["dataset"] == DATASET.name and r["n_users"] <= 60 for r in rows)
    pop_hr10 = f"{rows[0]['test/hr@10']:.4f}"
    assert pop_hr10 in table[2]
    assert rec["results"]["baseline[popularity]"]["test/hr@10"] == round(rows[0]["test/hr@10"], 4)
    html = Path(storage / "report" / "index.html").read_text()
    assert "Reference rankings (no learning)" in html and pop_hr10 in html
    # the gain-by-composition panel, from the ranks and the artifact the sweep's trials used
    assert "fig7b_gain_by_composition.png" in html and (storage / "report" / "fig7b_gain_by_composition.png").exists()
