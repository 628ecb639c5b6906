"""The reproduction study's tables (benchmarks/REPRODUCTION.md), from a sweep's results store.

Reads the store the platform wrote (`sracl-ray sweep run experiments/cpu_study.yaml --storage S`)
and records, for the arms full, no_cl and full + semantic.exclude_same_user:
  - per arm: mean ± std over seeds of every test metric, the epochs run, the best epoch, and how
    many trials stopped at the epoch cap instead of early stopping;
  - per comparison (full vs no_cl, full+excl vs no_cl, full vs full+excl): the paired t-test over
    seeds, the per-user paired bootstrap CI and Wilcoxon test (analysis/significance.py, the
    report's own code), and the smallest difference each could detect (80% power, alpha 0.05,
    from the observed spread: analysis.stats.min_detectable_difference);
  - the determinism check: no_cl reads no unit neighbours, so its exclude_same_user=true trials
    must equal the false ones seed for seed.

    python benchmarks/study_tables.py runs/study --out benchmarks/results/cpu_study.json
    python benchmarks/study_tables.py --smoke      # a synthetic store: checks the code path
"""
from __future__ import annotations

import argparse
import math
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _record import Record, add_args  # noqa: E402

from analysis.significance import arm_values, compare_arms  # noqa: E402
from analysis.stats import min_detectable_difference, pair_runs, paired_ttest  # noqa: E402
from analysis.methods import select  # noqa: E402
from analysis.store import load_root, load_store, only_ok, sweep_dirs  # noqa: E402

METRICS = ("test/hr@10", "test/ndcg@10", "test/hr@20", "test/ndcg@20")
EXCL = "cfg.semantic.exclude_same_user"
ARMS = {"full": {"variant": "full", EXCL: False}, "no_cl": {"variant": "no_cl", EXCL: False},
        "full_excl": {"variant": "full", EXCL: True}}
COMPARISONS = (("full", "no_cl"), ("full_excl", "no_cl"), ("full", "full_excl"))


def arm_summary(df, where: dict) -> dict:
    rows = select(only_ok(df), where)
    out = {"n": int(len(rows)), "seeds": sorted(int(s) for s in rows["seed"]),
           "epochs_run": [int(x) for x in rows["epochs_run"]], "best_epoch": [int(x) for x in rows["best_epoch"]],
           "hit_epoch_cap": int(rows["hit_epoch_cap"].fillna(False).astype(bool).sum())}
    for m in METRICS:
        v = rows[m].to_numpy(float)
        out[m] = {"mean": float(v.mean()) if v.size else math.nan,
                  "std": float(v.std(ddof=1)) if v.size > 1 else math.nan, "values": [float(x) for x in v]}
    return out


def comparison(df, treat: dict, base: dict, metric: str, cache: dict) -> dict:
    pairs = pair_runs(df, metric, treat, base)
    seed = paired_ttest(pairs["treatment"], pairs["baseline"], metric)
    user = compare_arms(df, metric, treat, base, cache=cache)
    t, _ = arm_values(select(only_ok(df), treat), metric, "treatment", cache)
    b, _ = arm_values(select(only_ok(df), base), metric, "baseline", cache)
    return {"mean_diff": seed.mean_diff, "improvement_pct": seed.improvement_pct,
            "ttest_seeds": {"n": seed.n, "t": seed.statistic, "p": seed.pvalue,
                            "mde": min_detectable_difference(pairs["treatment"] - pairs["baseline"])},
            "per_user": {"n_users": user.n_users, "ci95": [user.ci_low, user.ci_high], "wilcoxon_p": user.wilcoxon_p,
                         "n_nonzero": user.n_nonzero,
                         "mde": min_detectable_difference(t.to_numpy() - b.to_numpy())}}


def determinism(df) -> dict:
    ok = only_ok(df)
    a = select(ok, {"variant": "no_cl", EXCL: False}).set_index("seed")
    b = select(ok, {"variant": "no_cl", EXCL: True}).set_index("seed")
    common = sorted(set(a.index) & set(b.index))
    same = [bool(all(a.loc[s, m] == b.loc[s, m] for m in METRICS)) for s in common]
    return {"seeds_compared": [int(s) for s in common], "identical": same}


def synthetic_store(root: Path, users: int = 300, seeds=(1, 2, 3)) -> Path:
    """Rows + ranks for the three arms (and no_cl's repeat) with a known small gain for `full`."""
    import pandas as pd

    from sracl_ray.config import load
    from sracl_ray.results import store

    rng = np.random.default_rng(0)
    base_rank = rng.integers(0, 400, size=users)
    shift = {"full": -20, "no_cl": 0}
    for (variant, excl) in (("full", False), ("no_cl", False), ("full", True), ("no_cl", True)):
        for seed in seeds:
            tid = f"{variant}-{int(excl)}-{seed}"
            noise = np.random.default_rng(seed).integers(-30, 30, size=users)  # no_cl repeats: same per seed
            extra = 0 if variant == "no_cl" else np.random.default_rng(100 + seed + 10 * excl).integers(-5, 5, users)
            rank = np.clip(base_rank + shift[variant] + (10 if excl and variant == "full" else 0) + noise + extra, 0,
                           None)
            ranks = pd.DataFrame({"user": np.arange(1, users + 1), "rank_valid": rank, "ties_valid": 0,
                                  "rank_test": rank, "ties_test": 0, "train_len": 5, "test_input_len": 6})
            rdir = root / "trials" / tid
            rdir.mkdir(parents=True, exist_ok=True)
            ranks.to_parquet(rdir / "ranks.parquet", index=False)
            metrics = {}
            for m in METRICS:
                kind, k = m.split("/")[1].split("@")
                k = int(k)
                hit = rank < k
                metrics[m] = float(hit.mean() if kind == "hr" else (hit / np.log2(rank + 2)).mean())
            cfg = load(None, [f"cl.variant={variant}", f"train.seed={seed}", f"semantic.exclude_same_user={excl}"])
            result = {"status": "ok", "metrics": metrics, "best_epoch": 5, "epochs_run": 15,
                      "dataset": {"name": "synthetic", "fingerprint": "synthetic"}}
            store.write_row(root, store.trial_row(result, cfg, tid, "cpu_study", f"trials/{tid}/ranks.parquet"))
    return root


def fmt(x: float, d: int = 4) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{d}f}"


def fmt_p(p: float) -> str:
    return "n/a" if p is None or (isinstance(p, float) and math.isnan(p)) else f"{p:.2g}"


def markdown(arms: dict, comps: dict, det: dict) -> str:
    """The tables of benchmarks/REPRODUCTION.md."""
    lines = ["| arm | trials | " + " | ".join(METRICS) + " | epochs run | best epoch | at cap |",
             "|---|---|" + "---|" * len(METRICS) + "---|---|---|"]
    for name, a in arms.items():
        cells = [f"{fmt(a[m]['mean'])} ± {fmt(a[m]['std'])}" for m in METRICS]
        lines.append(f"| {name} | {a['n']} | " + " | ".join(cells) +
                     f" | {min(a['epochs_run'], default=0)}-{max(a['epochs_run'], default=0)} "
                     f"| {min(a['best_epoch'], default=0)}-{max(a['best_epoch'], default=0)} | {a['hit_epoch_cap']} |")
    lines += ["", "| comparison | metric | mean diff | t-test over seeds (n, p) | smallest detectable (seeds) "
              "| per-user 95% CI | Wilcoxon p | smallest detectable (users) |", "|---|---|---|---|---|---|---|---|"]
    for name, per_metric in comps.items():
        for m, c in per_metric.items():
            t, u = c["ttest_seeds"], c["per_user"]
            lines.append(f"| {name} | {m} | {fmt(c['mean_diff'])} | {t['n']}, {fmt_p(t['p'])} | {fmt(t['mde'])} "
                         f"| [{fmt(u['ci95'][0])}, {fmt(u['ci95'][1])}] | {fmt_p(u['wilcoxon_p'])} "
                         f"| {fmt(u['mde'])} (n={u['n_users']}) |")
    lines += ["", f"no_cl determinism (exclude_same_user true vs false, seeds {det['seeds_compared']}): "
                  f"identical {det['identical']}"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("storage", nargs="?", default="runs/study",
                    help="the study's sweep storage dir, or a dir holding several (e.g. seeds 1-3 and 4-6)")
    add_args(ap)
    args = ap.parse_args(argv)
    rec = Record("study_tables", args, argv)
    tmp = None
    storage = Path(args.storage)
    if args.smoke:
        tmp = tempfile.TemporaryDirectory()
        storage = synthetic_store(Path(tmp.name))
    df = load_root(storage) if sweep_dirs(storage) else load_store(storage)  # one sweep, or several
    rec.log("storage", str(args.storage) if not args.smoke else "synthetic")
    rec.log("arms", {name: arm_summary(df, where) for name, where in ARMS.items()})
    arms = {name: arm_summary(df, where) for name, where in ARMS.items()}
    cache: dict = {}
    comps = {f"{t} vs {b}": {m: comparison(df, ARMS[t], ARMS[b], m, cache) for m in METRICS}
             for t, b in COMPARISONS}
    det = determinism(df)
    rec.log("comparisons", comps)
    rec.log("determinism_no_cl", det)
    rec.write()
    print(markdown(arms, comps, det))
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
