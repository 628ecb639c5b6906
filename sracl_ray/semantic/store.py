"""The summary store: every LLM answer, keyed by sha256(model + sampling params + prompt).

Answers are appended as small Parquet shards (one per finished batch, each written atomically), so
a killed run loses at most its in-flight batches.  A failed, timed-out or empty answer is stored
too, with its error, and counts as not done: the next run asks again.  `compact()` folds the
shards into one `summaries.parquet` (latest answer per key, a success beating any failure).
Everything written or read passes the secret scrubber (sracl_ray/secrets.py) once more, so an
API key that a server echoed never reaches disk or the screen.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import pandas as pd

from sracl_ray.manifest import atomic_write
from sracl_ray.secrets import scrubber

COLUMNS = {"key": "string", "text": "string", "error": "string", "completion_tokens": "int64",
           "prompt_tokens": "int64", "finish_reason": "string", "model": "string", "created": "float64"}


def summary_key(model: str, sampling: dict, system: str, prompt: str) -> str:
    """sha256 of everything that determines an answer (never the endpoint or the API key)."""
    blob = json.dumps({"model": model, "sampling": sampling, "system": system, "prompt": prompt},
                      sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


def normalise_answers(df: pd.DataFrame) -> pd.DataFrame:
    """Give an answers frame exactly COLUMNS; a blank text without an error becomes an error."""
    df = df.copy()
    for col, dtype in COLUMNS.items():
        if col not in df.columns:
            df[col] = 0 if dtype in ("int64", "float64") else ""
    df = df[list(COLUMNS)]
    df["text"] = df["text"].fillna("").astype(str)
    df["error"] = df["error"].fillna("").astype(str)
    blank = (df["text"].str.strip() == "") & (df["error"] == "")
    df.loc[blank, "error"] = "empty answer"
    df.loc[df["error"] != "", "text"] = ""  # a failed row never carries text that could be embedded
    for col in ("completion_tokens", "prompt_tokens"):
        df[col] = pd.to_numeric(df[col], errors="coerce").fillna(0).astype("int64")
    return df.astype(COLUMNS)


def _scrub_column(values: pd.Series, patterns: bool = True) -> pd.Series:
    """Scrub each distinct non-empty value once (sracl_ray/secrets.py)."""
    scrub = scrubber(patterns=patterns)
    clean = {v: scrub(v) for v in values.dropna().unique() if v}
    return values.map(lambda v: clean.get(v, v))


def scrub_answers(df: pd.DataFrame) -> pd.DataFrame:
    """The last line of defence: no API key or credential in what is stored or shown.

    Errors, models and finish reasons lose every credential-looking value; answer texts lose only
    the known secrets themselves (a summary is not rewritten for looking like `token: x`)."""
    df = df.copy()
    for col in ("error", "model", "finish_reason"):
        df[col] = _scrub_column(df[col])
    df["text"] = _scrub_column(df["text"], patterns=False)
    return df.astype({c: COLUMNS[c] for c in ("error", "model", "finish_reason", "text")})


class SummaryStore:
    """A directory of answer shards plus a compacted `summaries.parquet`."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.shards = self.root / "shards"
        self.compacted = self.root / "summaries.parquet"

    def write_shard(self, answers: pd.DataFrame) -> Path:
        """Append answers as one new shard (atomic: a shard is either absent or complete)."""
        df = scrub_answers(normalise_answers(answers))
        df["created"] = time.time()
        path = self.shards / f"part-{time.time_ns()}-{os.getpid()}.parquet"
        atomic_write(path, lambda p: df.to_parquet(p, index=False))
        return path

    def _shard_files(self) -> list[Path]:
        return sorted(self.shards.glob("part-*.parquet")) if self.shards.exists() else []

    def read(self) -> pd.DataFrame:
        """One row per key: the latest success, else the latest failure."""
        parts = [pd.read_parquet(p) for p in ([self.compacted] if self.compacted.exists() else [])
                 + self._shard_files()]
        if not parts:
            return normalise_answers(pd.DataFrame(columns=list(COLUMNS)))
        df = scrub_answers(pd.concat(parts, ignore_index=True).astype(COLUMNS))  # also stores from older versions
        df["_ok"] = df["error"] == ""
        df = df.sort_values(["_ok", "created"], kind="stable").drop_duplicates("key", keep="last")
        return df.drop(columns="_ok").sort_values("key").reset_index(drop=True)

    def compact(self) -> pd.DataFrame:
        """Fold every shard into summaries.parquet, then delete those shards."""
        shards = self._shard_files()
        df = self.read()
        if shards:
            atomic_write(self.compacted, lambda p: df.to_parquet(p, index=False))
            for s in shards:  # a crash here leaves duplicates, which read() resolves
                s.unlink(missing_ok=True)
        return df

    def done_keys(self) -> set[str]:
        df = self.read()
        return set(df.loc[df["error"] == "", "key"])
