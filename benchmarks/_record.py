"""What every benchmark writes: its command, the date, the machine and the figures it measured.

Each script in benchmarks/ calls `add_args(ap)` and then `Record(script, args)`; `rec.log(key, v)`
prints a figure and keeps it, `rec.write()` saves the JSON (atomically; scripts that can be cut
short call it after every figure).  The file goes to `--out`, else to
benchmarks/results/<script>-<date>[-N].json; with --smoke, to a temporary directory, so tests never
dirty the checkout.  The machine record names the CPU and its vector extensions because CPU figures
differ by 5x between machines of the same kind (AVX2 only vs AVX512-BF16).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"
REPO = RESULTS_DIR.parents[1]
VECTOR_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")


def add_args(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--smoke", action="store_true",
                    help="seconds on a CPU: tiny data, 1-2 steps (checks the code path, not the speed)")
    ap.add_argument("--out", default=None,
                    help="result JSON (default: benchmarks/results/<script>-<date>.json; "
                         "with --smoke: a temporary file)")
    ap.add_argument("--note", default="", help="free text stored with the result (e.g. 'machine shared')")


def cpu_info() -> tuple[str, list[str]]:
    """(CPU model name, the vector extensions among VECTOR_FLAGS that /proc/cpuinfo lists)."""
    model, flags = "", set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and not model:
                    model = value.strip()
                elif key == "flags" and not flags:
                    flags = set(value.split())
                if model and flags:
                    break
    except OSError:
        pass
    return model or platform.processor() or "unknown", [f for f in VECTOR_FLAGS if f in flags]


def git_commit() -> str:
    """HEAD's short hash, '+dirty' when tracked files differ ('' outside a checkout)."""
    def git(*a: str) -> str:
        return subprocess.run(["git", "-C", str(REPO), *a], capture_output=True, text=True, timeout=10).stdout.strip()
    try:
        sha = git("rev-parse", "--short", "HEAD")
        return sha + ("+dirty" if sha and git("status", "--porcelain", "--untracked-files=no") else "")
    except (OSError, subprocess.SubprocessError):
        return ""


def machine() -> dict:
    import numpy
    import torch

    model, ext = cpu_info()
    return {"cpu_model": model, "vector_extensions": ext, "cores": os.cpu_count(),
            "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
            "load_avg_start": [round(x, 2) for x in os.getloadavg()], "load_avg_end": None,
            "load_avg_1min_by_figure": {},
            "torch": torch.__version__, "torch_threads": torch.get_num_threads(), "numpy": numpy.__version__,
            "python": platform.python_version(), "gpu": None, "git_commit": git_commit()}


def default_out(script: str, smoke: bool) -> Path:
    if smoke:
        return Path(tempfile.mkdtemp(prefix=f"bench-{script}-")) / f"{script}-smoke.json"
    stem = f"{script}-{datetime.date.today().isoformat()}"
    path, n = RESULTS_DIR / f"{stem}.json", 1
    while path.exists():  # never overwrite an earlier run's evidence
        n += 1
        path = RESULTS_DIR / f"{stem}-{n}.json"
    return path


def ratio(a: float, b: float) -> float:
    """a / b to 4 significant digits (never rounded to 0)."""
    return float(f"{a / b:.4g}")


def jsonable(value):
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "item"):  # numpy / torch scalars
        return value.item()
    return str(value)


class Record:
    """The JSON of one benchmark run; `log` figures into it, `write` saves it."""

    def __init__(self, script: str, args: argparse.Namespace, argv: list[str] | None = None):
        """argv: the script's arguments when main(argv) is called in-process (default sys.argv[1:])."""
        self.path = Path(args.out) if args.out else default_out(script, args.smoke)
        shown = (RESULTS_DIR.parent / f"{script}.py").relative_to(REPO)  # as run from the checkout
        self.data = {
            "script": script,
            "command": shlex.join(["python", str(shown), *(sys.argv[1:] if argv is None else argv)]),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "smoke": bool(args.smoke),
            "note": args.note,
            "settings": jsonable({k: v for k, v in vars(args).items() if k not in ("out", "note")}),
            "machine": machine(),
            "results": {},
            "complete": False,
        }

    @property
    def results(self) -> dict:
        return self.data["results"]

    def gpu(self, name: str | None) -> None:
        self.data["machine"]["gpu"] = name

    def log(self, key: str, value, save: bool = False) -> None:
        """Keep one figure (and print it as key=value); `save` writes the file at once."""
        self.results[key] = jsonable(value)
        self.data["machine"]["load_avg_1min_by_figure"][key] = round(os.getloadavg()[0], 2)
        print(f"{key}={value}", flush=True)
        if save:
            self.write(complete=False)

    def write(self, complete: bool = True) -> Path:
        from sracl_ray.manifest import atomic_write_text

        self.data["machine"]["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
        self.data["complete"] = complete
        atomic_write_text(self.path, json.dumps(self.data, indent=1) + "\n")
        if complete:
            print(f"wrote {self.path}", flush=True)
        return self.path
