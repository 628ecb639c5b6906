"""One writer per output: `train --out DIR` and a sweep's storage dir are held by one process at a time.

The lock is `DIR/.sracl.lock`, held with flock(2) (released by the kernel when the holder dies,
so a killed run never leaves a stale lock) and holding the holder's host, pid, command and start
time, which a refused second writer is shown.  The file is removed on release.  Object storage
has no locks: a sweep stored at a URI is locked through a file in the local cache keyed by the
URI, which stops a second driver on the same machine (drivers on other machines are not seen).
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Iterator

from sracl_ray.errors import UserError

LOCK_FILENAME = ".sracl.lock"


class InUseError(UserError):
    """Another sracl-ray process is writing the same output."""


def lock_path(location: str) -> Path:
    """Where the lock of a dir or storage location lives."""
    from sracl_ray import storage as S

    local = S.local_path(location)
    if local is not None:
        return Path(local).expanduser() / LOCK_FILENAME
    return S.cache_root("locks") / (S.cache_key(S.normalise(location)) + ".lock")


def _holder(f) -> str:
    try:
        f.seek(0)
        h = json.loads(f.read() or "{}")
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(h.get("since", 0))))
        return f"host {h.get('host', '?')}, pid {h.get('pid', '?')}, since {since}: {h.get('command', '?')}"
    except (OSError, ValueError, TypeError):
        return "a process that has not written its name yet"


@contextlib.contextmanager
def hold(location: str, what: str) -> Iterator[Path]:
    """Hold the lock of `location` for the block; InUseError (one line, naming the holder) if taken."""
    path = lock_path(location)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        f = os.fdopen(fd, "r+")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = _holder(f)
            f.close()
            if e.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
            raise InUseError(f"{location} is in use by another sracl-ray ({holder}); wait for it to finish or "
                             f"stop it, or use another {what}") from None
        try:  # the holder before us may have removed the file after we opened it: lock the live one
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        f.close()
    try:
        f.seek(0)
        f.truncate()
        from sracl_ray.secrets import scrub

        f.write(json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "since": time.time(),
                            "command": scrub(" ".join(["sracl-ray", *sys.argv[1:]]))[:300]}))
        f.flush()
        yield path
    finally:
        with contextlib.suppress(OSError):
            path.unlink()
        f.close()
