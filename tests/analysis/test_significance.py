"""Per-user significance: paired bootstrap CI and Wilcoxon signed-rank test from stored per-user ranks."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from analysis.significance import (
    NotComparableError, compare_arms, compare_values, paired_bootstrap_ci, parse_metric, user_values,
    wilcoxon_test,
)
from analysis.store import load_store
from sracl_ray.errors import UserError
from sracl_ray.training.evaluate import Ranks, per_user

XSU = "cfg.semantic.exclude_same_user"


# ---------- the two tests on plain arrays ----------

def test_wilcoxon_hand_computed_normal_approximation():
    # 40 users gain one hit, 20 lose one, 40 unchanged: the 60 non-zero |d| all tie (rank 30.5)
    t = np.r_[np.ones(40), np.zeros(20), np.ones(20), np.zeros(20)]
    b = np.r_[np.zeros(40), np.ones(20), np.ones(20), np.zeros(20)]
    stat, p, nonzero = wilcoxon_test(t, b)
    n = 60
    w_minus = 20 * 30.5
    var = n * (n + 1) * (2 * n + 1) / 24 - (60 ** 3 - 60) / 48  # tie correction: one group of 60
    z = (w_minus - n * (n + 1) / 4) / math.sqrt(var)
    assert nonzero == 60 and stat == pytest.approx(w_minus)
    assert p == pytest.approx(math.erfc(-z / math.sqrt(2)), rel=1e-9)  # two-sided: 2 * Phi(z), z < 0
    assert p == pytest.approx(0.0098233, abs=1e-6)


def test_wilcoxon_agrees_with_scipy_on_continuous_values():
    rng = np.random.default_rng(3)
    b = rng.random(300)
    t = b + rng.normal(0.02, 0.1, 300)
    stat, p, nonzero = wilcoxon_test(t, b)
    ref = sps.wilcoxon(t, b)
    assert (stat, p, nonzero) == (pytest.approx(ref.statistic), pytest.approx(ref.pvalue), 300)


def test_identical_values_are_noise_ci_zero_and_p_one():
    v = np.random.default_rng(0).random(50)
    r = compare_values(v, v.copy(), "test/hr@20")
    assert (r.ci_low, r.ci_high) == (0.0, 0.0) and r.ci_contains_zero
    assert r.wilcoxon_p == 1.0 and math.isnan(r.wilcoxon_statistic) and r.n_nonzero == 0
    assert r.better == "tie" and r.mark == ""


def test_bootstrap_hand_computed_cases():
    assert paired_bootstrap_ci(np.full(30, 0.25)) == (0.25, 0.25)  # no variation between users
    # two users, d = (0, 1): a resample's mean is 0, 1/2 or 1 with probability 1/4, 1/2, 1/4
    lo, hi = paired_bootstrap_ci([0.0, 1.0], n_resamples=10_000, confidence=0.95, seed=1)
    assert (lo, hi) == (0.0, 1.0)
    lo, hi = paired_bootstrap_ci([0.0, 1.0], n_resamples=10_000, confidence=0.4, seed=1)  # 30th-70th pct
    assert (lo, hi) == (0.5, 0.5)
    assert all(math.isnan(x) for x in paired_bootstrap_ci([]))


def test_bootstrap_is_seeded_and_agrees_with_scipy():
    d = np.random.default_rng(7).normal(0.01, 0.2, 400)
    a = paired_bootstrap_ci(d, n_resamples=20_000, seed=5)
    assert a == paired_bootstrap_ci(d, n_resamples=20_000, seed=5)
    ref = sps.bootstrap((d,), np.mean, n_resamples=20_000, method="percentile", confidence_level=0.95,
                        rng=np.random.default_rng(11)).confidence_interval
    width = ref.high - ref.low
    assert a[0] == pytest.approx(ref.low, abs=0.03 * width) and a[1] == pytest.approx(ref.high, abs=0.03 * width)
    se = d.std(ddof=1) / math.sqrt(d.size)  # and the normal-theory interval, roughly
    assert a[0] == pytest.approx(d.mean() - 1.96 * se, abs=0.1 * width)


def test_a_real_difference_is_not_noise():
    rng = np.random.default_rng(0)
    b = (rng.random(500) < 0.10).astype(float)
    t = np.maximum(b, (rng.random(500) < 0.15).astype(float))  # only gains: +~0.13 HR
    r = compare_values(t, b, "test/hr@20")
    assert r.ci_low > 0 and not r.ci_contains_zero
    assert r.wilcoxon_p < 1e-6 and r.mark == "**" and r.better == "treatment"
    assert r.mean_diff == pytest.approx(t.mean() - b.mean())


# ---------- from stored ranks ----------

def test_parse_metric():
    assert parse_metric("test/ndcg@20") == ("test", "ndcg", 20)
    assert parse_metric("valid/hr@5") == ("valid", "hr", 5)
    for bad in ("train/loss", "test/recall@10", "hr@10"):
        with pytest.raises(UserError, match="per-user"):
            parse_metric(bad)


def test_user_values_follow_the_engine_under_both_tie_policies(tmp_path: Path):
    ranks = pd.DataFrame({"user": [1, 2, 3, 4], "rank_test": [0, 3, 25, 2], "ties_test": [0, 2, 0, 2],
                          "rank_valid": [1, 1, 1, 1], "ties_valid": [0, 0, 0, 0]})
    path = tmp_path / "ranks.parquet"
    ranks.to_parquet(path)
    pess = user_values(path, "test/hr@3", "pessimistic")
    assert pess.tolist() == [1.0, 0.0, 0.0, 1.0] and pess.index.tolist() == [1, 2, 3, 4]
    exp = user_values(path, "test/hr@3", "expected")
    # user 2: 1 item above, 2 tied -> rank uniform on {1, 2, 3}: hit with probability 2/3
    # user 4: 0 above, 2 tied -> rank uniform on {0, 1, 2}: always a hit
    assert exp.tolist() == pytest.approx([1.0, 2 / 3, 0.0, 1.0])
    greater = ranks["rank_test"].to_numpy() - ranks["ties_test"].to_numpy()
    ndcg = user_values(path, "test/ndcg@10", "expected")
    assert ndcg.to_numpy() == pytest.approx(per_user(Ranks(greater, ranks["ties_test"].to_numpy()), "ndcg", 10,
                                                     "expected"))
    assert user_values(path, "valid/mrr@5").tolist() == pytest.approx([0.5] * 4)


def test_old_ranks_file_without_ties_counts_none(tmp_path: Path):
    path = tmp_path / "ranks.parquet"
    pd.DataFrame({"user": [1, 2], "rank_test": [0, 4]}).to_parquet(path)
    assert user_values(path, "test/hr@5", "expected").tolist() == [1.0, 1.0]
    assert user_values(path, "test/ndcg@5").tolist() == pytest.approx([1.0, 1 / math.log2(6)])


def _store(root: Path, arms: dict, fingerprints: dict | None = None) -> Path:
    """A store with one trial per (arm, seed): arms = {variant: {seed: rank_test array}}."""
    (root / "results").mkdir(parents=True)
    for variant, seeds in arms.items():
        for seed, rank in seeds.items():
            tid = f"{variant}-{seed}"
            rel = Path("trials") / tid / "ranks.parquet"
            (root / rel).parent.mkdir(parents=True)
            rank = np.asarray(rank)
            pd.DataFrame({"user": np.arange(1, len(rank) + 1), "rank_test": rank, "ties_test": 0,
                          "rank_valid": rank, "ties_valid": 0}).to_parquet(root / rel)
            row = {"trial_id": tid, "experiment": "t", "dataset": "beauty", "backbone": "sasrec",
                   "variant": variant, "seed": seed, "alpha": 0.1, "beta": 0.1, "k": 10, "mask_history": False,
                   "max_len": 20, "status": "ok", "ties": "pessimistic", "ranks_path": str(rel),
                   "data_fingerprint": (fingerprints or {}).get(variant, "fp0"),
                   "test/hr@20": float((rank < 20).mean()), "test/ndcg@20": 0.0}
            pd.DataFrame([row]).to_parquet(root / "results" / f"trial-{tid}.parquet")
    return root


def test_identical_runs_from_the_store_are_noise(tmp_path: Path):
    rank = np.random.default_rng(1).integers(0, 60, 80)
    df = load_store(_store(tmp_path / "s", {"full": {1: rank}, "no_cl": {1: rank.copy()}}))
    r = compare_arms(df, "test/hr@20", {"variant": "full"}, {"variant": "no_cl"})
    assert r.ci_contains_zero and r.wilcoxon_p == 1.0 and r.n_users == 80 and r.mean_diff == 0.0


def test_one_seed_already_shows_a_real_difference(tmp_path: Path):
    rng = np.random.default_rng(2)
    base = rng.integers(15, 200, 300)
    better = np.where(rng.random(300) < 0.3, rng.integers(0, 15, 300), base)  # 30% of users move into the top 15
    df = load_store(_store(tmp_path / "s", {"full": {1: better}, "no_cl": {1: base}}))
    r = compare_arms(df, "test/hr@20", {"variant": "full"}, {"variant": "no_cl"})
    assert r.ci_low > 0 and r.wilcoxon_p < 0.01 and r.mark == "**"
    assert r.mean_treatment == pytest.approx((better < 20).mean())
    assert r.mean_baseline == pytest.approx((base < 20).mean())


def test_several_seeds_are_averaged_per_user_then_paired(tmp_path: Path):
    a1, a2 = np.array([0, 30, 0, 30]), np.array([0, 0, 30, 30])
    b1 = np.array([30, 30, 30, 0])
    df = load_store(_store(tmp_path / "s", {"full": {1: a1, 2: a2}, "no_cl": {1: b1}}))
    r = compare_arms(df, "test/hr@20", {"variant": "full"}, {"variant": "no_cl"}, n_resamples=2000)
    t = ((a1 < 20).astype(float) + (a2 < 20)) / 2  # [1, .5, .5, 0]
    b = (b1 < 20).astype(float)  # [0, 0, 0, 1]
    assert (r.n_treatment, r.n_baseline, r.n_users) == (2, 1, 4)
    assert r.mean_treatment == pytest.approx(t.mean()) and r.mean_diff == pytest.approx((t - b).mean())
    assert r.wilcoxon_p == pytest.approx(sps.wilcoxon(t, b).pvalue)


def test_seeds_and_users_resampled_together_when_both_arms_have_seeds(tmp_path: Path):
    """compare_arms adds the hierarchical bootstrap (analysis/inference.py) over the arms' per-run
    per-user values, seeds paired by their seed number whatever the row order."""
    from analysis.inference import hierarchical_bootstrap

    rng = np.random.default_rng(2)
    full = {s: rng.integers(0, 60, 80) for s in (1, 2, 3)}
    base = {s: rng.integers(0, 60, 80) for s in (3, 1, 2)}  # stored in another order
    df = load_store(_store(tmp_path / "s", {"full": full, "no_cl": base}))
    df = pd.concat([df[df["variant"] == "full"], df[df["variant"] == "no_cl"].iloc[::-1]], ignore_index=True)
    assert df.loc[df["variant"] == "no_cl", "seed"].tolist() == [3, 2, 1]  # the baseline's runs in another order
    r = compare_arms(df, "test/hr@20", {"variant": "full"}, {"variant": "no_cl"}, n_resamples=500)
    assert r.paired_seeds
    t = np.stack([(full[s] < 20).astype(float) for s in (1, 2, 3)])
    b = np.stack([(base[s] < 20).astype(float) for s in (1, 2, 3)])
    # paired by seed number: row i of both matrices is seed i (1, 2, 3 as the treatment's rows come)
    want = hierarchical_bootstrap(t, b, paired_seeds=True, n_resamples=500, seed=0)
    assert (r.seeds_ci_low, r.seeds_ci_high, r.seeds_p) == pytest.approx((want.ci_low, want.ci_high, want.pvalue))
    one = load_store(_store(tmp_path / "one", {"full": {1: full[1]}, "no_cl": {1: base[1]}}))
    r1 = compare_arms(one, "test/hr@20", {"variant": "full"}, {"variant": "no_cl"}, n_resamples=200)
    assert math.isnan(r1.seeds_p) and math.isnan(r1.seeds_ci_low)  # one seed: no seed variance to resample


def test_refuses_runs_on_different_data(tmp_path: Path):
    rank = np.arange(40)
    df = load_store(_store(tmp_path / "a", {"full": {1: rank}, "no_cl": {1: rank}}, {"full": "fpA", "no_cl": "fpB"}))
    with pytest.raises(NotComparableError, match=r"different data.*fpA.*fpB"):
        compare_arms(df, "test/hr@20", {"variant": "full"}, {"variant": "no_cl"})
    assert issubclass(NotComparableError, UserError)


def test_refuses_runs_with_other_test_users(tmp_path: Path):
    df = load_store(_store(tmp_path / "a", {"full": {1: np.arange(40)}, "no_cl": {1: np.arange(39)}}))
    with pytest.raises(NotComparableError, match=r"40 test users.*39"):
        compare_arms(df, "test/hr@20", {"variant": "full"}, {"variant": "no_cl"})
    df = load_store(_store(tmp_path / "b", {"full": {1: np.arange(40), 2: np.arange(30)}, "no_cl": {1: np.arange(40)}}))
    with pytest.raises(NotComparableError, match="same test users"):
        compare_arms(df, "test/hr@20", {"variant": "full"}, {"variant": "no_cl"})


def test_missing_arm_or_ranks_is_a_clear_error(tmp_path: Path):
    df = load_store(_store(tmp_path / "a", {"full": {1: np.arange(40)}}))
    with pytest.raises(UserError, match="no ok runs match the baseline selection"):
        compare_arms(df, "test/hr@20", {"variant": "full"}, {"variant": "no_cl"})
    (tmp_path / "a" / "trials" / "full-1" / "ranks.parquet").unlink()
    df = load_store(tmp_path / "a")
    with pytest.raises(UserError, match="ranks file .* not found"):
        compare_arms(df, "test/hr@20", {"variant": "full"}, {"variant": "full"})


def test_report_shows_per_user_tests_next_to_the_t_test(tmp_path: Path):
    from analysis.report import write_report

    rng = np.random.default_rng(4)
    base = {s: rng.integers(10, 100, 120) for s in (1, 2, 3)}
    full = {s: np.where(rng.random(120) < 0.3, 0, r) for s, r in base.items()}
    root = _store(tmp_path / "s", {"full": full, "no_cl": base})
    md = write_report(root, tmp_path / "out", metrics=["test/hr@20"])
    assert "Significance: each backbone with vs without SRA-CL" in md  # the over-seeds t-test, unchanged
    block = md[md.index("Significance per user"):]
    row = next(line for line in block.splitlines() if line.startswith("| beauty | SASRec | SASRec+SRA-CL"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[3] == "SASRec" and cells[4] == "HR@20" and cells[11:13] == ["120", "3/3"]
    assert cells[9].endswith(r"\*\*")  # Wilcoxon p (Markdown escapes the marks)
    assert cells[10] != "–"  # t over seeds, in the same row
    assert "averaged over its seeds, then paired over the same test users" in block
    # beside them: seeds and users resampled together (3 paired seeds), Holm over the table, TOST
    assert cells[13].startswith("[") and cells[14] != "–" and cells[15] != "–" and cells[16] != "–"
    assert cells[17] != "–" and "hierarchical bootstrap" in block and "Holm" in block and "TOST" in block


def test_per_user_table_compares_the_other_users_arm(tmp_path: Path):
    from analysis.tables import per_user_table

    rng = np.random.default_rng(5)
    root = _store(tmp_path / "s", {"full": {1: rng.integers(0, 50, 60)}, "no_cl": {1: rng.integers(0, 50, 60)}})
    # the same setting once more, with L_CS neighbours from other users only
    rel = Path("trials") / "xsu-1" / "ranks.parquet"
    (root / rel).parent.mkdir(parents=True)
    pd.read_parquet(root / "trials" / "full-1" / "ranks.parquet").to_parquet(root / rel)
    row = pd.read_parquet(root / "results" / "trial-full-1.parquet").assign(trial_id="xsu-1", ranks_path=str(rel))
    row[XSU] = True
    row.to_parquet(root / "results" / "trial-xsu-1.parquet")
    df = load_store(root)
    assert df[XSU].tolist().count(False) == 2  # rows written before the key existed read as false
    md = per_user_table(df, ["test/hr@20"]).to_markdown()
    assert "| SASRec+SRA-CL | SASRec+SRA-CL [other users' neighbours] | HR@20 |" in md
    assert "| SASRec+SRA-CL [other users' neighbours] | SASRec | HR@20 |" in md
    same = next(line for line in md.splitlines() if "| SASRec+SRA-CL | SASRec+SRA-CL [other" in line)
    assert "+0.0000" in same and "[+0.0000, +0.0000]" in same and "| 1 |" in same  # identical ranks: p = 1


def test_neighbour_control_runs_are_their_own_arm_never_reference_rows(tmp_path: Path):
    """A full run on shuffled neighbours (semantic.neighbours) is compared with full, and neither mixes
    into full's arm nor into the reference tables; rows without the column read as semantic."""
    from analysis.methods import at_reference
    from analysis.tables import per_user_arms, per_user_table

    rng = np.random.default_rng(9)
    root = _store(tmp_path / "s", {"full": {1: rng.integers(0, 50, 60)}, "no_cl": {1: rng.integers(0, 50, 60)}})
    rel = Path("trials") / "shuf-1" / "ranks.parquet"
    (root / rel).parent.mkdir(parents=True)
    pd.DataFrame({"user": np.arange(1, 61), "rank_test": rng.integers(0, 50, 60), "ties_test": 0,
                  "rank_valid": 0, "ties_valid": 0}).to_parquet(root / rel)
    row = pd.read_parquet(root / "results" / "trial-full-1.parquet").assign(trial_id="shuf-1", ranks_path=str(rel))
    row["cfg.semantic.neighbours"] = "shuffled"
    row.to_parquet(root / "results" / "trial-shuf-1.parquet")
    df = load_store(root)
    assert df["cfg.semantic.neighbours"].tolist().count("semantic") == 2  # older rows: the artifact's table
    assert "shuf-1" not in set(at_reference(df)["trial_id"])
    pairs = per_user_arms(df, "beauty", "sasrec")
    assert ({"dataset": "beauty", "backbone": "sasrec", "variant": "full", "cfg.semantic.neighbours": "semantic"},
            {"dataset": "beauty", "backbone": "sasrec", "variant": "full", "cfg.semantic.neighbours": "shuffled"}) in pairs
    md = per_user_table(df, ["test/hr@20"]).to_markdown()
    assert "| SASRec+SRA-CL | SASRec+SRA-CL [shuffled neighbours] | HR@20 |" in md
    plain = next(line for line in md.splitlines() if "| SASRec+SRA-CL | SASRec | HR@20 |" in line)
    assert "| 1/1 |" in plain  # full's arm holds its one semantic run, not the control


def _extra_full_run(root: Path, trial: str, rng, **settings) -> None:
    rel = Path("trials") / trial / "ranks.parquet"
    (root / rel).parent.mkdir(parents=True)
    pd.DataFrame({"user": np.arange(1, 61), "rank_test": rng.integers(0, 50, 60), "ties_test": 0,
                  "rank_valid": 0, "ties_valid": 0}).to_parquet(root / rel)
    row = pd.read_parquet(root / "results" / "trial-full-1.parquet").assign(trial_id=trial, ranks_path=str(rel))
    for key, value in settings.items():
        row[key] = value
    row.to_parquet(root / "results" / f"trial-{trial}.parquet")


def test_control_runs_are_their_own_arms_and_same_user_reads_as_the_old_key(tmp_path: Path):
    """semantic.exclude=longer_same_user, item_neighbours and unit_pool=release runs are compared with full
    and never reference rows;
    semantic.exclude=same_user lands in the exclude_same_user arm (one column for "other users only")."""
    from analysis.methods import at_reference
    from analysis.tables import per_user_arms, per_user_table

    rng = np.random.default_rng(11)
    root = _store(tmp_path / "s", {"full": {1: rng.integers(0, 50, 60)}, "no_cl": {1: rng.integers(0, 50, 60)}})
    _extra_full_run(root, "longer-1", rng, **{"cfg.semantic.exclude": "longer_same_user"})
    _extra_full_run(root, "same-1", rng, **{"cfg.semantic.exclude": "same_user"})
    _extra_full_run(root, "co-1", rng, **{"cfg.semantic.item_neighbours": "cooccurrence"})
    _extra_full_run(root, "rel-1", rng, **{"cfg.semantic.unit_pool": "release"})
    df = load_store(root)
    by_id = df.set_index("trial_id")
    assert by_id.loc["same-1", XSU] == True and by_id.loc["same-1", "cfg.semantic.exclude"] == "none"  # noqa: E712
    assert by_id.loc["full-1", "cfg.semantic.exclude"] == "none" and by_id.loc["full-1", XSU] == False  # noqa: E712
    assert not {"longer-1", "same-1", "co-1", "rel-1"} & set(at_reference(df)["trial_id"])
    pairs = per_user_arms(df, "beauty", "sasrec")
    base = {"dataset": "beauty", "backbone": "sasrec", "variant": "full", XSU: False, "cfg.semantic.exclude": "none",
            "cfg.semantic.item_neighbours": "semantic", "cfg.semantic.unit_pool": "train"}
    assert (base, base | {"cfg.semantic.exclude": "longer_same_user"}) in pairs
    assert (base, base | {XSU: True}) in pairs
    md = per_user_table(df, ["test/hr@20"]).to_markdown()
    assert "| SASRec+SRA-CL | SASRec+SRA-CL [no longer same-user prefixes] | HR@20 |" in md
    assert "| SASRec+SRA-CL | SASRec+SRA-CL [cooccurrence item neighbours] | HR@20 |" in md
    assert "| SASRec+SRA-CL | SASRec+SRA-CL [release unit pool] | HR@20 |" in md
    assert "| SASRec+SRA-CL | SASRec+SRA-CL [other users' neighbours] | HR@20 |" in md
    plain = next(line for line in md.splitlines() if "| SASRec+SRA-CL | SASRec | HR@20 |" in line)
    assert "| 1/1 |" in plain
