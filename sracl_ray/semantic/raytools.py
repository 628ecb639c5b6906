"""Small Ray helpers shared by the semantic stages (no work at import time)."""
from __future__ import annotations

import pandas as pd



def blocks_of(df: pd.DataFrame, rows: int) -> list[pd.DataFrame]:
    """Split a frame into blocks of `rows` rows: one Ray Data task (and one output shard) each."""
    return [df.iloc[s:s + rows].reset_index(drop=True) for s in range(0, len(df), rows)]
