"""Fixtures for the semantic pipeline: local Ray, a fake and a real OpenAI-compatible server."""
from __future__ import annotations

import asyncio
import collections
import importlib.util
import os
import socket
import threading

import pytest

from sracl_ray.semantic.backends import PROBE_PROMPT

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def ray_local():
    """The root conftest's session Ray, for module-scoped fixtures (local_ray is per test)."""
    from tests.conftest import start_local_ray

    start_local_ray()
    yield


class LoopbackChat:
    """An aiohttp /v1/chat/completions on 127.0.0.1 (a free port) in its own thread; subclasses
    give `answer(body, prompt)`.  Requests are counted per prompt (the last message) on arrival;
    the stage's endpoint probe (backends.PROBE_PROMPT) is counted apart, in `probes`."""

    def __init__(self):
        self.calls: collections.Counter[str] = collections.Counter()
        self.probes = 0
        self.loop = asyncio.new_event_loop()
        self.port = 0
        ready = threading.Event()
        self.thread = threading.Thread(target=self._serve, args=(ready,), daemon=True)
        self.thread.start()
        assert ready.wait(10), f"{type(self).__name__} did not start"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def answer(self, request, body: dict, prompt: str):  # pragma: no cover - abstract
        raise NotImplementedError

    def _serve(self, ready: threading.Event) -> None:
        from aiohttp import web

        async def chat(request: web.Request) -> web.Response:
            body = await request.json()
            prompt = body["messages"][-1]["content"]
            if prompt == PROBE_PROMPT:
                self.probes += 1
            else:
                self.calls[prompt] += 1
            return await self.answer(request, body, prompt)

        async def start() -> None:
            app = web.Application()
            app.router.add_post("/v1/chat/completions", chat)
            runner = web.AppRunner(app)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            self.port = site._server.sockets[0].getsockname()[1]

        self.loop.run_until_complete(start())
        ready.set()
        self.loop.run_forever()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


class FakeOpenAI(LoopbackChat):
    """An OpenAI-compatible /v1/chat/completions on 127.0.0.1 that counts calls per prompt.

    A prompt containing FAIL500 answers HTTP 500, SLOW sleeps past any sane timeout, EMPTY answers
    an empty text, BADREQ answers 400; `healthy = True` makes every prompt succeed.
    """

    def __init__(self, delay: float = 0.0):
        self.auth: list[str] = []
        self.delay = delay
        self.healthy = False
        super().__init__()

    async def answer(self, request, body: dict, prompt: str):
        from aiohttp import web

        self.auth.append(request.headers.get("Authorization", ""))
        if self.delay:
            await asyncio.sleep(self.delay)
        if not self.healthy:
            if "FAIL500" in prompt:
                return web.Response(status=500, text="internal error")
            if "BADREQ" in prompt:
                return web.Response(status=400, text="bad request")
            if "SLOW" in prompt:
                await asyncio.sleep(30)
            if "EMPTY" in prompt:
                return web.json_response(self._completion(body, ""))
        return web.json_response(self._completion(body, "Likes " + prompt.splitlines()[-1][:60]))

    @staticmethod
    def _completion(body: dict, text: str) -> dict:
        return {"id": "x", "object": "chat.completion", "model": body.get("model", "fake"),
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                             "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 10, "completion_tokens": len(text.split()), "total_tokens": 0}}


@pytest.fixture
def fake_openai():
    server = FakeOpenAI()
    yield server
    server.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def llama_server():
    """The real llama.cpp server with the packaged SmolLM2-135M on a free loopback port."""
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("llama_cpp is not importable: pip install 'llama-cpp-python[server]==0.3.36'")
    from sracl_ray.semantic.server import find_smollm2_gguf, start_server

    try:
        gguf = find_smollm2_gguf()
    except FileNotFoundError as e:
        pytest.skip(str(e))
    server = start_server("llama.cpp", gguf, port=free_port(), n_ctx=2048, timeout_s=120)
    yield server
    server.stop()
