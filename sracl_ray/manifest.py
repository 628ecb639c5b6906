"""Stage manifests and crash-safe writes.

Every stage writes its outputs first, each through a temp file renamed into place, and its
`manifest.json` last.  A stage whose manifest's settings and input fingerprints match is skipped;
a stage killed half-way leaves no manifest, so it reruns (and never reads a half-written file).
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Callable

import sracl_ray


def atomic_write(path: str | Path, write: Callable[[Path], Any]) -> None:
    """Call write(tmp) then rename tmp onto path, so path is either old or complete."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp" + "".join(path.suffixes))
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write(path, lambda p: p.write_text(text))


def code_version() -> str:
    """Package version plus the git commit when run from a checkout."""
    version = sracl_ray.__version__
    root = Path(sracl_ray.__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        sha, dirty = "", ""
    return f"{version}+{sha}{'.dirty' if dirty else ''}" if sha else version


def fingerprint_files(*paths: str | Path) -> str:
    """sha256 over the bytes of files (directories: every file inside, sorted)."""
    h = hashlib.sha256()
    for p in paths:
        p = Path(p)
        files = sorted(q for q in p.rglob("*") if q.is_file()) if p.is_dir() else [p]
        for f in files:
            h.update(f.name.encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:16]


def fingerprint_obj(obj: Any) -> str:
    """sha256 of a JSON-able object (settings)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def write_manifest(out_dir: str | Path, manifest: dict) -> None:
    """Write manifest.json last and atomically; adds code_version when absent."""
    manifest = {"code_version": code_version(), **manifest}
    atomic_write_text(Path(out_dir) / "manifest.json", json.dumps(manifest, indent=2, sort_keys=True, default=str))


def read_manifest(out_dir: str | Path) -> dict | None:
    """The manifest as a dict, None when absent; UserError naming the file when it is not JSON."""
    from sracl_ray.errors import UserError

    p = Path(out_dir) / "manifest.json"
    if not p.exists():
        return None
    try:
        manifest = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{p}: not a valid manifest (truncated or corrupt JSON: {e}); "
                        f"delete the stage directory and rebuild it") from e
    if not isinstance(manifest, dict):
        raise UserError(f"{p}: not a valid manifest (expected a JSON object, found {type(manifest).__name__})")
    return manifest


def is_fresh(out_dir: str | Path, settings: dict, inputs: dict) -> bool:
    """True when a finished stage in out_dir was built from the same settings and inputs."""
    m = read_manifest(out_dir)
    return bool(m) and m.get("settings") == json.loads(json.dumps(settings, default=str)) \
        and m.get("inputs") == inputs
