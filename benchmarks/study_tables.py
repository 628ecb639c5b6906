"""The CPU studies' tables (benchmarks/REPRODUCTION.md), from a sweep's results store.

Two designs (--design): `cpu_study` (benchmarks/cpu_study.yaml, below) and `attribution`
(benchmarks/attribution_cpu.yaml: full under each semantic.exclude value, no_cl, self_view; the
contrasts of experiments/attribution.yaml's header; determinism: no_cl and self_view read no unit
neighbours, so their runs under each exclusion must equal the exclude=none ones seed for seed).

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
    python benchmarks/study_tables.py runs/attribution_cpu --design attribution
    python benchmarks/study_tables.py --smoke [--design attribution]   # a synthetic store: the code path
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
EXCLUDE = "cfg.semantic.exclude"  # exclude=same_user is read as EXCL=True (analysis/store.canonical_settings)
PLAIN = {EXCL: False, EXCLUDE: "none"}
ATTRIBUTION_ARMS = {"full": {"variant": "full", **PLAIN}, "no_cl": {"variant": "no_cl", **PLAIN},
                    "self_view": {"variant": "self_view", **PLAIN},
                    "full_no_longer": {"variant": "full", EXCL: False, EXCLUDE: "longer_same_user"},
                    "full_other_users": {"variant": "full", EXCL: True, EXCLUDE: "none"}}
ATTRIBUTION_COMPARISONS = (("full", "no_cl"), ("self_view", "no_cl"), ("full", "self_view"),
                           ("full", "full_no_longer"), ("full_no_longer", "full_other_users"),
                           ("full_other_users", "self_view"))
# (arms, comparisons, the runs that must repeat: {variant: [the where of each repeat]})
DESIGNS = {
    "cpu_study": (ARMS, COMPARISONS, {"no_cl": [{EXCL: True}]}),
    "attribution": (ATTRIBUTION_ARMS, ATTRIBUTION_COMPARISONS,
                    {v: [{EXCL: False, EXCLUDE: "longer_same_user"}, {EXCL: True, EXCLUDE: "none"}]
                     for v in ("no_cl", "self_view")}),
}


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


def determinism(df, arms: dict = ARMS, repeats: dict | None = None) -> dict:
    """Per repeat of a variant that reads no unit neighbours: its runs equal the plain ones seed for seed."""
    ok = only_ok(df)
    seeds, same = [], []
    for variant, wheres in (repeats or {"no_cl": [{EXCL: True}]}).items():
        plain = next(w for w in arms.values() if w["variant"] == variant)
        a = select(ok, plain).set_index("seed")
        for where in wheres:
            b = select(ok, {"variant": variant, **where}).set_index("seed")
            common = sorted(set(a.index) & set(b.index))
            seeds += [int(s) for s in common]
            same += [bool(all(a.loc[s, m] == b.loc[s, m] for m in METRICS)) for s in common]
    return {"seeds_compared": seeds, "identical": same}


SYNTHETIC_RUNS = {  # design -> (variant, semantic.exclude) of each synthetic arm
    "cpu_study": [("full", "none"), ("no_cl", "none"), ("full", "same_user"), ("no_cl", "same_user")],
    "attribution": [(v, e) for v in ("full", "no_cl", "self_view") for e in ("none", "longer_same_user", "same_user")],
}


def synthetic_store(root: Path, users: int = 300, seeds=(1, 2, 3), design: str = "cpu_study") -> Path:
    """Rows + ranks for the design's arms (and the repeats) with a known small gain for `full`."""
    import pandas as pd

    from sracl_ray.config import load
    from sracl_ray.results import store

    rng = np.random.default_rng(0)
    base_rank = rng.integers(0, 400, size=users)
    shift = {"full": -20, "no_cl": 0, "self_view": -5}
    for (variant, excl) in SYNTHETIC_RUNS[design]:
        for seed in seeds:
            tid = f"{variant}-{excl}-{seed}"
            noise = np.random.default_rng(seed).integers(-30, 30, size=users)  # repeats: same per seed
            reads = variant == "full"  # the only synthetic variant whose runs an exclusion changes
            extra = np.random.default_rng(100 + seed + 10 * len(excl)).integers(-5, 5, users) if reads else 0
            if not reads and variant != "no_cl":
                extra = np.random.default_rng(200 + seed).integers(-5, 5, users)
            rank = np.clip(base_rank + shift[variant] + (10 * (excl != "none") if reads else 0) + noise + extra, 0,
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
            excl_set = (f"semantic.exclude_same_user={excl == 'same_user'}" if design == "cpu_study"
                        else f"semantic.exclude={excl}")
            cfg = load(None, [f"cl.variant={variant}", f"train.seed={seed}", excl_set])
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
    lines += ["", f"determinism of the variants that read no unit neighbours (their exclusion runs vs the plain "
                  f"ones, seeds {det['seeds_compared']}): identical {det['identical']}"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("storage", nargs="?", default="runs/study",
                    help="the study's sweep storage dir, or a dir holding several (e.g. seeds 1-3 and 4-6)")
    ap.add_argument("--design", choices=sorted(DESIGNS), default="cpu_study")
    add_args(ap)
    args = ap.parse_args(argv)
    arms_of, comparisons, repeats = DESIGNS[args.design]
    rec = Record("study_tables", args, argv)
    tmp = None
    storage = Path(args.storage)
    if args.smoke:
        tmp = tempfile.TemporaryDirectory()
        storage = synthetic_store(Path(tmp.name), design=args.design)
    df = load_root(storage) if sweep_dirs(storage) else load_store(storage)  # one sweep, or several
    rec.log("storage", str(args.storage) if not args.smoke else "synthetic")
    rec.log("design", args.design)
    arms = {name: arm_summary(df, where) for name, where in arms_of.items()}
    rec.log("arms", arms)
    cache: dict = {}
    comps = {f"{t} vs {b}": {m: comparison(df, arms_of[t], arms_of[b], m, cache) for m in METRICS}
             for t, b in comparisons}
    det = determinism(df, arms_of, repeats)
    rec.log("comparisons", comps)
    rec.log("determinism_no_cl", det)
    rec.write()
    print(markdown(arms, comps, det))
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
