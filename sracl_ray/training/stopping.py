"""Early stopping on the validation metric: which epoch counts as an improvement, and when to stop.

Two rules (`train.stop_rule`):
  release  the authors' release (recommender_code/main.py calls RecBole 1.2.0's
           `recbole.utils.early_stopping` on utils.py `get_full_sort_score`'s values, which are
           rounded to 4 decimals): an epoch improves when its rounded value is >= the best rounded
           value so far (a tie moves the best epoch later), and training stops once more than
           `train.patience` epochs in a row did not improve (patience 10: after the 11th).
  strict   an epoch improves only when its unrounded value is > the best so far; training stops
           after `train.patience` epochs in a row without improvement.
The rule decides both the stopping epoch and the best epoch whose weights are tested.
"""
from __future__ import annotations

import math

from sracl_ray.config import STOP_RULES  # the choices, validated with the config
RELEASE_DECIMALS = 4  # utils.py get_full_sort_score: round(metric, 4)


def check_rule(rule: str) -> str:
    if rule not in STOP_RULES:
        raise ValueError(f"train.stop_rule must be one of {STOP_RULES}, got {rule!r}")
    return rule


def score(value: float, rule: str) -> float:
    """The value the rule compares: rounded to RELEASE_DECIMALS under release; a non-finite value
    never improves (it compares as -inf)."""
    check_rule(rule)
    if not math.isfinite(value):
        return -math.inf
    return round(value, RELEASE_DECIMALS) if rule == "release" else value


def improves(value: float, best: float, rule: str) -> bool:
    """Does this epoch's validation value replace the best so far (best: score() of the best epoch,
    -inf before the first)?"""
    s = score(value, rule)
    if s == -math.inf:
        return False
    return s >= best if rule == "release" else s > best


def exhausted(bad_epochs: int, patience: int, rule: str) -> bool:
    """Stop now?  bad_epochs: epochs in a row since the last improvement."""
    check_rule(rule)
    return bad_epochs > patience if rule == "release" else bad_epochs >= patience
