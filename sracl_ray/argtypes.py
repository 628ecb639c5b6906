"""argparse value types for numeric options: finite, in range, or a one-line usage error."""
from __future__ import annotations

import argparse
import math


def number(kind: type = int, low: float | None = None, high: float | None = None, *, low_open: bool = False):
    """A type= callable: a finite `kind` (int or float) in [low, high] ((low, high] with low_open)."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'a whole number' if kind is int else 'a number'}, "
                                             f"got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
        too_low = low is not None and (value <= low if low_open else value < low)
        if too_low or (high is not None and value > high):
            lo = "" if low is None else f"{'>' if low_open else '>='} {low:g}"
            hi = "" if high is None else f"<= {high:g}"
            raise argparse.ArgumentTypeError(f"must be {' and '.join(filter(None, (lo, hi)))}, got {text}")
        return value
    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


positive_int = number(int, 1)
positive_float = number(float, 0, low_open=True)
