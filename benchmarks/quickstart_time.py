"""The README quickstart, measured: wall time of `sracl-ray quickstart` (in this process, as the
CLI runs it) and its table, i.e. each arm's test metrics beside the popularity and random rows.

    python benchmarks/quickstart_time.py               # the real quickstart (4 trials, beauty_dense)
    python benchmarks/quickstart_time.py --smoke       # 60 users, 1 epoch, a random-vector artifact
Writes a JSON (benchmarks/_record.py) with quickstart_s, per-arm means and the baselines;
margin_over_popularity[<arm>] = the arm's mean test HR@10 / popularity's (> 1: it learned more than
counting).  The README's quickstart time comes from here.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from _record import Record, add_args, ratio  # noqa: E402 - after the environment it reads
from _smoke import random_artifact  # noqa: E402

METRICS = ("test/hr@10", "test/ndcg@10", "test/hr@20", "test/ndcg@20")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_args(ap)
    ap.add_argument("--storage", default="", help="quickstart --out (default: a fresh temporary dir)")
    args = ap.parse_args(argv)
    rec = Record("quickstart_time", args, argv)
    from sracl_ray import cli
    from sracl_ray.quickstart import DATASET
    from sracl_ray.results.query import summary
    from sracl_ray.results.store import connect

    with tempfile.TemporaryDirectory() as tmp:
        storage = Path(args.storage or Path(tmp) / "qs")
        sets = []
        if args.smoke:
            art = random_artifact(60, Path(tmp) / "artifact", path=str(DATASET))
            sets = ["data.max_users=60", "train.epochs=1", f"semantic.artifact={art}"]
        argv_qs = ["quickstart", "--out", str(storage), *[a for s in sets for a in ("--set", s)]]
        if args.smoke:
            argv_qs += ["--num-cpus", "1"]
        rec.log("command_measured", "sracl-ray " + " ".join(argv_qs[:1] + argv_qs[3:]))
        start = time.monotonic()
        code = cli.main(argv_qs)
        rec.log("quickstart_s", round(time.monotonic() - start, 1))
        rec.log("exit_code", code)
        df, _, _ = summary(connect(storage), None, ["variant"], list(METRICS))
        for row in df.to_dict("records"):
            rec.log(f"arm[{row['variant']}]", {"n": int(row["n"]), **{m: round(float(row[f"{m}_mean"]), 4) for m in METRICS},
                                             **{f"{m}_std": round(float(row[f"{m}_std"]), 4) for m in METRICS
                                                if row[f"{m}_std"] == row[f"{m}_std"]}})
        baselines = json.loads((storage / "baselines.json").read_text())
        for b in baselines:
            rec.log(f"baseline[{b['baseline']}]", {m: round(b[m], 4) for m in METRICS})
        pop = next(b for b in baselines if b["baseline"] == "popularity")["test/hr@10"]
        for row in df.to_dict("records"):
            if pop > 0:  # a tiny smoke slice may give popularity no hit at all
                rec.log(f"margin_over_popularity[{row['variant']}]", ratio(float(row["test/hr@10_mean"]), pop))
    rec.write()


if __name__ == "__main__":
    main()
