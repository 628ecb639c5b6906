"""Summaries through our openai backend (Ray Data) vs direct concurrent requests, same server.

    python benchmarks/openai_throughput.py [--n 32] [--max-tokens 64] [--concurrency 4]
    python benchmarks/openai_throughput.py --smoke     # seconds: a fake server, 4 prompts, 1-CPU Ray

Starts the real llama.cpp server with the packaged SmolLM2-135M on a free loopback port, then
times completion tokens/s four times, alternating: direct(A), ours(A), ours(B), direct(B), where
A and B are two disjoint sets of Beauty user-unit prompts and "direct" is plain aiohttp with the
same concurrency.  Ray start-up (once per process) is outside the timings; the actor pool start of
each of our runs is inside.  Target: ours / direct >= 0.9.  --smoke replaces llama.cpp by a tiny
OpenAI-compatible loopback server in this process (canned answers: its tokens/s mean nothing)
and runs direct(A), ours(A) only.  Writes a JSON (benchmarks/_record.py).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import tempfile
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

os.environ.setdefault("RAY_AUTH_MODE", "disabled")

from _record import Record, add_args, ratio  # noqa: E402 - after the environment it reads


async def direct(base_url: str, model: str, recs, max_tokens: int, concurrency: int) -> int:
    """Plain concurrent requests; returns completion tokens."""
    import aiohttp

    sem = asyncio.Semaphore(concurrency)

    async def one(session, system, prompt):
        body = {"model": model, "messages": [{"role": "system", "content": system}, {"role": "user", "content": prompt}],
                "temperature": 0.0, "top_p": 0.001, "max_tokens": max_tokens}
        async with sem, session.post(base_url + "/chat/completions", json=body) as r:
            return (await r.json())["usage"]["completion_tokens"]

    async with aiohttp.ClientSession() as session:
        return sum(await asyncio.gather(*(one(session, s, p) for s, p in zip(recs.system, recs.prompt))))


class FakeChat(BaseHTTPRequestHandler):
    """POST /v1/chat/completions -> a canned answer of max_tokens words (smoke mode only)."""
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        if self.path.rstrip("/") != "/v1/chat/completions":
            self.send_error(404)
            return
        n = int(body.get("max_tokens") or 8)
        answer = {"id": "fake", "object": "chat.completion", "model": body.get("model", "fake"),
                  "choices": [{"index": 0, "finish_reason": "length",
                               "message": {"role": "assistant", "content": " ".join(["word"] * n)}}],
                  "usage": {"prompt_tokens": 10, "completion_tokens": n, "total_tokens": 10 + n}}
        data = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:  # quiet
        pass


@dataclass
class FakeServer:
    httpd: ThreadingHTTPServer
    base_url: str
    model: str = "fake-chat"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def start_fake_server() -> FakeServer:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), FakeChat)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return FakeServer(httpd, f"http://127.0.0.1:{httpd.server_address[1]}/v1")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=32, help="prompts per set")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--ray-cpus", type=int, default=2, help="CPUs of the local Ray")
    add_args(ap)
    args = ap.parse_args(argv)
    if args.smoke:
        args.n, args.max_tokens, args.concurrency, args.ray_cpus = 4, 8, 2, 1
    from sracl_ray.config import DataConfig
    from sracl_ray.data.readers import load_dataset
    from sracl_ray.data.split import leave_one_out
    from sracl_ray.raytools import ensure_ray
    from sracl_ray.semantic.pipeline import prompt_records
    from sracl_ray.semantic.settings import PipelineConfig, SummaryConfig
    from sracl_ray.semantic.summaries import run_summaries

    rec = Record("openai_throughput", args, argv)
    if args.smoke:
        server = start_fake_server()
        rec.log("server", "fake OpenAI-compatible loopback server (canned answers)")
    else:
        from sracl_ray.semantic.server import find_smollm2_gguf, start_server

        server = start_server("llama.cpp", find_smollm2_gguf(), port=free_port(), n_ctx=2048, timeout_s=120)
        rec.log("server", f"llama.cpp, {server.model}")
    try:
        cfg = SummaryConfig(base_url=server.base_url, model=server.model, max_tokens=args.max_tokens,
                            concurrency=args.concurrency, batch_size=args.concurrency * 2)
        data = load_dataset(DataConfig(max_users=4 * args.n))
        recs = prompt_records(data, leave_one_out(data, 20), "user", PipelineConfig(summary=cfg))
        sets = {"A": recs.iloc[: args.n], "B": recs.iloc[args.n: 2 * args.n]}
        ensure_ray(num_cpus=args.ray_cpus)
        asyncio.run(direct(server.base_url, server.model, recs.iloc[-2:], 8, 1))  # warm the server
        totals = {"direct": [0, 0.0], "ours": [0, 0.0]}

        def run(kind: str, name: str) -> None:
            t = time.perf_counter()
            if kind == "direct":
                tokens = asyncio.run(direct(server.base_url, server.model, sets[name], args.max_tokens,
                                            args.concurrency))
            else:
                with tempfile.TemporaryDirectory() as store:
                    rep = run_summaries(sets[name], cfg, store, progress=False)
                    assert rep.complete, rep
                    tokens = rep.completion_tokens
            dt = time.perf_counter() - t
            totals[kind][0] += tokens
            totals[kind][1] += dt
            rec.log(f"{kind}({name})", {"tokens": tokens, "seconds": round(dt, 2), "tok_per_s": round(tokens / dt, 1)})

        order = (("direct", "A"), ("ours", "A")) if args.smoke else \
            (("direct", "A"), ("ours", "A"), ("ours", "B"), ("direct", "B"))
        for kind, name in order:
            run(kind, name)
        d = totals["direct"][0] / totals["direct"][1]
        o = totals["ours"][0] / totals["ours"][1]
        rec.log("direct_tok_per_s", round(d, 1))
        rec.log("ours_tok_per_s", round(o, 1))
        rec.log("ratio_ours_vs_direct", ratio(o, d))
        rec.write()
        print(f"direct: {d:.1f} tok/s, ours: {o:.1f} tok/s, ratio ours/direct = {o / d:.2f} "
              f"(target >= 0.9: {'met' if o / d >= 0.9 else 'NOT met'})")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
