"""MiniLM sentences/s on CPU: our encoder and our Ray Data stage vs plain sentence-transformers.

    python benchmarks/embed_speed.py [--n 600] [--threads 2]

Texts: Beauty item prompts' attribute text (about 60 tokens each), from the packaged sample.
Reference, measured in the same run: `SentenceTransformer(<packaged MiniLM>).encode` in-process.
Target: >= 50 sentences/s on a 2-core CPU.
"""
from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")


def texts(n: int) -> list[str]:
    from sracl_ray.config import DataConfig
    from sracl_ray.data.readers import load_dataset
    from sracl_ray.data.split import leave_one_out
    from sracl_ray.semantic.prompts import build_records
    from sracl_ray.semantic.units import build_units

    data = load_dataset(DataConfig())
    split = leave_one_out(data, 20)
    recs = build_records(split, data.items, build_units(split, "user"), "beauty")
    raw = recs[recs.kind == "item"].raw.tolist()
    return (raw * (n // len(raw) + 1))[:n]


def rate(fn, items: list[str]) -> float:
    t = time.perf_counter()
    fn(items)
    return len(items) / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=600)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=64)
    args = ap.parse_args()
    import torch
    from sentence_transformers import SentenceTransformer

    from sracl_ray.semantic.embeddings import TextEncoder, embed_texts
    from sracl_ray.semantic.raytools import ensure_ray
    from sracl_ray.semantic.settings import EmbedConfig

    torch.set_num_threads(args.threads)
    items = texts(args.n)
    tok = TextEncoder().st.tokenizer
    mean_tokens = sum(len(tok(t)["input_ids"]) for t in items[:200]) / min(200, len(items))
    print(f"{len(items)} texts, mean {mean_tokens:.0f} tokens, {args.threads} threads")
    ref_model = SentenceTransformer(TextEncoder().name, device="cpu")
    ref_model.encode(items[:32])  # warm-up
    ref = rate(lambda x: ref_model.encode(x, batch_size=args.batch_size), items)
    enc = TextEncoder()
    enc.encode(items[:32])
    ours = rate(lambda x: enc.encode(x, args.batch_size), items)
    ensure_ray(num_cpus=args.threads)
    t = time.perf_counter()
    embed_texts(items, EmbedConfig(batch_size=args.batch_size), progress=False)
    ray_rate = len(items) / (time.perf_counter() - t)
    print(f"reference sentence-transformers encode : {ref:6.1f} sentences/s")
    print(f"TextEncoder (mean pooling), in-process : {ours:6.1f} sentences/s  ({ours / ref:.2f}x reference)")
    print(f"Ray Data stage, 1 actor, incl. start-up: {ray_rate:6.1f} sentences/s  ({ray_rate / ref:.2f}x reference)")
    print(f"target >= 50 sentences/s: {'met' if ours >= 50 else 'NOT met'} (in-process)")


if __name__ == "__main__":
    main()
