"""Summaries through our openai backend (Ray Data) vs direct concurrent requests, same llama.cpp server.

    python benchmarks/openai_throughput.py [--n 32] [--max-tokens 64] [--concurrency 4]

Starts the real llama.cpp server with the packaged SmolLM2-135M on a free loopback port, then
times completion tokens/s four times, alternating: direct(A), ours(A), ours(B), direct(B), where
A and B are two disjoint sets of Beauty user-unit prompts and "direct" is plain aiohttp with the
same concurrency.  Ray start-up (once per process) is outside the timings; the actor pool start of
each of our runs is inside.  Target: ours / direct >= 0.9.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import socket
import tempfile
import time

os.environ.setdefault("RAY_AUTH_MODE", "disabled")


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=32, help="prompts per set")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--concurrency", type=int, default=4)
    args = ap.parse_args()
    from sracl_ray.config import DataConfig
    from sracl_ray.data.readers import load_dataset
    from sracl_ray.data.split import leave_one_out
    from sracl_ray.semantic.pipeline import prompt_records
    from sracl_ray.semantic.raytools import ensure_ray
    from sracl_ray.semantic.server import find_smollm2_gguf, start_server
    from sracl_ray.semantic.settings import PipelineConfig, SummaryConfig
    from sracl_ray.semantic.summaries import run_summaries

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = start_server("llama.cpp", find_smollm2_gguf(), port=port, n_ctx=2048, timeout_s=120)
    try:
        cfg = SummaryConfig(base_url=server.base_url, model=server.model, max_tokens=args.max_tokens,
                            concurrency=args.concurrency, batch_size=args.concurrency * 2)
        data = load_dataset(DataConfig(max_users=4 * args.n))
        recs = prompt_records(data, leave_one_out(data, 20), "user", PipelineConfig(summary=cfg))
        sets = {"A": recs.iloc[: args.n], "B": recs.iloc[args.n: 2 * args.n]}
        ensure_ray(num_cpus=2)
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
            print(f"{kind:>6}({name}): {tokens:5d} tokens in {dt:6.1f} s = {tokens / dt:5.1f} tok/s", flush=True)

        for kind, name in (("direct", "A"), ("ours", "A"), ("ours", "B"), ("direct", "B")):
            run(kind, name)
        d = totals["direct"][0] / totals["direct"][1]
        o = totals["ours"][0] / totals["ours"][1]
        print(f"direct: {d:.1f} tok/s, ours: {o:.1f} tok/s, ratio ours/direct = {o / d:.2f} "
              f"(target >= 0.9: {'met' if o / d >= 0.9 else 'NOT met'})")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
