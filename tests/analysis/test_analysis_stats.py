"""Paired t-tests: scipy and a hand computation agree, the one-sided direction, unmatched seeds."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from analysis.stats import (
    UnmatchedSeedsError, compare, higher_is_better, improvement_pct, one_sided_alternative,
    pair_runs, paired_ttest, significance_mark,
)

TREAT = [0.1300, 0.1285, 0.1320, 0.1295, 0.1310]
BASE = [0.1210, 0.1230, 0.1220, 0.1190, 0.1240]


def t_sf(t: float, dof: int) -> float:
    """P(T > t) for Student's t, by integrating its density (no scipy)."""
    c = math.gamma((dof + 1) / 2) / (math.sqrt(dof * math.pi) * math.gamma(dof / 2))
    pdf = lambda x: c * (1 + x * x / dof) ** (-(dof + 1) / 2)  # noqa: E731
    a = abs(t)
    x = np.linspace(0.0, a, 200_001)
    central = np.trapezoid(pdf(x), x)  # P(0 < T < |t|)
    upper = 0.5 - central  # P(T > |t|)
    return upper if t >= 0 else 1 - upper


def test_t_statistic_and_p_match_scipy_and_hand_computation():
    d = np.subtract(TREAT, BASE)
    n = d.size
    t_hand = d.mean() / (d.std(ddof=1) / math.sqrt(n))
    p_two_hand = 2 * t_sf(abs(t_hand), n - 1)
    p_greater_hand = t_sf(t_hand, n - 1)
    res = paired_ttest(TREAT, BASE, "test/hr@20")
    ref = sps.ttest_rel(TREAT, BASE)
    assert res.statistic == pytest.approx(t_hand, rel=1e-12) == pytest.approx(ref.statistic)
    assert res.pvalue == pytest.approx(ref.pvalue, rel=1e-12)
    assert res.pvalue == pytest.approx(p_two_hand, rel=1e-6)
    one = paired_ttest(TREAT, BASE, "test/hr@20", "greater")
    assert one.pvalue == pytest.approx(sps.ttest_rel(TREAT, BASE, alternative="greater").pvalue)
    assert one.pvalue == pytest.approx(p_greater_hand, rel=1e-6)
    assert one.pvalue == pytest.approx(res.pvalue / 2)
    assert res.n == 5 and res.mean_diff == pytest.approx(d.mean())
    assert res.improvement_pct == pytest.approx((np.mean(TREAT) / np.mean(BASE) - 1) * 100)


def test_one_sided_direction_better_treatment_small_p_worse_treatment_large_p():
    assert one_sided_alternative("test/ndcg@20") == "greater"
    better = paired_ttest(TREAT, BASE, "test/hr@20", one_sided_alternative("test/hr@20"))
    assert better.alternative == "greater" and better.pvalue < 0.01 and better.better == "treatment"
    assert better.mark == "**"
    worse = paired_ttest(BASE, TREAT, "test/hr@20", one_sided_alternative("test/hr@20"))
    assert worse.pvalue > 0.5 and worse.better == "baseline" and worse.mark == ""
    # the RecBole trap: alternative="less" with (treatment, baseline) tests the opposite
    trap = sps.ttest_rel(TREAT, BASE, alternative="less").pvalue
    assert trap > 0.5


def test_two_sided_reports_the_better_side():
    res = paired_ttest(BASE, TREAT, "test/hr@20")
    assert res.alternative == "two-sided" and res.better == "baseline" and res.pvalue < 0.01
    assert res.improvement_pct < 0


def test_lower_is_better_metric_flips_direction():
    assert not higher_is_better("train/loss") and one_sided_alternative("train/loss") == "less"
    res = paired_ttest(BASE, TREAT, "train/loss", one_sided_alternative("train/loss"))
    assert res.better == "treatment" and res.pvalue < 0.01 and res.improvement_pct > 0


def test_marks_and_improvement():
    assert significance_mark(0.004) == "**" and significance_mark(0.01) == "*"
    assert significance_mark(0.049) == "*" and significance_mark(0.05) == ""
    assert significance_mark(float("nan")) == ""
    assert improvement_pct(0.11, 0.10) == pytest.approx(10.0)
    assert improvement_pct(0.9, 1.0, higher_better=False) == pytest.approx(10.0)
    assert math.isnan(improvement_pct(0.1, 0.0))


def test_degenerate_samples_give_nan_not_a_crash():
    assert math.isnan(paired_ttest([0.1], [0.2]).pvalue)
    same = paired_ttest([0.1, 0.2], [0.1, 0.2])
    assert math.isnan(same.pvalue) and same.better == "tie" and same.mark == ""


def _runs(pairs_t, pairs_b):
    rows = [{"dataset": d, "seed": s, "variant": "full", "m": 0.2 + 0.01 * s} for d, s in pairs_t]
    rows += [{"dataset": d, "seed": s, "variant": "no_cl", "m": 0.1 + 0.02 * s} for d, s in pairs_b]
    return pd.DataFrame(rows)


@pytest.mark.parametrize("treatment, baseline", [
    ([0.021, 0.024], [0.020, 0.023]),  # equal differences in floating point: 0.0010000000000000009 twice
    ([0.031, 0.024, 0.050], [0.030, 0.023, 0.049]),
    ([0.5, 0.5, 0.5], [0.25, 0.25, 0.25]),
])
def test_differences_without_spread_are_undefined_not_infinitely_significant(treatment, baseline):
    """Equal non-zero differences over 2-3 seeds are plausible on a 1/500 grid; scipy then gives
    t = inf (or ~1e13 from rounding) and p = 0, which a table would print as '**'."""
    r = paired_ttest(treatment, baseline, "test/hr@10")
    assert math.isnan(r.statistic) and math.isnan(r.pvalue) and r.mark == ""
    assert r.better == "treatment" and r.mean_diff > 0  # the direction is still reported
    # a genuine spread, however small relative to the mean, is still tested
    ok = paired_ttest([0.021, 0.0245], [0.020, 0.023], "test/hr@10")
    assert math.isfinite(ok.statistic) and 0 < ok.pvalue < 1


def test_significance_table_prints_undefined_for_a_test_without_spread(tmp_path):
    from analysis.tables import significance_table

    rows = []
    for seed, (t, b) in enumerate(((0.021, 0.020), (0.024, 0.023)), start=1):
        for variant, v in (("full", t), ("no_cl", b)):
            rows.append({"dataset": "beauty", "backbone": "sasrec", "variant": variant, "seed": seed,
                         "alpha": 0.1, "beta": 0.1, "k": 10, "mask_history": False, "max_len": 50,
                         "status": "ok", "test/hr@20": v, "test/ndcg@20": v / 2})
    table = significance_table(pd.DataFrame(rows), ["test/hr@20"])
    md = table.to_markdown()
    row = next(line for line in md.splitlines() if line.startswith("| beauty"))
    assert row.count("undefined") == 3 and "*" not in row, row  # t, p two-sided, p one-sided


def test_compare_pairs_by_dataset_and_seed(loaded, store):
    _, rows = store
    t, b = {"backbone": "sasrec", "variant": "full", "alpha": 0.1, "k": 10}, {
        "backbone": "sasrec", "variant": "no_cl"}
    out = compare(loaded, "test/hr@20", t, b, one_sided=True)
    assert list(out["dataset"]) == ["beauty", "office"] and (out["alternative"] == "greater").all()
    r = rows[(rows.backbone == "sasrec") & (rows.dataset == "beauty")]
    tv = r[(r.variant == "full") & (r.alpha == 0.1) & (r.k == 10)].sort_values("seed")["test/hr@20"]
    bv = r[r.variant == "no_cl"].sort_values("seed")["test/hr@20"]
    expected = sps.ttest_rel(tv, bv, alternative="greater")
    assert out.loc[0, "pvalue"] == pytest.approx(expected.pvalue)
    pooled = compare(loaded, "test/hr@20", t, b, by=None)
    assert len(pooled) == 1 and pooled.loc[0, "n"] == 6


def test_unmatched_seeds_name_the_missing_pairs():
    df = _runs([("beauty", 1), ("beauty", 2), ("beauty", 3), ("office", 1)],
               [("beauty", 1), ("beauty", 2), ("office", 1), ("office", 2)])
    with pytest.raises(UnmatchedSeedsError) as e:
        pair_runs(df, "m", {"variant": "full"}, {"variant": "no_cl"})
    msg = str(e.value)
    assert "baseline has no run for (beauty, 3)" in msg
    assert "treatment has no run for (office, 2)" in msg
    assert e.value.missing_baseline == [("beauty", 3)]
    assert e.value.missing_treatment == [("office", 2)]


def test_duplicate_runs_and_empty_selection_are_errors(loaded):
    with pytest.raises(UnmatchedSeedsError, match=r"several runs.*\(beauty, 1\)"):
        pair_runs(loaded, "test/hr@20", {"backbone": "sasrec", "variant": "full"},
                  {"backbone": "sasrec", "variant": "no_cl"})  # 5 full settings per seed
    with pytest.raises(UnmatchedSeedsError, match="no runs match the baseline"):
        pair_runs(loaded, "test/hr@20", {"variant": "full"}, {"variant": "nope"})


def test_missing_metric_value_is_not_dropped_silently():
    df = _runs([("beauty", 1), ("beauty", 2)], [("beauty", 1), ("beauty", 2)])
    df.loc[(df.variant == "no_cl") & (df.seed == 2), "m"] = float("nan")
    with pytest.raises(UnmatchedSeedsError, match=r"no m value for \(beauty, 2\)"):
        pair_runs(df, "m", {"variant": "full"}, {"variant": "no_cl"})
