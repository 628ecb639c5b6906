"""train.stop_rule on hand-made validation sequences: which epoch is best, when training stops."""
import math

import pytest

from sracl_ray import config as C
from sracl_ray.training import stopping


def run(values, patience, rule):
    """(best epoch, epochs run) of a fit() loop over these validation values."""
    best, best_epoch, bad, epoch = -math.inf, 0, 0, 0
    for value in values:
        if stopping.exhausted(bad, patience, rule):
            break
        epoch += 1
        if stopping.improves(value, best, rule):
            best, best_epoch, bad = stopping.score(value, rule), epoch, 0
        else:
            bad += 1
    return best_epoch, epoch


# A slow riser: it stalls for exactly `patience` epochs, then rises again.
RISER = [0.0100, 0.0200, 0.0200, 0.0199, 0.0200, 0.0250, 0.0240]
# Values equal after rounding to 4 decimals, different before.
NEAR_TIES = [0.03001, 0.03004, 0.02998, 0.03003]


def test_release_rule_is_recboles():
    # patience 3: epochs 3-5 do not beat 0.0200 strictly; release counts 3 (=) and 5 (=) as improvements
    assert run(RISER, 3, "release") == (6, 7)  # the rise at epoch 6 is seen
    assert run(RISER, 3, "strict") == (2, 5)  # stopped after 3 epochs without a strict gain
    # rounded, all four are 0.0300: release keeps moving the best to the last one, strict keeps epoch 2
    assert run(NEAR_TIES, 1, "release") == (4, 4)
    assert run(NEAR_TIES, 1, "strict") == (2, 3)


def test_release_patience_counts_as_recbole_does():
    flat = [0.5] + [0.4] * 20
    assert run(flat, 10, "release") == (1, 12)  # stops after the 11th non-improving epoch
    assert run(flat, 10, "strict") == (1, 11)  # after the 10th


def test_non_finite_values_never_improve():
    for rule in C.STOP_RULES:
        assert run([math.nan, 0.1, math.inf, 0.05], 5, rule)[0] == 2


def test_rule_is_a_typed_setting_defaulting_to_the_release():
    assert C.Config().train.stop_rule == "release" and set(C.STOP_RULES) == {"release", "strict"}
    with pytest.raises(C.ConfigError, match="train.stop_rule"):
        C.load(None, ["train.stop_rule=lenient"])
    with pytest.raises(ValueError, match="stop_rule"):
        stopping.improves(0.1, 0.0, "lenient")
