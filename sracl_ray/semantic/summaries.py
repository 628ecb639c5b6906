"""Summarise every prompt once, resumably: prompts -> keyed answers in the SummaryStore.

`run_summaries` asks the configured backend only for keys without a stored success (so a rerun
after a kill or after failures redoes just those), writes each finished batch as a shard, shows
rows done/total and tokens/s, and returns a report.  After `summary.max_consecutive_failures` failed prompts in a row it stops (LLMUnavailable, exit 3)
with the last error and what is kept, rather than counting failures for hours.  `collect_texts` is the embed stage's gate:
it returns one text per record or raises SummariesIncomplete counting what is missing or failed.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from sracl_ray.errors import Incomplete
from sracl_ray.semantic.backends import BACKENDS, LLMUnavailable, model_id, sampling_params
from sracl_ray.semantic.settings import SummaryConfig
from sracl_ray.semantic.store import SummaryStore, summary_key

log = logging.getLogger(__name__)


class SummariesIncomplete(Incomplete):
    """Some records have no usable summary yet (missing or failed); embedding them would fake one."""


@dataclass(frozen=True)
class SummaryReport:
    total: int  # distinct prompts
    done: int  # with a stored success
    failed: int  # with a stored failure only
    asked: int  # sent to the backend in this run
    completion_tokens: int
    seconds: float

    @property
    def complete(self) -> bool:
        return self.done == self.total


def with_keys(records: pd.DataFrame, cfg: SummaryConfig) -> pd.DataFrame:
    """Add each record's summary key (raw texts are keyed by their own text)."""
    sampling = {} if cfg.backend == "raw" else sampling_params(cfg)
    model = model_id(cfg)
    if cfg.backend == "raw":
        keys = [summary_key(model, sampling, "", r) for r in records["raw"]]
    else:
        keys = [summary_key(model, sampling, s, p) for s, p in zip(records["system"], records["prompt"])]
    return records.assign(key=keys)


def _progress(total: int, done: int, enabled: bool):
    """rows/s and the ETA count only this run's answers (`initial`), not the ones already stored."""
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=done, desc="summaries", unit="row", disable=not enabled, dynamic_ncols=True)


def run_summaries(records: pd.DataFrame, cfg: SummaryConfig, store_dir: str | Path,
                  progress: bool = True, limit: int | None = None) -> SummaryReport:
    """Ask the backend for every keyed record without a stored success; `limit` caps this run."""
    store = SummaryStore(store_dir)
    stored = store.compact()
    unique = records.drop_duplicates("key")
    done = set(stored.loc[stored["error"] == "", "key"])
    todo = unique[~unique["key"].isin(done)]
    already = len(unique) - len(todo)
    if limit is not None:
        todo = todo.iloc[:limit]
    log.info("summaries: %d distinct prompts, %d stored, %d to ask (%s)", len(unique), len(done),
             len(todo), cfg.backend)
    tokens, start, streak = 0, time.time(), 0
    if len(todo):
        bar = _progress(len(unique), already, progress)
        for answers in BACKENDS[cfg.backend](todo, cfg):
            store.write_shard(answers)
            streak = failure_streak(answers, streak)
            if cfg.max_consecutive_failures and streak >= cfg.max_consecutive_failures:
                bar.close()
                raise LLMUnavailable(stop_message(cfg, store, answers, streak))
            tokens += int(answers["completion_tokens"].sum()) if "completion_tokens" in answers else 0
            ok = int((answers["error"].fillna("") == "").sum()) if "error" in answers else len(answers)
            bar.update(ok)
            bar.set_postfix(tok_s=f"{tokens / max(time.time() - start, 1e-9):.1f}",
                            failed=len(answers) - ok, refresh=False)
        bar.close()
    final = store.compact()
    final = final[final["key"].isin(set(unique["key"]))]
    n_ok = int((final["error"] == "").sum())
    report = SummaryReport(total=len(unique), done=n_ok, failed=len(final) - n_ok, asked=len(todo),
                           completion_tokens=tokens, seconds=time.time() - start)
    if report.failed:
        log.warning("summaries: %d prompts failed (stored with their error; rerun to retry)", report.failed)
    return report


def failure_streak(answers: pd.DataFrame, streak: int) -> int:
    """Failed prompts in a row at the end of this batch, continuing the previous batches' streak."""
    errors = answers["error"].fillna("").astype(str).to_numpy() if "error" in answers else []
    for e in errors:
        streak = streak + 1 if e else 0
    return streak


def stop_message(cfg: SummaryConfig, store: SummaryStore, answers: pd.DataFrame, streak: int) -> str:
    failed = answers["error"].fillna("").astype(str)
    last = failed[failed != ""].iloc[-1] if (failed != "").any() else "?"
    where = f" from {cfg.base_url}" if cfg.backend == "openai" else ""
    kept = int((store.read()["error"] == "").sum())
    return (f"summaries: stopped after {streak} failed prompts in a row{where} (summary.max_consecutive_failures="
            f"{cfg.max_consecutive_failures}); last error: {last}. {kept} finished summaries are kept in "
            f"{store.root}; rerun once the endpoint answers")


def collect_texts(records: pd.DataFrame, store_dir: str | Path) -> list[str]:
    """One summary text per record, in record order; raises SummariesIncomplete otherwise."""
    stored = SummaryStore(store_dir).read().set_index("key")
    joined = stored.reindex(records["key"])
    missing = int(joined["text"].isna().sum())
    failed_mask = joined["error"].fillna("") != ""
    failed = int(failed_mask.sum())
    if missing or failed:
        errors = joined.loc[failed_mask, "error"].value_counts().head(3)
        common = "; ".join(f"{n} x {e}" for e, n in errors.items())
        raise SummariesIncomplete(
            f"{missing + failed} of {len(records)} summaries are not usable: {missing} missing, {failed} failed"
            + (f" ({common})" if common else "") + ". Run `sracl-ray summarize` again to ask for them; "
            "nothing is embedded until every summary exists.")
    return joined["text"].astype(str).tolist()
