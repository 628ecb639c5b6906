"""Where a sweep keeps its files: a local (or shared) path, or a storage URI (s3://, gs://, ...).

One module knows the difference.  A *location* is a string: a filesystem path, or a URI that
`pyarrow.fs.FileSystem.from_uri` understands (s3://bucket/prefix, gs://bucket/prefix,
hdfs://..., file:///...; S3-compatible servers through the standard AWS_ENDPOINT_URL variable).
Credentials come from the environment the way the cloud SDKs read them (AWS_ACCESS_KEY_ID,
GOOGLE_APPLICATION_CREDENTIALS, instance roles); this module never writes or logs them.

Writes are whole objects: on a path through a temp file renamed into place, on object storage
one PUT (an object is either absent or complete).  Readers that need files on disk (DuckDB, the
report) get a *local view*: the store's small files copied into a cache dir, only those whose
size or modification time changed since the last view.
"""
from __future__ import annotations

import hashlib
import logging
import os
import posixpath
import re
import shutil
from pathlib import Path

from sracl_ray.errors import UserError

log = logging.getLogger(__name__)

_SCHEME_RE = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


class StorageError(UserError):
    """A storage location that cannot be used (bad URI, no credentials, unreachable, not shared)."""


def is_uri(location: str | os.PathLike) -> bool:
    return bool(_SCHEME_RE.match(str(location)))


_FILE_URI_RE = re.compile(r"^file:(//(?P<host>[^/]*))?(?P<path>/.*)$", re.I)


def local_path(location: str | os.PathLike) -> str | None:
    """The local filesystem path a location names (a path, or a file: URI), else None (remote).

    A file: URI is the local filesystem under another spelling: it gets everything a path gets
    (atomic writes, the pickle boundary's owner/mode check, no mirroring into a cache).
    """
    s = str(location)
    if not is_uri(s) and not s.lower().startswith("file:"):
        return s
    m = _FILE_URI_RE.match(s)
    if not m:
        return None
    if (m.group("host") or "localhost").lower() != "localhost":
        raise StorageError(f"{s}: a file: URI names a file on another host ({m.group('host')}); use a path on a "
                           f"filesystem every node mounts, or an object-storage URI")
    from urllib.parse import unquote

    return unquote(m.group("path"))


def normalise(location: str | os.PathLike) -> str:
    """A URI without trailing slashes, or an absolute local path (~ expanded; file: URIs become paths)."""
    s = str(location)
    if not s.strip():
        raise StorageError("an empty storage location (give a directory or a storage URI such as s3://bucket/x)")
    local = local_path(s)
    if local is not None:
        return str(Path(local).expanduser().resolve())
    if is_uri(s):
        scheme, rest = s.split("://", 1)
        if not rest.strip("/"):
            raise StorageError(f"{s}: a storage URI needs a bucket (e.g. s3://my-bucket/sweeps/x)")
        return f"{scheme.lower()}://{rest.rstrip('/')}"
    return str(Path(s).expanduser().resolve())


def join(location: str, *parts: str) -> str:
    if is_uri(location):
        return posixpath.join(location.rstrip("/"), *parts)
    return str(Path(location, *parts))


def _describe(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def filesystem(location: str):
    """(pyarrow FileSystem, path inside it) for a location; a StorageError naming the URI on failure."""
    import pyarrow.fs as pafs

    if not is_uri(location):
        return pafs.LocalFileSystem(), str(Path(location).expanduser())
    try:
        return pafs.FileSystem.from_uri(location)
    except Exception as e:  # noqa: BLE001 - pyarrow raises ValueError/OSError/ArrowInvalid
        raise StorageError(f"{location}: cannot open this storage URI ({_describe(e)}); supported: a path, "
                           f"s3://, gs://, hdfs:// or any pyarrow filesystem URI") from e


def _fail(location: str, what: str, exc: BaseException) -> StorageError:
    hint = ""
    if location.startswith("s3://"):
        hint = (" (check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or the instance role, AWS_DEFAULT_REGION, "
                "and AWS_ENDPOINT_URL for an S3-compatible server)")
    return StorageError(f"{location}: cannot {what}: {_describe(exc)}{hint}")


def exists(location: str) -> bool:
    import pyarrow.fs as pafs

    fs, path = filesystem(location)
    try:
        return fs.get_file_info(path).type != pafs.FileType.NotFound
    except Exception as e:  # noqa: BLE001
        raise _fail(location, "read", e) from e


def is_dir(location: str) -> bool:
    import pyarrow.fs as pafs

    fs, path = filesystem(location)
    try:
        return fs.get_file_info(path).type == pafs.FileType.Directory
    except Exception as e:  # noqa: BLE001
        raise _fail(location, "read", e) from e


def read_bytes(location: str) -> bytes:
    fs, path = filesystem(location)
    try:
        with fs.open_input_stream(path) as f:
            return f.read()
    except FileNotFoundError:
        raise
    except Exception as e:  # noqa: BLE001
        if "not found" in str(e).lower() or "NoSuchKey" in str(e):
            raise FileNotFoundError(location) from e
        raise _fail(location, "read", e) from e


def read_text(location: str) -> str:
    return read_bytes(location).decode()


def write_bytes(location: str, data: bytes) -> None:
    """Write a whole file: atomically on a path (temp + rename), one PUT on object storage."""
    if not is_uri(location):
        from sracl_ray.manifest import atomic_write

        atomic_write(location, lambda p: p.write_bytes(data))
        return
    fs, path = filesystem(location)
    try:
        with fs.open_output_stream(path) as f:
            f.write(data)
    except Exception as e:  # noqa: BLE001
        raise _fail(location, "write", e) from e


def write_text(location: str, text: str) -> None:
    write_bytes(location, text.encode())


def upload_file(local: str | Path, location: str) -> None:
    if not is_uri(location):
        from sracl_ray.manifest import atomic_write

        atomic_write(location, lambda p: shutil.copyfile(local, p))
        return
    write_bytes(location, Path(local).read_bytes())


def upload_dir(local: str | Path, location: str) -> list[str]:
    """Copy every file under `local` to `location` (same relative names); returns the names."""
    names = []
    for f in sorted(p for p in Path(local).rglob("*") if p.is_file()):
        rel = f.relative_to(local).as_posix()
        upload_file(f, join(location, rel))
        names.append(rel)
    return names


def delete(location: str) -> None:
    """Remove a file or a whole dir (absent: nothing to do)."""
    import pyarrow.fs as pafs

    fs, path = filesystem(location)
    try:
        info = fs.get_file_info(path)
        if info.type == pafs.FileType.Directory:
            fs.delete_dir(path)
        elif info.type == pafs.FileType.File:
            fs.delete_file(path)
    except Exception as e:  # noqa: BLE001
        raise _fail(location, "delete", e) from e


def list_files(location: str) -> dict[str, tuple[int, float]]:
    """Every file under location: relative posix name -> (size, mtime seconds); {} when absent."""
    import pyarrow.fs as pafs

    fs, path = filesystem(location)
    try:
        if fs.get_file_info(path).type == pafs.FileType.NotFound:
            return {}
        infos = fs.get_file_info(pafs.FileSelector(path, recursive=True))
    except Exception as e:  # noqa: BLE001
        raise _fail(location, "list", e) from e
    base = path.rstrip("/") + "/"
    out = {}
    for info in infos:
        if info.type == pafs.FileType.File and info.path.startswith(base):
            mtime = info.mtime.timestamp() if info.mtime is not None else 0.0
            out[info.path[len(base):]] = (int(info.size or 0), mtime)
    return out


def download(location: str, local: str | Path) -> None:
    """Copy one file to a local path, atomically."""
    from sracl_ray.manifest import atomic_write

    data = read_bytes(location)
    atomic_write(local, lambda p: p.write_bytes(data))


def download_dir(location: str, local: str | Path, keep=lambda rel: True) -> list[str]:
    """Copy the files under location (those `keep(relative name)` accepts) into local; returns them."""
    names = [rel for rel in list_files(location) if keep(rel)]
    for rel in names:
        download(join(location, rel), Path(local) / rel)
    return names


def cache_root(kind: str = "storage") -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sracl-ray" / kind


def mirror(uri: str, root: Path, keep=lambda rel: True) -> tuple[int, int]:
    """Make `root` hold exactly the files under `uri` that `keep` accepts; returns (fetched, total).

    Files whose size and modification time match the last mirror are not fetched again; files gone
    from the URI are removed from `root`.
    """
    remote = {rel: meta for rel, meta in list_files(uri).items() if keep(rel)}
    fetched = 0
    for rel, (size, mtime) in remote.items():
        dest = root / rel
        if dest.exists() and dest.stat().st_size == size and abs(dest.stat().st_mtime - mtime) < 1e-3:
            continue
        download(join(uri, rel), dest)
        os.utime(dest, (mtime, mtime))
        fetched += 1
    for f in [p for p in root.rglob("*") if p.is_file()] if root.exists() else []:
        if f.relative_to(root).as_posix() not in remote:
            f.unlink()
    return fetched, len(remote)


def cache_key(uri: str) -> str:
    return hashlib.sha256(uri.encode()).hexdigest()[:16]


def local_data(location: str | os.PathLike) -> Path:
    """A dataset location as a local path: a URI's files are mirrored into the cache, under a dir
    named like the URI's last part (readers take the dataset's name from it)."""
    if (local := local_path(location)) is not None:
        return Path(local).expanduser()
    uri = normalise(location)
    root = cache_root("data") / cache_key(uri) / (posixpath.basename(uri) or "data")
    fetched, total = mirror(uri, root)
    if not total:
        raise StorageError(f"data.path {uri}: no files there")
    log.info("data.path %s: %d file(s) fetched into %s (%d unchanged)", uri, fetched, root, total - fetched)
    return root


def node_scratch(location: str, *parts: str) -> Path:
    """A node-local working dir for files that live at a URI (fit() writes to a local dir)."""
    import tempfile

    root = Path(os.environ.get("SRACL_SCRATCH") or tempfile.gettempdir()) / "sracl-scratch"
    return root / cache_key(normalise(location)) / Path(*parts)

