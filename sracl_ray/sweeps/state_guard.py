"""The pickle boundary: refuse to resume a sweep whose Ray Tune state someone else could have written.

Ray Tune keeps a sweep's state as pickles (`tune/tuner.pkl`, `tune/searcher-state-*.pkl`, and
cloudpickled objects inside `tune/experiment_state-*.json`) and unpickles them when the sweep is
resumed, so whoever can write those files can run code as the user who resumes it.  Like ssh with
a private key, `check_private` refuses unless every file under `tune/` is owned by the current
user and writable by nobody else, and `tune/` (with its sub-dirs) and the storage dir above it
cannot be changed by anybody else either (whoever can write a dir can replace the files in it).
Only the local files are checked: the storage must be a local (or mounted) path, as resume needs.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path

from sracl_ray.config import ConfigError

FIX = "make the sweep private to you (chown -R and chmod -R go-w), or resume a copy you made"


def _owner(uid: int) -> str:
    try:
        import pwd

        return f"uid {uid} ({pwd.getpwuid(uid).pw_name})"
    except (ImportError, KeyError):
        return f"uid {uid}"


def _refuse(path: Path, why: str) -> ConfigError:
    return ConfigError(f"refusing to resume: {path} is {why}; Ray Tune unpickles the sweep's state on resume, "
                       f"so whoever can change it can run code as you; {FIX}")


def _check_dir(path: Path, me: int) -> None:
    st = os.stat(path)
    if st.st_uid not in (me, 0):
        raise _refuse(path, f"a dir owned by {_owner(st.st_uid)}, not you (uid {me})")
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not st.st_mode & stat.S_ISVTX:
        raise _refuse(path, f"a dir writable by group or others (mode {stat.S_IMODE(st.st_mode):04o})")


def _check_file(path: Path, me: int) -> None:
    try:
        st = os.stat(path)  # a symlink is judged by what it points at
    except FileNotFoundError:
        return  # a dangling link: nothing to load
    if st.st_uid != me:
        raise _refuse(path, f"owned by {_owner(st.st_uid)}, not you (uid {me})")
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise _refuse(path, f"writable by group or others (mode {stat.S_IMODE(st.st_mode):04o})")


def check_private(tune_dir: str | Path) -> None:
    """Raise ConfigError naming the first file or dir of a sweep's Tune state that is not private."""
    tune_dir = Path(tune_dir)
    if not tune_dir.is_dir():
        return  # nothing to unpickle; the caller reports the missing state
    me = os.geteuid()
    _check_dir(tune_dir.resolve().parent, me)
    seen: set[tuple[int, int]] = set()
    for root, dirs, files in os.walk(tune_dir, followlinks=True):  # a linked dir is judged like any other
        st = os.stat(root)
        if (st.st_dev, st.st_ino) in seen:
            dirs.clear()
            continue
        seen.add((st.st_dev, st.st_ino))
        _check_dir(Path(root), me)
        for name in sorted(files):
            _check_file(Path(root) / name, me)
        dirs.sort()


def check_private_file(path: str | Path) -> None:
    """Raise ConfigError when one state file (e.g. a staged copy about to be restored) is not private."""
    _check_dir(Path(path).resolve().parent, os.geteuid())
    _check_file(Path(path), os.geteuid())
