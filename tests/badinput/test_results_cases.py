"""Bad inputs to `sracl-ray results` and `sracl-ray report`, through the real CLI: each exits 2 with
one line naming the culprit, no traceback, and writes nothing (not even a refused COPY's file)."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.badinput.harness import Case, cases_params, check_case

METRICS = ("test/hr@10", "test/hr@20", "test/ndcg@10", "test/ndcg@20")


def make_store(tmp: Path, name: str = "sweep") -> Path:
    """A small valid store: sasrec full and no_cl, seeds 1-2, every default metric."""
    from sracl_ray import config as C
    from sracl_ray.results import store as S

    root = tmp / name
    for i, (variant, seed) in enumerate([("full", 1), ("full", 2), ("no_cl", 1), ("no_cl", 2)]):
        cfg = C.from_dict({"cl": {"variant": variant}, "train": {"seed": seed}})
        result = {"metrics": {m: 0.01 * (i + 1) for m in METRICS}, "best_epoch": 2, "epochs_run": 3,
                  "dataset": {"name": "beauty"}}
        S.write_row(root, S.trial_row(result, cfg, f"t{i}", "abl", None))
    return root


def store(tmp: Path) -> None:
    make_store(tmp)


def secret(tmp: Path) -> None:
    make_store(tmp)
    (tmp / "secret.csv").write_text("a,b\ntop-secret,1\n")


def corrupt(tmp: Path) -> str:
    root = make_store(tmp)
    bad = root / "results" / "trial-t9.parquet"
    data = (root / "results" / "trial-t0.parquet").read_bytes()
    bad.write_bytes(data[: len(data) // 2])  # a truncated write
    return str(bad)


def failed_only(tmp: Path) -> None:
    from sracl_ray import config as C
    from sracl_ray.results import store as S

    cfg = C.from_dict({})
    S.write_row(tmp / "sweep", S.trial_row({"status": "diverged", "error": "nan loss"}, cfg, "t0", "x", None))


def missing(tmp: Path) -> str:
    return str(tmp / "nope")


def a_file(tmp: Path) -> str:
    (tmp / "afile").write_text("not a store\n")
    return str(tmp / "afile")


def empty_dir(tmp: Path) -> str:
    (tmp / "empty" / "results").mkdir(parents=True)
    return str(tmp / "empty")


def out_is_a_file(tmp: Path) -> str:
    make_store(tmp)
    (tmp / "out.html").write_text("an earlier report\n")
    return str(tmp / "out.html")


S_ = ["results", "{tmp}/sweep"]
R_ = ["report", "{tmp}/sweep", "--out", "{tmp}/out"]

CASES = [
    # results: the store itself
    Case("results-missing-dir", ["results", "{tmp}/nope"], ["not found", "does not exist"], missing),
    Case("results-dir-is-a-file", ["results", "{tmp}/afile"], ["not a directory"], a_file),
    Case("results-empty-store", ["results", "{tmp}/empty"], ["empty", "trial-*.parquet"], empty_dir),
    Case("results-truncated-parquet", S_, ["cannot read results file"], corrupt),
    # results: options
    Case("results-unknown-metric", [*S_, "--metric", "test/nope@10"], ["test/nope@10", "metrics present",
                                                                        "test/hr@20"], store),
    Case("results-unknown-group-by", [*S_, "--group-by", "varient"], ["--group-by", "varient", "variant"], store),
    Case("results-bad-format", [*S_, "--format", "xml"], ["--format", "xml"], store),
    Case("results-negative-digits", [*S_, "--digits", "-1"], ["--digits", "-1"], store),
    Case("results-sql-read-csv", [*S_, "--sql", "SELECT * FROM read_csv('{tmp}/secret.csv')"], ["secret.csv"],
         secret),
    Case("results-sql-read-text-passwd", [*S_, "--sql", "SELECT * FROM read_text('/etc/passwd')"],
         ["/etc/passwd", "disabled"], store),
    Case("results-sql-copy-to", [*S_, "--sql", "COPY results TO '{tmp}/out.csv'"], ["--sql", "COPY"], store),
    Case("results-sql-attach", [*S_, "--sql", "ATTACH '{tmp}/x.duckdb' AS x"], ["--sql", "ATTACH"], store),
    Case("results-sql-install", [*S_, "--sql", "INSTALL httpfs"], ["--sql", "only a SELECT"], store),
    Case("results-sql-two-statements", [*S_, "--sql", "SELECT 1; COPY results TO '{tmp}/out.csv'"],
         ["exactly one", "2 statements"], store),
    Case("results-where-two-statements", [*S_, "--where", "1=1; COPY results TO '{tmp}/out.csv'"],
         ["--where", "';'"], store),
    Case("results-where-escapes-parens", [*S_, "--where", "1=1) UNION SELECT * FROM results --"],
         ["--where", "unbalanced"], store),
    Case("results-where-subquery-reads-file",
         [*S_, "--where", "trial_id IN (SELECT a FROM read_csv('{tmp}/secret.csv'))"], ["--where", "secret.csv"],
         secret),
    Case("results-group-by-injection",
         [*S_, "--group-by", "variant\" FROM results; COPY results TO '{tmp}/out.csv'; --"], ["--group-by"], store),
    # report: the store
    Case("report-missing-dir", ["report", "{tmp}/nope", "--out", "{tmp}/out"], ["not found"], missing),
    Case("report-empty-store", ["report", "{tmp}/empty", "--out", "{tmp}/out"], ["empty"], empty_dir),
    Case("report-truncated-parquet", R_, ["cannot read results file"], corrupt),
    Case("report-no-ok-trial", R_, ["no trial finished ok", "1 diverged"], failed_only),
    # report: options (none of them may create --out)
    Case("report-unknown-reference-key", [*R_, "--reference", "foo=1"], ["--reference foo=1", "valid keys",
                                                                          "alpha"], store),
    Case("report-reference-without-value", [*R_, "--reference", "alpha"], ["--reference", "KEY=VALUE"], store),
    Case("report-reference-value-absent", [*R_, "--reference", "k=99"], ["k=99", "values present"], store),
    Case("report-unknown-metric", [*R_, "--metric", "test/nope@10"], ["test/nope@10", "metrics present",
                                                                      "test/ndcg@20"], store),
    Case("report-edges-not-numbers", [*R_, "--edges", "a,b"], ["--edges", "'a'"], store),
    Case("report-edges-decreasing", [*R_, "--edges", "10,7"], ["--edges", "increasing"], store),
    Case("report-edges-empty", [*R_, "--edges", ""], ["--edges"], store),
    Case("report-bad-history", [*R_, "--history", "age"], ["--history", "age"], store),
    Case("report-out-is-a-file", ["report", "{tmp}/sweep", "--out", "{tmp}/out.html"], ["--out", "not a directory"],
         out_is_a_file),
]


@pytest.mark.parametrize("case, how", cases_params(CASES))
def test_bad_results_input(case: Case, how: str, tmp_path: Path):
    check_case(case, tmp_path, how)
