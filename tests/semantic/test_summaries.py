"""Summaries through Ray Data against a fake OpenAI-compatible server: resume, failures, secrets."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

from sracl_ray.semantic.settings import SummaryConfig
from sracl_ray.semantic.store import SummaryStore, normalise_answers
from sracl_ray.semantic.summaries import SummariesIncomplete, collect_texts, run_summaries, with_keys


def records(prompts: list[str]) -> pd.DataFrame:
    df = pd.DataFrame({"kind": "unit", "id": range(len(prompts)), "system": "Summarise.", "prompt": prompts,
                       "raw": prompts})
    return df


def config(server, **kw) -> SummaryConfig:
    base = dict(backend="openai", base_url=server.base_url, model="fake", batch_size=4, concurrency=4,
                timeout_s=2.0, retries=1, backoff_s=0.05)
    return SummaryConfig(**{**base, **kw})


def test_store_never_keeps_text_on_failures(tmp_path):
    store = SummaryStore(tmp_path)
    store.write_shard(pd.DataFrame({"key": ["a", "b", "c"], "text": ["x", "   ", "y"], "error": ["", "", "boom"]}))
    df = store.read().set_index("key")
    assert df.loc["b", "error"] == "empty answer" and df.loc["c", "text"] == ""
    store.write_shard(pd.DataFrame({"key": ["c"], "text": ["fine"], "error": [""]}))
    store.write_shard(pd.DataFrame({"key": ["c"], "text": [""], "error": ["later failure"]}))
    assert store.compact().set_index("key").loc["c", "text"] == "fine"  # a success beats any failure
    assert not list((tmp_path / "shards").glob("*.parquet"))
    assert normalise_answers(pd.DataFrame({"key": ["k"]})).loc[0, "error"] == "empty answer"


def test_resume_asks_only_for_the_rest(ray_local, fake_openai, tmp_path):
    recs = with_keys(records([f"user {i} likes item {i}" for i in range(20)]), config(fake_openai))
    first = run_summaries(recs, config(fake_openai), tmp_path, progress=False, limit=8)  # "stopped" after 8
    assert first.asked == 8 and first.done == 8 and not first.complete
    with pytest.raises(SummariesIncomplete, match="12 of 20 summaries are not usable: 12 missing"):
        collect_texts(recs, tmp_path)
    second = run_summaries(recs, config(fake_openai), tmp_path, progress=False)
    assert second.asked == 12 and second.complete
    assert sum(fake_openai.calls.values()) == 20 and set(fake_openai.calls.values()) == {1}
    third = run_summaries(recs, config(fake_openai), tmp_path, progress=False)
    assert third.asked == 0 and sum(fake_openai.calls.values()) == 20
    texts = collect_texts(recs, tmp_path)
    assert texts[3] == "Likes user 3 likes item 3"
    # a different model or sampling setting is a different key: nothing is reused by mistake
    assert not set(with_keys(recs, config(fake_openai, temperature=0.7))["key"]) & set(recs["key"])


def test_failures_are_flagged_then_retried(ray_local, fake_openai, tmp_path):
    prompts = [f"ok {i}" for i in range(6)] + ["FAIL500 a", "SLOW b", "EMPTY c", "BADREQ d"]
    cfg = config(fake_openai, timeout_s=1.0, retries=1)
    recs = with_keys(records(prompts), cfg)
    rep = run_summaries(recs, cfg, tmp_path, progress=False)
    assert (rep.done, rep.failed) == (6, 4)
    stored = SummaryStore(tmp_path).read().set_index("key")
    err = {p: stored.loc[k, "error"] for p, k in zip(prompts, recs["key"])}
    assert err["FAIL500 a"].startswith("HTTP 500") and "2 attempts" in err["FAIL500 a"]  # retried once
    assert err["SLOW b"].startswith("timeout")
    assert err["EMPTY c"] == "empty answer"
    assert err["BADREQ d"].startswith("HTTP 400") and "1 attempts" in err["BADREQ d"]  # not retried
    assert all(stored.loc[k, "text"] == "" for k in recs["key"][6:])
    with pytest.raises(SummariesIncomplete, match=r"4 failed"):
        collect_texts(recs, tmp_path)
    fake_openai.healthy = True
    again = run_summaries(recs, cfg, tmp_path, progress=False)
    assert again.asked == 4 and again.complete
    assert all(fake_openai.calls[p] == 1 for p in prompts[:6])
    assert len(collect_texts(recs, tmp_path)) == 10


def test_api_key_sent_but_never_written(ray_local, fake_openai, tmp_path, caplog, monkeypatch):
    import ray

    secret = "sk-test-DO-NOT-LEAK-1234"
    monkeypatch.setenv("SRACL_TEST_KEY", secret)  # exported after Ray started: must still be used
    cfg = config(fake_openai, api_key_env="SRACL_TEST_KEY", retries=0)
    recs = with_keys(records(["FAIL500 x", "fine y"]), cfg)
    rep = run_summaries(recs, cfg, tmp_path, progress=False)
    assert (rep.done, rep.failed) == (1, 1)
    assert set(fake_openai.auth) == {f"Bearer {secret}"}
    assert secret not in caplog.text
    session = Path(ray._private.worker._global_node.get_session_dir_path())
    for root in (Path(tmp_path), session / "logs"):
        for path in root.rglob("*"):
            if path.is_file() and path.stat().st_size < 50_000_000:
                assert secret.encode() not in path.read_bytes(), path


@pytest.mark.slow
def test_killed_run_loses_at_most_in_flight_batches(fake_openai, tmp_path):
    """SIGKILL a summarize run half-way: the rerun asks only for what no shard holds."""
    fake_openai.delay = 0.05
    script = textwrap.dedent(f"""
        import os, pandas as pd
        os.environ["RAY_AUTH_MODE"] = "disabled"
        from sracl_ray.semantic.settings import SummaryConfig
        from sracl_ray.semantic.summaries import run_summaries, with_keys
        cfg = SummaryConfig(backend="openai", base_url="{fake_openai.base_url}", model="fake", batch_size=4,
                            concurrency=2, timeout_s=5, retries=0)
        prompts = [f"prompt {{i}}" for i in range(120)]
        recs = with_keys(pd.DataFrame({{"kind": "unit", "id": range(120), "system": "s", "prompt": prompts,
                                        "raw": prompts}}), cfg)
        run_summaries(recs, cfg, r"{tmp_path}", progress=False)
    """)
    # Own process group, so the kill takes the driver and the Ray processes it started together.
    proc = subprocess.Popen([sys.executable, "-c", script], env={**os.environ, "SRACL_RAY_NUM_CPUS": "2"},
                            start_new_session=True)
    shards = tmp_path / "shards"
    deadline = time.time() + 120
    while time.time() < deadline and len(list(shards.glob("part-*.parquet"))) < 5:
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    kept = len(SummaryStore(tmp_path).done_keys())
    asked_before = sum(fake_openai.calls.values())
    assert 20 <= kept < 120
    cfg = SummaryConfig(backend="openai", base_url=fake_openai.base_url, model="fake", batch_size=4)
    prompts = [f"prompt {i}" for i in range(120)]
    recs = with_keys(pd.DataFrame({"kind": "unit", "id": range(120), "system": "s", "prompt": prompts,
                                   "raw": prompts}), cfg)
    import ray

    from sracl_ray.raytools import ensure_ray
    ensure_ray(2)
    try:
        rep = run_summaries(recs, cfg, tmp_path, progress=False)
    finally:
        ray.shutdown()
    assert rep.complete and rep.asked == 120 - kept
    lost = asked_before - kept  # answered by the server but killed before its shard was written
    assert lost <= 2 * 4 * 2, lost  # in-flight batches only (2 actors' worth of 4-row batches, margin)
