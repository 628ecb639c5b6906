"""`sracl-ray results`: a read-only, sandboxed query.  Every attack is refused and writes nothing;
legitimate queries still work."""
from __future__ import annotations

import io
import os
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from sracl_ray import cli
from sracl_ray import config as C
from sracl_ray.results import query as Q
from sracl_ray.results import store as S

SECRET = "top-secret-line"


def snapshot(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*")}


@pytest.fixture()
def store(tmp_path, monkeypatch):
    """(storage dir, secret file outside the store); the test runs in tmp_path."""
    storage = tmp_path / "sweep"
    for i, (variant, seed, ndcg) in enumerate([("full", 1, 0.05), ("full", 2, 0.06), ("no_cl", 1, 0.04)]):
        cfg = C.from_dict({"cl": {"variant": variant}, "train": {"seed": seed}})
        result = {"metrics": {"test/ndcg@20": ndcg, "test/hr@20": 2 * ndcg}, "best_epoch": 3, "epochs_run": 5,
                  "dataset": {"name": "beauty"}}
        S.write_row(storage, S.trial_row(result, cfg, f"t{i}", "abl", None))
    secret = tmp_path / "secret.csv"
    secret.write_text(f"a,b\n{SECRET},1\n")
    monkeypatch.chdir(tmp_path)
    return storage, secret


def run(capsys, *argv) -> tuple[int, str, str]:
    rc = cli.main(["results", *map(str, argv)])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def attacks(tmp: Path, secret: Path) -> list[list[str]]:
    out = tmp / "out.csv"
    return [
        ["--sql", f"SELECT * FROM read_csv('{secret}')"],
        ["--sql", f"SELECT * FROM read_text('{secret}')"],
        ["--sql", "SELECT * FROM read_text('/etc/passwd')"],
        ["--sql", f"SELECT * FROM '{secret}'"],
        ["--sql", f"SELECT * FROM glob('{tmp}/*')"],
        ["--sql", f"COPY results TO '{out}'"],
        ["--sql", f"COPY (SELECT 1) TO '{out}' (FORMAT csv)"],
        ["--sql", f"EXPORT DATABASE '{tmp / 'exported'}'"],
        ["--sql", f"ATTACH '{tmp / 'x.duckdb'}' AS x"],
        ["--sql", "INSTALL httpfs"],
        ["--sql", "LOAD httpfs"],
        ["--sql", "PRAGMA enable_profiling"],
        ["--sql", f"SET profiling_output = '{tmp / 'prof.json'}'"],
        ["--sql", "SET enable_external_access = true"],
        ["--sql", "RESET lock_configuration"],
        ["--sql", "CREATE TABLE x AS SELECT 1"],
        ["--sql", "DELETE FROM results"],
        ["--sql", f"SELECT 1; COPY results TO '{out}'"],
        ["--sql", f"WITH q AS (SELECT 1) SELECT * FROM q; COPY results TO '{out}'"],
        ["--sql", f"SELECT * FROM results WHERE trial_id IN (SELECT a FROM read_csv('{secret}'))"],
        ["--where", f"1=1; COPY results TO '{out}'"],
        ["--where", f"1=1) UNION ALL SELECT * FROM read_csv('{secret}') --"],
        ["--where", "1=1) --"],
        ["--where", "variant = 'full' /* hidden */"],
        ["--where", f"trial_id IN (SELECT a FROM read_csv('{secret}'))"],
        ["--where", "1=1)) OR ((1=1"],
        ["--where", "SELECT 1"],
        ["--group-by", f"variant, (SELECT a FROM read_csv('{secret}'))"],
        ["--group-by", f"variant\" FROM results; COPY results TO '{out}'; --"],
        ["--metric", f"test/ndcg@20\") FROM results; COPY results TO '{out}'; --"],
    ]


def test_every_attack_is_refused_and_writes_nothing(store, tmp_path, capsys):
    storage, secret = store
    before = snapshot(tmp_path)
    for argv in attacks(tmp_path, secret):
        rc, out, err = run(capsys, storage, *argv)
        lines = err.strip().splitlines()
        assert rc == 2, (argv, out, err)
        assert len(lines) == 1 and lines[0].startswith("sracl-ray: error: "), (argv, err)
        assert SECRET not in out + err and "root:" not in out, argv
        assert snapshot(tmp_path) == before, (argv, sorted(set(snapshot(tmp_path)) - set(before)))


def test_the_sandbox_blocks_files_even_without_the_statement_checks(store, tmp_path):
    """Second layer: the connection itself cannot touch a file or change a setting."""
    storage, secret = store
    con = S.connect(storage)
    before = snapshot(tmp_path)
    for sql in (f"SELECT * FROM read_csv('{secret}')", f"SELECT * FROM read_parquet('{S.store_files(storage)[0]}')",
                f"COPY results TO '{tmp_path / 'o.csv'}'", f"ATTACH '{tmp_path / 'x.db'}' AS x", "INSTALL httpfs",
                "LOAD httpfs", "SET enable_external_access = true", "SET lock_configuration = false",
                f"SET temp_directory = '{tmp_path}'", f"EXPORT DATABASE '{tmp_path / 'e'}'"):
        with pytest.raises(duckdb.Error):
            con.execute(sql)
    assert snapshot(tmp_path) == before
    assert con.execute("SELECT current_setting('enable_external_access')").fetchone()[0] is False


def test_refusals_say_why(store, capsys):
    storage, _ = store
    cases = {("--sql", "COPY results TO 'x.csv'"): "only a SELECT or WITH query",
             ("--sql", "SELECT 1; SELECT 2"): "exactly one SELECT or WITH query, got 2 statements",
             ("--where", "1=1; SELECT 2"): "';' is not allowed",
             ("--where", "1=1 -- x"): "comments are not allowed",
             ("--where", "1=1) OR (1=1"): "unbalanced ')'",
             ("--where", "nope = 1"): "nope",
             ("--where", "   "): "--where is empty",
             ("--group-by", "varient"): "did you mean variant",
             ("--metric", "nope"): "metrics present: test/hr@20, test/ndcg@20",
             ("--sql", f"SELECT * FROM read_csv('{Path.cwd() / 'secret.csv'}')"): "secret.csv"}
    for argv, why in cases.items():
        rc, _, err = run(capsys, storage, *argv)
        assert rc == 2 and why in err, (argv, err)


def test_legitimate_queries_still_work(store, capsys):
    storage, _ = store
    rc, out, _ = run(capsys, storage, "--sql", 'SELECT variant, round(avg("test/ndcg@20"), 3) AS m FROM results '
                                      "GROUP BY variant ORDER BY variant", "--format", "csv")
    assert rc == 0 and out.split() == ["variant,m", "full,0.055", "no_cl,0.04"]
    rc, out, _ = run(capsys, storage, "--sql", "WITH f AS (SELECT * FROM results WHERE variant = 'full') "
                                               "SELECT count(*) AS n FROM f", "--format", "csv")
    assert rc == 0 and out.split() == ["n", "2"]
    # strings may hold ';', '--', ')' and quotes: they are data, not SQL
    rc, out, _ = run(capsys, storage, "--where", "variant <> 'a;b--)' AND (seed IN (1, 2)) AND \"test/ndcg@20\" > 0",
                     "--group-by", "variant", "--metric", "test/ndcg@20", "--format", "csv")
    frame = pd.read_csv(io.StringIO(out))
    assert rc == 0 and frame["variant"].tolist() == ["full", "no_cl"] and frame["n"].tolist() == [2, 1]
    assert frame["test/ndcg@20_mean"].tolist() == pytest.approx([0.055, 0.04])
    rc, out, _ = run(capsys, storage, "--where", "seed IN (SELECT min(seed) FROM results)", "--group-by", "variant")
    assert rc == 0 and "0.0500 ± -" in out and "0.0400 ± -" in out
    rc, out, _ = run(capsys, storage, "--sql", "SUMMARIZE results")
    assert rc == 0 and "test/ndcg@20" in out


def test_check_where_accepts_one_expression_only(store):
    con = S.connect(store[0])
    assert Q.check_where(con, "variant = 'x;y'") == "variant = 'x;y'"
    for bad in ("1=1;", "a) OR (b", "1=1 UNION SELECT 1", "variant='full' variant='x'"):
        with pytest.raises(Q.QueryError):
            Q.check_where(con, bad)


def test_nothing_spills_into_the_working_dir(store, tmp_path):
    con = S.connect(store[0])
    assert con.execute("SELECT current_setting('temp_directory')").fetchone()[0] == ""
    assert not (Path(os.getcwd()) / ".tmp").exists()
