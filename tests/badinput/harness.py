"""The harness of the table-driven bad-input tests: run the real `sracl-ray` CLI on one bad input.

Every case runs `python -m sracl_ray.cli ARGS` in a fresh working directory that holds only the
files the case wrote, and asserts what issue 9 asks of every user error: exit code 2, exactly
one stderr line `sracl-ray: error: ...` that names the culprit (file, line or key), no
traceback, and no file created or changed anywhere under the working directory.

A case is a `Case(id, args, culprit, setup)`; `setup(tmp: Path)` writes the case's input files
and may return extra words (e.g. a path) that the message must also contain.  Arguments may use
`{tmp}` for the working directory.
"""
from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Case:
    id: str
    args: Sequence[str]
    culprit: Sequence[str]  # words the one error line must contain (case-insensitive)
    setup: Callable[[Path], object] | None = None
    env: dict = field(default_factory=dict)
    code: int = 2
    timeout: float = 300


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """{relative path: (size, mtime_ns)} of every file and directory under root."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            out[str(p.relative_to(root))] = (st.st_size if p.is_file() else -1, st.st_mtime_ns if p.is_file() else 0)
    return out


def run_cli(args: Sequence[str], cwd: Path, env: dict | None = None, timeout: float = 300
            ) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "PYTHONPATH": str(REPO), "SRACL_RAY_NUM_CPUS": "1", "TQDM_DISABLE": "1",
                **(env or {})}
    return subprocess.run([sys.executable, "-m", "sracl_ray.cli", *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


def check_case(case: Case, tmp: Path) -> str:
    """Run one case in tmp and assert the issue-9 contract; returns the error line."""
    extra = case.setup(tmp) if case.setup else None
    before = snapshot(tmp)
    args = [a.replace("{tmp}", str(tmp)) for a in case.args]
    proc = run_cli(args, tmp, case.env, case.timeout)
    err_lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("sracl-ray: ")]
    context = f"\nargs: {args}\nexit {proc.returncode}\nstdout:\n{proc.stdout[-2000:]}\nstderr:\n{proc.stderr[-4000:]}"
    assert proc.returncode == case.code, f"{case.id}: expected exit {case.code}" + context
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout, f"{case.id}: traceback" + context
    assert len(err_lines) == 1, f"{case.id}: expected exactly one 'sracl-ray: error' line" + context
    line = err_lines[0]
    assert line.startswith("sracl-ray: error: "), f"{case.id}: not an error line" + context
    words = list(case.culprit) + ([str(extra)] if isinstance(extra, (str, Path)) else list(extra or []))
    for word in words:
        assert str(word).lower() in line.lower(), f"{case.id}: the message does not name {word!r}" + context
    after = snapshot(tmp)
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    assert not changed, f"{case.id}: files created or changed: {changed[:10]}" + context
    return line
