"""The LLM stage stops at once, with one line naming the URL and the status, when the endpoint
cannot answer: nothing listening, a refused key, a server that fails every request."""
from __future__ import annotations

import pandas as pd
import pytest

from conftest import LoopbackChat, free_port
from sracl_ray.semantic.backends import LLMUnavailable, probe_openai
from sracl_ray.secrets import Secret
from sracl_ray.semantic.settings import SummaryConfig
from sracl_ray.semantic.store import SummaryStore
from sracl_ray.semantic.summaries import run_summaries, with_keys

KEY = "sk-failfast-SECRET-0123456789abcdef"


class Refusing(LoopbackChat):
    """Answers every request with `status` and a body that echoes the Authorization header."""

    def __init__(self, status: int):
        self.status = status
        super().__init__()

    async def answer(self, request, body, prompt):
        from aiohttp import web

        return web.Response(status=self.status, text=f"denied for {request.headers.get('Authorization', '')}")


def cfg(url: str, **kw) -> SummaryConfig:
    return SummaryConfig(**{**dict(backend="openai", base_url=url, model="m", batch_size=4, concurrency=4,
                                   timeout_s=2.0, retries=1, backoff_s=0.01), **kw})


def recs(prompts, c) -> pd.DataFrame:
    return with_keys(pd.DataFrame({"kind": "unit", "id": range(len(prompts)), "system": "s", "prompt": prompts,
                                   "raw": prompts}), c)


def test_closed_port_stops_before_any_batch(tmp_path):
    c = cfg(f"http://127.0.0.1:{free_port()}/v1")
    with pytest.raises(LLMUnavailable, match=r"summary.base_url http://127.0.0.1:\d+/v1/chat/completions does "
                                             r"not answer: .*(refused|Connect)"):
        run_summaries(recs(["a", "b"], c), c, tmp_path, progress=False)
    assert SummaryStore(tmp_path).read().empty  # nothing asked, nothing stored


@pytest.mark.parametrize("status, words", [(401, "refused the API key"), (403, "refused the API key"),
                                           (404, "has no such route")])
def test_refused_key_or_route_is_one_line_without_the_key(monkeypatch, status, words):
    server = Refusing(status)
    try:
        monkeypatch.setenv("SRACL_FAILFAST_KEY", KEY)
        c = cfg(server.base_url, api_key_env="SRACL_FAILFAST_KEY")
        with pytest.raises(LLMUnavailable) as e:
            probe_openai(c, Secret(KEY))
        msg = str(e.value)
        assert f"{server.base_url}/chat/completions {words}: HTTP {status}" in msg and "\n" not in msg
        assert KEY not in msg and KEY[:12] not in msg
        if status != 404:
            assert "the key in $SRACL_FAILFAST_KEY was sent" in msg
    finally:
        server.close()


def test_server_error_outlasting_retries_stops(tmp_path):
    server = Refusing(500)
    try:
        c = cfg(server.base_url, retries=2)
        with pytest.raises(LLMUnavailable, match=r"fails: HTTP 500 .*\(3 attempts\)"):
            run_summaries(recs(["a"], c), c, tmp_path, progress=False)
        assert server.probes == 3 and not server.calls
    finally:
        server.close()


def test_probe_ignores_a_400_the_real_prompts_decide():
    server = Refusing(400)
    try:
        probe_openai(cfg(server.base_url), Secret(""))  # no exception: a 400 may be the probe's own fault
    finally:
        server.close()


def test_endpoint_failing_mid_run_stops_after_the_streak(ray_local, fake_openai, tmp_path):
    prompts = [f"ok {i}" for i in range(4)] + [f"FAIL500 {i}" for i in range(40)]
    c = cfg(fake_openai.base_url, retries=0, max_consecutive_failures=6, actors=1, concurrency=1)
    with pytest.raises(LLMUnavailable, match=r"stopped after \d+ failed prompts in a row from http://127.0.0.1.*"
                                             r"max_consecutive_failures=6\); last error: HTTP 500.*"
                                             r"4 finished summaries are kept"):
        run_summaries(recs(prompts, c), c, tmp_path, progress=False)
    assert len(SummaryStore(tmp_path).done_keys()) == 4
    assert sum(n for p, n in fake_openai.calls.items() if p.startswith("FAIL500")) < 40  # it stopped early


def test_zero_never_stops(ray_local, fake_openai, tmp_path):
    prompts = [f"FAIL500 {i}" for i in range(10)] + ["ok"]
    c = cfg(fake_openai.base_url, retries=0, max_consecutive_failures=0)
    rep = run_summaries(recs(prompts, c), c, tmp_path, progress=False)
    assert (rep.done, rep.failed) == (1, 10)


def test_cli_semantic_against_a_dead_endpoint_exits_3(capsys, tmp_path):
    from sracl_ray import cli

    url = f"http://127.0.0.1:{free_port()}/v1"
    code = cli.main(["semantic", "--set", "data.max_users=20", "--set", f"summary.base_url={url}",
                     "--no-progress", "--out", str(tmp_path / "sem")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 3
    assert err[-1].startswith("sracl-ray: incomplete: summary.base_url " + url) and "does not answer" in err[-1]
