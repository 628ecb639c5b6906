"""The harness of the table-driven bad-input tests: run the real `sracl-ray` CLI on one bad input.

Every case runs the CLI (`sracl_ray.cli.main(ARGS)` in this process, or `python -m sracl_ray.cli
ARGS` as a subprocess) in a fresh working directory that holds only the files the case wrote,
and asserts what issue 9 asks of every user error: exit code 2, exactly one stderr line
`sracl-ray: error: ...` that names the culprit (file, line or key), no traceback, and no file
created or changed anywhere under the working directory.

`cases_params(CASES)` runs each case in-process in the default tier (fast: no interpreter start,
no re-import of numpy/pandas/pyarrow), the table's first case also as a real subprocess (the
entry point itself), and every case as a subprocess in the `slow` tier.

A case is a `Case(id, args, culprit, setup)`; `setup(tmp: Path)` writes the case's input files
and may return extra words (e.g. a path) that the message must also contain.  Arguments may use
`{tmp}` for the working directory.
"""
from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from dataclasses import dataclass, field
from types import SimpleNamespace
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


CASE_ENV = {"SRACL_RAY_NUM_CPUS": "1", "TQDM_DISABLE": "1"}


def run_cli(args: Sequence[str], cwd: Path, env: dict | None = None, timeout: float = 300
            ) -> subprocess.CompletedProcess:
    """The real entry point: `python -m sracl_ray.cli ARGS` in cwd."""
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **CASE_ENV, **(env or {})}
    return subprocess.run([sys.executable, "-m", "sracl_ray.cli", *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


def run_inprocess(args: Sequence[str], cwd: Path, env: dict | None = None, timeout: float = 300):
    """`sracl_ray.cli.main(ARGS)` in this process, in cwd with env added, stdout/stderr captured
    (-> an object with returncode, stdout, stderr, like a CompletedProcess)."""
    from sracl_ray import cli

    old_cwd, old_env = os.getcwd(), dict(os.environ)
    out, err = io.StringIO(), io.StringIO()
    os.chdir(cwd)
    os.environ.update({**CASE_ENV, **(env or {})})
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = cli.main(list(args))
            except SystemExit as e:  # argparse usage errors exit
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        os.chdir(old_cwd)
        os.environ.clear()
        os.environ.update(old_env)
    return SimpleNamespace(returncode=code, stdout=out.getvalue(), stderr=err.getvalue())


def cases_params(cases: Sequence[Case]) -> list:
    """pytest params (case, how): each case in-process; the first also as a subprocess (the entry point
    itself); all as subprocesses in the slow tier."""
    import pytest

    params = [pytest.param(c, "inprocess", id=c.id) for c in cases]
    params += [pytest.param(c, "subprocess", id=f"{c.id}-subprocess",
                            marks=() if i == 0 else pytest.mark.slow) for i, c in enumerate(cases)]
    return params


def check_case(case: Case, tmp: Path, how: str = "inprocess") -> str:
    """Run one case in tmp and assert the issue-9 contract; returns the error line."""
    extra = case.setup(tmp) if case.setup else None
    before = snapshot(tmp)
    args = [a.replace("{tmp}", str(tmp)) for a in case.args]
    proc = (run_cli if how == "subprocess" else run_inprocess)(args, tmp, case.env, case.timeout)
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
