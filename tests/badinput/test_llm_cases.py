"""Bad inputs to `sracl-ray llm serve`: each is refused with one line naming the option, before
any server starts (see harness.py for what every case asserts)."""
from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.badinput.harness import Case, check_case


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fake_gguf(tmp: Path) -> list[str]:
    """An existing --model file, so that the case fails on the option it is about."""
    (tmp / "model.gguf").write_bytes(b"GGUF")
    return []


def serve(*args: str) -> list[str]:
    return ["llm", "serve", *args]


PORT = str(free_port())  # a port nothing listens on, for the cases that fail on another option

CASES = [
    Case("host-not-loopback", serve("--host", "0.0.0.0", "--port", PORT), ["--host", "0.0.0.0", "loopback"]),
    Case("host-public-name", serve("--host", "example.com", "--port", PORT), ["--host", "example.com"]),
    Case("port-zero", serve("--port", "0"), ["--port", "0", "1..65535"]),
    Case("port-too-big", serve("--port", "70000"), ["--port", "70000", "1..65535"]),
    Case("port-negative", serve("--port=-5"), ["--port", "-5"]),
    Case("port-not-a-number", serve("--port", "abc"), ["--port", "abc"]),
    Case("vllm-without-model", serve("--engine", "vllm", "--port", PORT), ["vllm", "--model"]),
    Case("unknown-engine", serve("--engine", "ollama", "--port", PORT), ["--engine", "ollama"]),
    Case("model-missing", serve("--model", "/nonexistent.gguf", "--port", PORT), ["--model", "/nonexistent.gguf"]),
    Case("model-is-a-directory", serve("--model", "{tmp}", "--port", PORT), ["--model", "directory"]),
    Case("vllm-model-dir-missing", serve("--engine", "vllm", "--model", "/nonexistent/model-dir", "--port", PORT),
         ["--model", "/nonexistent/model-dir"]),
    Case("n-ctx-zero", serve("--n-ctx", "0", "--port", PORT), ["--n-ctx", "0"]),
    Case("n-threads-zero", serve("--n-threads", "0", "--port", PORT), ["--n-threads", "0"]),
    Case("timeout-negative", serve("--timeout=-1", "--port", PORT), ["--timeout", "-1"]),
    Case("timeout-nan", serve("--timeout", "nan", "--port", PORT), ["--timeout", "nan"]),
    Case("python-missing", serve("--python", "/nonexistent/bin/python", "--model", "model.gguf", "--port", PORT),
         ["--python", "/nonexistent/bin/python"], setup=fake_gguf),
    Case("alias-empty", serve("--alias", " ", "--port", PORT), ["--alias"]),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_llm_serve_case(case, tmp_path):
    check_case(case, tmp_path)


def test_port_in_use(tmp_path):
    """Another program already listens on the port: refused before the server starts."""
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = str(other.getsockname()[1])
        case = Case("port-in-use", serve("--model", "model.gguf", "--port", port), ["--port", port, "in use"],
                    setup=fake_gguf)
        check_case(case, tmp_path)
        assert not llama_servers_on(port), "a server was started although the port was taken"


def llama_servers_on(port: str) -> list[int]:
    """Pids of `llama_cpp.server ... --port PORT` processes (Linux /proc)."""
    found = []
    for d in Path("/proc").iterdir():
        try:
            args = (d / "cmdline").read_bytes().decode(errors="replace").split("\0") if d.name.isdigit() else []
        except OSError:
            continue
        if "llama_cpp.server" in args and port in args:
            found.append(int(d.name))
    return found
