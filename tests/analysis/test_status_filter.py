"""Analysis and `results` use only trials whose status is ok, say how many others they left out,
and flag trials that stopped at the epoch cap; stores from before those columns read as ok."""
from __future__ import annotations

import io
import math
import types
from pathlib import Path

import pandas as pd
import pytest

from analysis.aggregate import aggregate
from analysis.report import write_report
from analysis.store import left_out, load_store, only_ok
from analysis.tables import table2
from sracl_ray import cli
from sracl_ray.errors import UserError



@pytest.fixture()
def conf(store_builder):
    """tests/analysis/conftest.py as a module (`import conftest` is ambiguous across test dirs)."""
    # its functions' own globals: sys.modules["conftest"] may be another folder's conftest
    return types.SimpleNamespace(**store_builder.__globals__)


def failed_rows(conf) -> list[dict]:
    """A diverged run that claims perfect metrics (the broken model of issue 9) and an errored one."""
    diverged = conf.make_row("x-div", "beauty", "sasrec", "full", 2)
    diverged.update({f"test/{m}": 1.0 for m in ("hr@10", "hr@20", "ndcg@10", "ndcg@20")},
                    status="diverged", error="non-finite loss at epoch 1, step 3", hit_epoch_cap=True)
    errored = conf.make_row("x-err", "office", "gru4rec", "no_cl", 1, alpha=0.0, beta=0.0)
    errored.update({k: math.nan for k in errored if k.startswith(("test/", "valid/"))},
                   status="errored", error="RuntimeError: boom")
    return [diverged, errored]


def small_store(conf, root: Path) -> Path:
    conf.build_store(root, sweeps=False, ablations=False)
    return root


def run_results(capsys, *argv) -> tuple[int, str, str]:
    rc = cli.main(["results", *map(str, argv)])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def test_report_ignores_failed_trials_and_says_so(tmp_path, conf):
    root = small_store(conf, tmp_path / "sweep")
    clean = write_report(root, tmp_path / "clean")
    assert "Left out" not in clean and "Epoch cap" not in clean  # an old store: no status column
    for row in failed_rows(conf):
        conf.write_row(root / "results", row)
    md = write_report(root, tmp_path / "with_failed")
    note = ("Note: Left out 2 trials whose status is not ok (1 diverged, 1 errored); tables and figures "
            "use the 24 ok trials.")
    assert md.startswith(note)
    assert md[len(note):].lstrip("\n") == clean.lstrip("\n")  # the tables are exactly those without them
    page = (tmp_path / "with_failed" / "index.html").read_text()
    assert "Left out 2 trials whose status is not ok (1 diverged, 1 errored)" in page and "24 trials" in page
    assert (tmp_path / "with_failed" / "tables.md").read_text().startswith(note)
    assert "Epoch cap" not in md  # the diverged row's cap flag does not count: it is not ok


def test_store_without_or_with_partial_status_columns_reads_as_ok(tmp_path, conf):
    root = small_store(conf, tmp_path / "sweep")
    df = load_store(root)
    assert (df["status"] == "ok").all() and not df["hit_epoch_cap"].any() and left_out(df) == {}
    newer = conf.make_row("x-new", "beauty", "sasrec", "full", 3) | {"status": "ok", "hit_epoch_cap": False}
    conf.write_row(root / "results", newer)
    conf.write_row(root / "results", failed_rows(conf)[0])
    df = load_store(root)
    assert left_out(df) == {"diverged": 1} and len(only_ok(df)) == 25
    assert df["status"].notna().all() and df["hit_epoch_cap"].dtype == bool


def test_every_store_reader_backfills_old_rows_the_same_way(tmp_path, conf):
    """One reader (results/store.read_files) behind `results`, SQL and analysis: an old row (no status,
    no hit_epoch_cap) reads as ok / false everywhere, beside a new diverged row."""
    from sracl_ray.results import store as RS

    root = small_store(conf, tmp_path / "sweep")
    conf.write_row(root / "results", failed_rows(conf)[0])
    frames = {"read_store": RS.read_store(root), "load_store": load_store(root),
              "sql": RS.connect(root).execute("SELECT * FROM results").df()}
    for name, df in frames.items():
        counts = df["status"].value_counts().to_dict()
        assert counts == {"ok": 24, "diverged": 1}, name
        assert df["hit_epoch_cap"].dtype == bool and int(df["hit_epoch_cap"].sum()) == 1, name


def test_tables_and_aggregates_skip_failed_rows_given_directly(store, tmp_path, conf):
    root, rows = store
    df = pd.concat([pd.DataFrame(rows).assign(status="ok"), pd.DataFrame(failed_rows(conf))], ignore_index=True)
    ok = pd.DataFrame(rows).assign(status="ok")
    metrics = ["test/hr@20", "test/ndcg@20"]
    pd.testing.assert_frame_equal(aggregate(df, metrics), aggregate(ok, metrics))
    assert table2(df, metrics).to_markdown() == table2(ok, metrics).to_markdown()


def test_report_flags_trials_at_the_epoch_cap(tmp_path, conf):
    root = small_store(conf, tmp_path / "sweep")
    for tid in ("t0001", "t0002"):  # beauty seed 1: sasrec no_cl and sasrec full
        f = root / "results" / f"trial-{tid}.parquet"
        pd.read_parquet(f).assign(hit_epoch_cap=True, status="ok").to_parquet(f, index=False)
    md = write_report(root, tmp_path / "r")
    cap = [line for line in md.splitlines() if "Epoch cap" in line]
    assert len(cap) == 1 and "2 trials had the best epoch at the last epoch allowed" in cap[0]
    assert "beauty SASRec: 1 of 3 (t0001)" in cap[0] and "beauty SASRec+SRA-CL: 1 of 3 (t0002)" in cap[0]
    assert "Epoch cap: 2 trials" in (tmp_path / "r" / "index.html").read_text()


def test_report_with_no_ok_trial_is_one_clear_error(tmp_path, conf):
    results = tmp_path / "sweep" / "results"
    for row in failed_rows(conf):
        conf.write_row(results, row)
    with pytest.raises(UserError, match=r"no trial finished ok \(Left out 2 trials .*1 diverged, 1 errored"):
        write_report(tmp_path / "sweep", tmp_path / "r")
    assert not (tmp_path / "r").exists()


def test_results_summary_uses_ok_rows_and_says_what_it_left_out(tmp_path, capsys, conf):
    root = small_store(conf, tmp_path / "sweep")
    argv = [root, "--group-by", "dataset,backbone,variant", "--metric", "test/hr@20", "--format", "csv"]
    rc, clean, err = run_results(capsys, *argv)
    assert rc == 0 and "left out" not in err and "n_cap" not in clean
    for row in failed_rows(conf):
        conf.write_row(root / "results", row)
    rc, out, err = run_results(capsys, *argv)
    assert rc == 0 and out == clean  # same numbers: the failed rows are not in them
    notes = [line for line in err.splitlines() if line.startswith("note:")]
    assert notes == ["note: left out 2 trials whose status is not ok (1 diverged, 1 errored); list them with "
                     "--sql \"SELECT * FROM results WHERE status <> 'ok'\""]
    # --where narrows what is counted as left out too
    rc, _, err = run_results(capsys, root, "--where", "dataset = 'office'", "--group-by", "variant")
    assert rc == 0 and "left out 1 trial whose status is not ok (1 errored)" in err
    # --sql sees every row, whatever its status
    rc, out, _ = run_results(capsys, root, "--sql", "SELECT status, count(*) AS n FROM results GROUP BY 1 ORDER BY 1",
                             "--format", "csv")
    assert out.split() == ["status,n", "diverged,1", "errored,1", "ok,24"]


def test_results_shows_the_epoch_cap(tmp_path, capsys, conf):
    root = small_store(conf, tmp_path / "sweep")
    for tid in ("t0001", "t0005"):  # beauty sasrec no_cl seeds 1 and 2
        f = root / "results" / f"trial-{tid}.parquet"
        pd.read_parquet(f).assign(hit_epoch_cap=True).to_parquet(f, index=False)
    rc, out, _ = run_results(capsys, root, "--group-by", "dataset,backbone,variant", "--metric", "test/hr@20")
    lines = out.splitlines()
    assert rc == 0 and lines[0].split()[:5] == ["dataset", "backbone", "variant", "n", "n_cap"]
    capped = [line.split() for line in lines[2:] if line.split()[4:5] != ["0"] and line.strip()]
    assert [c[:5] for c in capped if c[0] == "beauty"] == [["beauty", "sasrec", "no_cl", "3", "2"]]
    assert any(line.startswith("n_cap: trials whose best epoch was the last epoch allowed") for line in lines)
    rc, out, err = run_results(capsys, root, "--group-by", "variant", "--format", "csv")
    frame = pd.read_csv(io.StringIO(out))
    assert frame.set_index("variant")["n_cap"].to_dict() == {"full": 0, "no_cl": 2} and "n_cap:" in err
