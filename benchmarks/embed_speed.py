"""MiniLM sentences/s on CPU: our encoder and our Ray Data stage vs plain sentence-transformers.

    python benchmarks/embed_speed.py [--n 600] [--threads 2]
    python benchmarks/embed_speed.py --smoke        # seconds: 16 texts, 1 thread, 1-CPU Ray

Texts: Beauty item prompts' attribute text (about 60 tokens each), from the packaged sample.
Reference, measured in the same run: `SentenceTransformer(<packaged MiniLM>).encode` in-process.
Target: >= 50 sentences/s on a 2-core CPU.  Writes a JSON (benchmarks/_record.py).
"""
from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

from _record import Record, add_args, ratio  # noqa: E402 - after the environment it reads


def texts(n: int) -> list[str]:
    """n item texts of the packaged sample (repeated when n exceeds them)."""
    from sracl_ray.config import DataConfig
    from sracl_ray.data.readers import load_dataset
    from sracl_ray.data.split import leave_one_out
    from sracl_ray.semantic.pipeline import prompt_records
    from sracl_ray.semantic.settings import PipelineConfig, SummaryConfig

    data = load_dataset(DataConfig())
    recs = prompt_records(data, leave_one_out(data, 20), "user", PipelineConfig(summary=SummaryConfig(backend="raw")))
    raw = recs[recs.kind == "item"].raw.tolist()
    return (raw * (n // len(raw) + 1))[:n]


def rate(fn, items: list[str]) -> float:
    t = time.perf_counter()
    fn(items)
    return len(items) / (time.perf_counter() - t)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=600)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=64)
    add_args(ap)
    args = ap.parse_args(argv)
    if args.smoke:
        args.n, args.threads, args.batch_size = 16, 1, 8
    import torch
    from sentence_transformers import SentenceTransformer

    from sracl_ray.raytools import ensure_ray
    from sracl_ray.semantic.embeddings import TextEncoder, embed_texts
    from sracl_ray.semantic.settings import EmbedConfig

    torch.set_num_threads(args.threads)
    rec = Record("embed_speed", args, argv)
    items = texts(args.n)
    enc = TextEncoder()
    tok = enc.st.tokenizer
    rec.log("texts", len(items))
    rec.log("mean_tokens", round(sum(len(tok(t)["input_ids"]) for t in items[:200]) / min(200, len(items)), 1))
    rec.log("threads", args.threads)
    ref_model = SentenceTransformer(enc.name, device="cpu")
    ref_model.encode(items[:32])  # warm-up
    ref = rate(lambda x: ref_model.encode(x, batch_size=args.batch_size), items)
    rec.log("reference_sentences_per_s", round(ref, 1))  # each figure right after its timing (load)
    enc.encode(items[:32])
    ours = rate(lambda x: enc.encode(x, args.batch_size), items)
    rec.log("encoder_sentences_per_s", round(ours, 1))
    ensure_ray(num_cpus=args.threads)
    t = time.perf_counter()
    embed_texts(items, EmbedConfig(batch_size=args.batch_size), progress=False)
    ray_rate = len(items) / (time.perf_counter() - t)
    rec.log("ray_stage_sentences_per_s", round(ray_rate, 1))
    rec.log("encoder_vs_reference", ratio(ours, ref))
    rec.log("ray_stage_vs_reference", ratio(ray_rate, ref))
    rec.log("target_50_per_s_met_in_process", ours >= 50)
    rec.write()
    print(f"reference sentence-transformers encode : {ref:6.1f} sentences/s")
    print(f"TextEncoder (mean pooling), in-process : {ours:6.1f} sentences/s  ({ours / ref:.2f}x reference)")
    print(f"Ray Data stage, 1 actor, incl. start-up: {ray_rate:6.1f} sentences/s  ({ray_rate / ref:.2f}x reference)")


if __name__ == "__main__":
    main()
