"""Stage manifests and crash-safe writes.

Every stage writes its outputs first, each through a temp file renamed into place, and its
`manifest.json` last.  A stage whose manifest's settings and input fingerprints match is skipped;
a stage killed half-way leaves no manifest, so it reruns (and never reads a half-written file).
"""
from __future__ import annotations

import hashlib
import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Any, Callable

# code_version: stages import it from here; write_manifest records it
from sracl_ray.version import code_version


def current_umask() -> int:
    """The process umask, read without changing it where Linux allows (os.umask sets it, process-wide)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # set and restore at once: no file is created in between by this thread
    os.umask(mask)
    return mask


def atomic_write(path: str | Path, write: Callable[[Path], Any]) -> None:
    """Call write(tmp) then rename tmp onto path, so path is either old or complete.

    mkstemp makes its file 0600 whatever the umask; the file gets 0666 & ~umask before the rename,
    as open() would have made it, so colleagues on a shared filesystem can read what a run wrote."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp" + "".join(path.suffixes))
    os.close(fd)
    try:
        write(Path(tmp))
        if stat.S_ISREG(os.lstat(tmp).st_mode):  # the writer may have replaced it; never chmod a link or dir
            os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))


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
