"""The code version every manifest and result row records, and `sracl-ray version`.

`code_version()` is the package version plus the git commit the code came from:
`0.1.0+1a2b3c4`, with `.dirty` when the code differs from that commit.  It is looked up once per
process (cached), in this order:

1. git, when the package itself sits at the top of a git checkout (an editable install): the
   checkout's HEAD and whether tracked files are modified.  A BUILD_VERSION file there is ignored:
   in a checkout git is the truth, and a record written before the last commit would be stale.
2. BUILD_VERSION, the build record inside the package, where there is no git: a cluster node gets
   the checkout without `.git/` (cluster.yaml's rsync_exclude) and installs it non-editable.
   `sracl-ray version --write`, run in the checkout right before `ray up`, writes it (it is
   gitignored and shipped as package data).  It keeps the commit, the dirty flag and a hash of
   the package's .py files; code whose hash differs (edited after the record was written) reads
   as `.dirty`, so a forgotten `--write` never claims a clean commit.
3. the bare package version.
"""
from __future__ import annotations

import argparse
import functools
import hashlib
import json
import logging
import subprocess
from pathlib import Path

import sracl_ray

log = logging.getLogger(__name__)

PACKAGE = "sracl_ray"
RECORD_FILENAME = "BUILD_VERSION"  # in the package dir; .gitignore and pyproject's package-data name it too
GIT_TIMEOUT_S = 5


def _git(cwd: Path, *args: str) -> str | None:
    """git's stdout (stripped), None when git is missing, fails or cwd is no checkout."""
    try:
        out = subprocess.run(["git", "-C", str(cwd), *args], check=False, capture_output=True,
                             text=True, timeout=GIT_TIMEOUT_S)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_state(checkout: Path) -> tuple[str, bool] | None:
    """(short commit, dirty) of the checkout whose top-level dir is `checkout`; None when it is none.

    A package installed into a venv that lies inside some other checkout is not that checkout's
    code, so the top level must be `checkout` itself."""
    top = _git(checkout, "rev-parse", "--show-toplevel")
    if not top or Path(top).resolve() != checkout.resolve():
        return None
    sha = _git(checkout, "rev-parse", "--short", "HEAD")
    if not sha:
        return None
    dirty = _git(checkout, "status", "--porcelain", "--untracked-files=no")
    return sha, bool(dirty)


def sources_hash(package_dir: Path) -> str:
    """sha256 over the package's .py files (relative path + bytes, sorted): what a wheel installs."""
    h = hashlib.sha256()
    for f in sorted(p for p in package_dir.rglob("*.py") if "__pycache__" not in p.parts):
        h.update(f.relative_to(package_dir).as_posix().encode() + b"\0")
        h.update(f.read_bytes())
    return h.hexdigest()


def read_record(package_dir: Path) -> tuple[str, bool] | None:
    """(commit, dirty) from package_dir/BUILD_VERSION; dirty also when the sources differ from the
    recorded ones.  None when there is no record (or an unreadable one, with a warning)."""
    path = package_dir / RECORD_FILENAME
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        commit, dirty, recorded = str(record["commit"]), bool(record["dirty"]), str(record["sources_sha256"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        log.warning("%s: unreadable build record (%s); code_version has no commit", path, e)
        return None
    if recorded != sources_hash(package_dir):
        log.warning("%s records commit %s, but this code differs from it: code_version says .dirty (run "
                    "`sracl-ray version --write` in the checkout right before `ray up`)", path, commit)
        dirty = True
    return commit, dirty


def version_of(package_dir: Path) -> str:
    """The code version of the package in package_dir (git, else its build record, else bare)."""
    state = git_state(package_dir.parent) or read_record(package_dir)
    if state is None:
        return sracl_ray.__version__
    commit, dirty = state
    return f"{sracl_ray.__version__}+{commit}{'.dirty' if dirty else ''}"


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """Package version plus the commit the code came from (see the module docstring); once per process."""
    return version_of(Path(sracl_ray.__file__).resolve().parent)


def write_record(checkout: Path) -> tuple[Path, str]:
    """Write checkout/sracl_ray/BUILD_VERSION from git; returns (its path, the version it records)."""
    from sracl_ray.errors import UserError

    checkout = checkout.resolve()
    package_dir = checkout / PACKAGE
    state = git_state(checkout)
    if state is None or not (package_dir / "__init__.py").is_file():
        raise UserError(f"version --write: {checkout} is not the top of a git checkout of sracl-ray (run it where "
                        f"you run `ray up cluster.yaml`)")
    commit, dirty = state
    from sracl_ray.manifest import atomic_write_text

    path = package_dir / RECORD_FILENAME
    atomic_write_text(path, json.dumps({"commit": commit, "dirty": dirty, "sources_sha256": sources_hash(package_dir)},
                                       indent=2) + "\n")
    return path, f"{sracl_ray.__version__}+{commit}{'.dirty' if dirty else ''}"


def _cmd(args: argparse.Namespace) -> int:
    if args.write:
        path, version = write_record(Path(args.checkout))
        print(f"wrote {path}: {version}")
    else:
        print(code_version())
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("version", help="print the code version results record (or --write its build record)",
                              description="Print the code version (package version + git commit) that manifests and "
                                          "result rows record.  --write records the checkout's commit in "
                                          f"{PACKAGE}/{RECORD_FILENAME} for machines that get the code without .git/ "
                                          "(run it right before `ray up cluster.yaml`).")
    p.add_argument("--write", action="store_true", help=f"write {PACKAGE}/{RECORD_FILENAME} from git, then exit")
    p.add_argument("--checkout", default=".", metavar="DIR", help="the git checkout to record (default: .)")
    p.set_defaults(func=_cmd)
