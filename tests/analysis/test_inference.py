"""analysis/inference.py against independent implementations (a few lines of numpy/scipy each)."""
import math

import numpy as np
import pytest
from scipy import stats as sps

from analysis.inference import hierarchical_bootstrap, holm, tost


def test_hierarchical_bootstrap_equals_an_explicit_double_loop():
    rng = np.random.default_rng(3)
    t = rng.normal(0.12, 0.05, size=(4, 30))
    b = rng.normal(0.10, 0.05, size=(4, 30))
    got = hierarchical_bootstrap(t, b, n_resamples=300, seed=7)
    draw = np.random.default_rng(7)  # the same stream: seeds, then users, per resample
    diffs = []
    for _ in range(300):
        seeds = draw.integers(0, 4, 4)
        users = draw.integers(0, 30, 30)
        tt = np.mean([np.mean([t[s, u] for u in users]) for s in seeds])
        bb = np.mean([np.mean([b[s, u] for u in users]) for s in seeds])
        diffs.append(tt - bb)
    diffs = np.array(diffs)
    assert got.ci_low == pytest.approx(np.quantile(diffs, 0.025)) and got.ci_high == pytest.approx(np.quantile(diffs, 0.975))
    assert got.mean_diff == pytest.approx(t.mean() - b.mean())
    k = min((diffs <= 0).sum(), (diffs >= 0).sum())
    assert got.pvalue == pytest.approx(min(1.0, 2 * (k + 1) / 301))


def test_seed_noise_widens_the_interval_that_users_alone_call_significant():
    """Two arms whose users agree perfectly within a run but whose runs differ a lot: resampling
    users only (conditioning on the runs) calls the gap certain; resampling seeds too does not."""
    from analysis.significance import paired_bootstrap_ci

    users = np.linspace(0.05, 0.15, 200)
    t = np.stack([users + o for o in (0.03, -0.02, 0.04)])  # run offsets: seed noise
    b = np.stack([users + o for o in (0.00, 0.01, -0.01)])
    lo_u, hi_u = paired_bootstrap_ci(t.mean(0) - b.mean(0))
    h = hierarchical_bootstrap(t, b, n_resamples=1000)
    assert lo_u > 0 and h.ci_low < 0 < h.ci_high and h.pvalue > 0.05
    assert (h.ci_high - h.ci_low) > 10 * (hi_u - lo_u)


def test_hierarchical_bootstrap_degenerate_inputs_are_nan():
    one_seed = hierarchical_bootstrap(np.ones((1, 5)), np.zeros((1, 5)))
    assert math.isnan(one_seed.pvalue) and math.isnan(one_seed.ci_low) and one_seed.mean_diff == 1.0
    assert math.isnan(hierarchical_bootstrap(np.zeros((3, 0)), np.zeros((3, 0))).mean_diff)
    assert math.isnan(hierarchical_bootstrap(np.full((2, 3), np.nan), np.zeros((2, 3))).pvalue)
    with pytest.raises(ValueError, match="same users"):
        hierarchical_bootstrap(np.zeros((2, 3)), np.zeros((2, 4)))
    unpaired = hierarchical_bootstrap(np.ones((3, 4)), np.zeros((2, 4)), paired_seeds=False, n_resamples=50)
    assert unpaired.ci_low == unpaired.ci_high == 1.0 and unpaired.pvalue == pytest.approx(2 / 51)


@pytest.mark.parametrize("margin", [0.002, 0.01, 0.05])
def test_tost_is_two_one_sided_scipy_t_tests(margin):
    rng = np.random.default_rng(1)
    t, b = rng.normal(0.1, 0.01, 6), rng.normal(0.1, 0.01, 6)
    d = t - b
    lower = sps.ttest_1samp(d + margin, 0.0, alternative="greater").pvalue
    upper = sps.ttest_1samp(d - margin, 0.0, alternative="less").pvalue
    r = tost(t, b, margin)
    assert r.p_lower == pytest.approx(lower) and r.p_upper == pytest.approx(upper)
    assert r.pvalue == pytest.approx(max(lower, upper))


def test_tost_edge_cases():
    assert math.isnan(tost([0.1], [0.1], 0.01).pvalue)
    assert tost([0.2, 0.3], [0.2, 0.3], 0.01).pvalue == 0.0  # identical: equivalent within any margin
    assert tost([0.3, 0.4], [0.2, 0.3], 0.01).pvalue == 1.0  # a constant gap beyond the margin
    for bad in (0.0, -1.0, math.nan, math.inf):
        with pytest.raises(ValueError, match="margin"):
            tost([0.1, 0.2], [0.1, 0.2], bad)


def test_holm_matches_the_step_down_rejection_rule():
    """Holm rejects H_(i) iff p_(j) <= alpha / (m - j + 1) for every j <= i; the adjusted p-values
    must reproduce that set at every alpha."""
    rng = np.random.default_rng(5)
    for _ in range(50):
        p = rng.uniform(0, 0.2, rng.integers(1, 8))
        adj = np.array(holm(p))
        order = np.argsort(p, kind="stable")
        m = len(p)
        for alpha in (0.01, 0.05, 0.1):
            reject = np.zeros(m, bool)
            for i, idx in enumerate(order):
                if p[idx] > alpha / (m - i):
                    break
                reject[idx] = True
            np.testing.assert_array_equal(adj <= alpha, reject)
        assert (adj >= p).all() and (adj <= 1).all()


def test_holm_keeps_nan_out_of_the_family():
    adj = holm([0.01, math.nan, 0.04])
    assert math.isnan(adj[1]) and adj[0] == pytest.approx(0.02) and adj[2] == pytest.approx(0.04)
    assert holm([]) == []
