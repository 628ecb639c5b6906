"""Results store: atomic idempotent rows; mean ± std and SQL against hand-computed values."""
from __future__ import annotations

import statistics

import pandas as pd
import pytest

from sracl_ray import config as C
from sracl_ray.results import query as Q
from sracl_ray.results import store as S

# (variant, seed, test/ndcg@20, test/hr@20)
ROWS = [("full", 1, 0.050, 0.12), ("full", 2, 0.054, 0.13), ("full", 3, 0.058, 0.11),
        ("no_cl", 1, 0.040, 0.10), ("no_cl", 2, 0.046, 0.09)]


def fake_result(ndcg: float, hr: float) -> dict:
    return {"metrics": {"valid/ndcg@20": ndcg + 0.01, "test/ndcg@20": ndcg, "test/hr@20": hr},
            "best_epoch": 3, "epochs_run": 5, "wall_time_s": 1.5, "code_version": "0.1.0+abc",
            "dataset": {"name": "beauty"}, "mask_history": False, "max_len": 20}


@pytest.fixture()
def store_dir(tmp_path):
    for i, (variant, seed, ndcg, hr) in enumerate(ROWS):
        cfg = C.from_dict({"cl": {"variant": variant}, "train": {"seed": seed}})
        S.write_row(tmp_path, S.trial_row(fake_result(ndcg, hr), cfg, f"t{i}", "abl", f"trials/t{i}/ranks.parquet"))
    return tmp_path


def test_row_schema_and_idempotent_rewrite(store_dir):
    files = S.store_files(store_dir)
    assert [f.name for f in files] == [f"trial-t{i}.parquet" for i in range(len(ROWS))]
    df = S.read_store(store_dir)
    assert len(df) == len(ROWS)
    for col in ("trial_id", "experiment", "dataset", "backbone", "variant", "seed", "alpha", "beta", "k",
                "mask_history", "max_len", "best_epoch", "epochs_run", "wall_time_s", "code_version",
                "ranks_path", "test/ndcg@20", "cfg.cl.alpha", "cfg.data.path", "cfg.train.seed"):
        assert col in df.columns, col
    # A retried trial rewrites its own file: still one row per trial, holding the new values.
    cfg = C.from_dict({"cl": {"variant": "full"}, "train": {"seed": 1}})
    S.write_row(store_dir, S.trial_row(fake_result(0.07, 0.2), cfg, "t0", "abl", None))
    df = S.read_store(store_dir)
    assert len(df) == len(ROWS) and df.loc[df.trial_id == "t0", "test/ndcg@20"].item() == 0.07
    assert not list((store_dir / "results").glob(".*"))  # no temp files left behind


def test_mean_std_over_seeds_matches_hand_computed(store_dir):
    con = S.connect(store_dir)
    df, group_by, metrics = Q.summary(con, group_by=["variant"], metrics=["test/ndcg@20", "test/hr@20"])
    assert group_by == ["variant"] and list(df["variant"]) == ["full", "no_cl"]
    for variant in ("full", "no_cl"):
        vals = [r[2] for r in ROWS if r[0] == variant]
        row = df[df.variant == variant].iloc[0]
        assert row["n"] == len(vals)
        assert row["test/ndcg@20_mean"] == pytest.approx(statistics.mean(vals))
        assert row["test/ndcg@20_std"] == pytest.approx(statistics.stdev(vals))  # sample std
    # default grouping: the paper axes that vary (here only variant)
    assert Q.summary(con)[1] == ["variant"]
    # --where filters before aggregating
    df, _, _ = Q.summary(con, where="variant='full' AND seed <= 2", group_by=["variant"], metrics=["test/ndcg@20"])
    assert df["n"].tolist() == [2] and df["test/ndcg@20_mean"].item() == pytest.approx(0.052)


def test_sql_over_the_view(store_dir):
    con = S.connect(store_dir)
    out = Q.run_sql(con, 'SELECT variant, max("test/hr@20") AS best FROM results GROUP BY 1 ORDER BY 1')
    assert out.to_dict("records") == [{"variant": "full", "best": 0.13}, {"variant": "no_cl", "best": 0.10}]
    with pytest.raises(Q.QueryError):
        Q.run_sql(con, "SELECT nope FROM results")
    with pytest.raises(Q.QueryError, match="did you mean"):
        Q.summary(con, metrics=["test/ndcg@2"])


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    from sracl_ray import cli  # the real entry point: errors become one line and exit 2

    rc = cli.main(["results", *map(str, argv)])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def test_cli_formats(store_dir, capsys):
    rc, out, _ = run_cli(capsys, store_dir, "--group-by", "variant", "--metric", "test/ndcg@20")
    assert rc == 0 and "0.0540 ± 0.0040" in out and "0.0430 ± 0.0042" in out
    rc, out, _ = run_cli(capsys, store_dir, "--group-by", "variant", "--metric", "test/ndcg@20", "--format", "markdown")
    assert out.splitlines()[0].startswith("| variant") and "| full" in out
    rc, out, _ = run_cli(capsys, store_dir, "--where", "variant='no_cl'", "--group-by", "variant",
                         "--metric", "test/ndcg@20", "--format", "csv")
    frame = pd.read_csv(__import__("io").StringIO(out))
    assert frame["test/ndcg@20_mean"].item() == pytest.approx(0.043)
    rc, out, _ = run_cli(capsys, store_dir, "--sql", "SELECT count(*) AS n FROM results", "--format", "csv")
    assert out.strip().splitlines() == ["n", str(len(ROWS))]
    rc, _, err = run_cli(capsys, store_dir, "--group-by", "varient")
    assert rc == 2 and "did you mean variant" in err
    rc, _, err = run_cli(capsys, store_dir / "nope")
    assert rc == 2 and "not found" in err


def test_failure_rows_are_scrubbed_and_name_the_host_only_where_the_trial_failed(monkeypatch):
    """results/store.failure_result: the one recipe of a failed trial's row for both trial runners and
    for the driver's rows of trials whose worker died (no host: the driver is not where it failed)."""
    import socket

    from sracl_ray.errors import NonFiniteError
    from sracl_ray.results.store import failure_result

    key = "sk-driver-side-secret-987654321"
    monkeypatch.setenv("OPENAI_API_KEY", key)
    here = failure_result(RuntimeError(f"refused {key}"))
    assert here["status"] == "errored" and key not in here["error"] and here["host"] == socket.gethostname()
    driver = failure_result(RuntimeError(f"worker died holding {key}"), on_this_host=False)
    assert driver["status"] == "errored" and key not in driver["error"] and "host" not in driver

    class RayTaskError(Exception):  # Ray's wrapper: the cause sits in .cause
        def __init__(self, cause):
            super().__init__("wrapped")
            self.cause = cause

    wrapped = failure_result(RayTaskError(NonFiniteError("loss is nan at epoch 2")), on_this_host=False)
    assert wrapped == {"status": "diverged", "error": "loss is nan at epoch 2"}
