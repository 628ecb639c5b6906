"""An API key never lands on disk or on screen: the scrubber, and the real CLI against a loopback
server that echoes the key back (in a 401 body, a 500 body and a 200 answer)."""
from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import pickle
import secrets as pysecrets
import shutil
import subprocess
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote, quote_plus

import pandas as pd
import pytest

from sracl_ray.secrets import REDACTED, ScrubFilter, Secret, scrub

REPO = Path(__file__).resolve().parents[2]


def new_key() -> str:
    """A unique key whose URL-encoded form differs from the raw one ('/' and '+')."""
    return f"sk-{pysecrets.token_hex(8)}/{pysecrets.token_hex(8)}+{pysecrets.token_hex(8)}"


def leak_forms(key: str) -> list[str]:
    """Every form of the key the outputs are searched for (each random part alone, too)."""
    b64 = [enc(key.encode()).decode() for enc in (base64.b64encode, base64.urlsafe_b64encode)]
    parts = key.removeprefix("sk-").replace("+", "/").split("/")
    return sorted({key, quote(key, safe=""), quote_plus(key), *b64, *(b.rstrip("=") for b in b64), *parts})


def assert_clean(data: bytes | str, key: str, where: str) -> None:
    blob = data.encode() if isinstance(data, str) else data
    for form in leak_forms(key):
        assert form.encode() not in blob, f"{where} holds the key as {form!r}"
        assert form.lower().encode() not in blob.lower(), f"{where} holds the key as {form!r} (any case)"


# ---------------------------------------------------------------- the scrubber


def test_scrub_removes_the_key_in_every_form():
    key = new_key()
    b64 = base64.b64encode(key.encode()).decode()
    text = (f"raw {key}; url {quote(key, safe='')}; url2 {quote_plus(key)}; b64 {b64}; "
            '; json {"k": "' + key.replace("/", "\\/") + '"}')
    out = scrub(text, [key])
    assert_clean(out, key, "scrubbed text")
    assert out.startswith(f"raw {REDACTED};") and out.count(REDACTED) == 5
    assert_clean(scrub(text, [Secret(key)]), key, "scrubbed with a Secret")


@pytest.mark.parametrize("text, kept", [
    ("Authorization: Bearer abc.def-ghi", "Authorization: ***"),
    ("{'Authorization': 'Bearer abc123', 'X': 'y'}", "{'Authorization': '***', 'X': 'y'}"),
    ('{"authorization":"Basic dXNlcjpwdw=="}', '{"authorization":"***"}'),
    ("Proxy-Authorization: Token zzz999", "Proxy-Authorization: ***"),
    ("x-api-key: q1w2e3r4", "x-api-key: ***"),
    ("got bearer tok_123456 from header", "got bearer *** from header"),
    ("GET /v1/models?api_key=abc123&x=1", "GET /v1/models?api_key=***&x=1"),
    ('{"api_key": "abc123", "n": 1}', '{"api_key": "***", "n": 1}'),
    ('{"access_token":"abc"}', '{"access_token":"***"}'),
    ("password=hunter22 user=bob", "password=*** user=bob"),
])
def test_scrub_removes_credential_values(text, kept):
    assert scrub(text) == kept


def test_scrub_leaves_ordinary_text_alone():
    text = ('HTTP 500: {"usage": {"completion_tokens": 10, "prompt_tokens": 3}, "max_tokens=200": 1} '
            "The user likes lipstick and tokens of appreciation. (1 attempts)")
    assert scrub(text) == text
    assert scrub(None) == "" and scrub("") == ""
    # patterns=False (answer texts): only the known secrets themselves go
    key = new_key()
    assert scrub(f"secret: lipstick, Bearer of news, {key}", [key], patterns=False) == \
        f"secret: lipstick, Bearer of news, {REDACTED}"


def test_secret_never_shows_and_registers_where_unpickled():
    key = new_key()
    s = Secret(key)
    assert key not in repr(s) and key not in str(s) and key not in f"{s!r} {[s]} {dict(k=s)}"
    clone = pickle.loads(pickle.dumps(s))
    assert clone.get() == key and repr(clone) == "Secret(***)"
    assert scrub(f"echo {key}") == f"echo {REDACTED}"  # registered: no need to pass it


def test_env_keys_are_scrubbed_without_being_passed(monkeypatch):
    key = new_key()
    monkeypatch.setenv("SOME_VENDOR_API_KEY", key)
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false-but-long")  # not a key: name does not match
    assert scrub(f"x {key} y") == f"x {REDACTED} y"
    assert scrub("false-but-long") == "false-but-long"


def test_log_filter_scrubs_messages_and_tracebacks():
    key = new_key()
    Secret(key)
    record = logging.LogRecord("x", logging.WARNING, __file__, 1, "sent %s with %s", (key, "Bearer abc"), None)
    try:
        raise RuntimeError(f"boom {key}")
    except RuntimeError:
        record.exc_info = sys.exc_info()
    assert ScrubFilter().filter(record)
    text = logging.Formatter().format(record)
    assert_clean(text, key, "log line")
    assert "sent *** with Bearer ***" in text and "boom ***" in text


def test_backend_repr_and_store_scrub(tmp_path):
    from sracl_ray.semantic.backends import OpenAIChat
    from sracl_ray.semantic.store import SummaryStore

    key = new_key()
    chat = OpenAIChat(f"http://127.0.0.1:1/v1?api_key={key}", "m", {}, Secret(key), 1, 1.0, 0, 0.1)
    assert_clean(repr(chat), key, "repr")
    chat.loop.close()
    store = SummaryStore(tmp_path)
    store.write_shard(pd.DataFrame({"key": ["a", "b"], "text": ["", f"answer {key}"],
                                    "error": [f"HTTP 401: Authorization: Bearer {key}", ""], "model": [key, "m"]}))
    for path in tmp_path.rglob("*.parquet"):
        assert_clean(path.read_bytes(), key, str(path))
    df = store.read().set_index("key")
    assert df.loc["a", "error"] == "HTTP 401: Authorization: ***" and df.loc["b", "text"] == f"answer {REDACTED}"


# ---------------------------------------------------------------- the real CLI against a leaky server


class LeakyOpenAI:
    """An OpenAI-compatible server on 127.0.0.1 that echoes the caller's key back.

    Each prompt (by hash) gets: 401 with the Authorization header and the key in a JSON body,
    500 with the key raw / URL-encoded / base64 (the raw one just past 200 characters, where a
    naive truncation would cut it in half), or 200 with a summary (half of them quoting the key).
    """

    def __init__(self):
        self.auth: list[str] = []
        self.kinds: dict[str, int] = {"401": 0, "500": 0, "200": 0, "200-echo": 0}
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest's output clean
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                auth = self.headers.get("Authorization", "")
                outer.auth.append(auth)
                key = auth.removeprefix("Bearer ")
                prompt = body["messages"][-1]["content"]
                kind = ("401", "500", "200", "200-echo")[hashlib.sha256(prompt.encode()).digest()[0] % 4]
                outer.kinds[kind] += 1
                if kind == "401":
                    payload = {"error": {"message": f"Incorrect API key provided: {key}. You sent "
                                                    f"Authorization: {auth}", "api_key": key,
                                         "headers": {"Authorization": auth}}}
                    self._send(401, json.dumps(payload))
                elif kind == "500":
                    b64 = base64.b64encode(key.encode()).decode()
                    self._send(500, "E" * 195 + f" {key} url={quote(key, safe='')} b64={b64}")
                else:
                    text = "Likes lipstick and nail polish." + (f" (debug: key {key})" if kind == "200-echo" else "")
                    self._send(200, json.dumps({
                        "id": "x", "object": "chat.completion", "model": body.get("model", "m"),
                        "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                     "finish_reason": "stop"}],
                        "usage": {"prompt_tokens": 10, "completion_tokens": 6}}))

            def _send(self, status: int, text: str):
                data = text.encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def leaky_server():
    server = LeakyOpenAI()
    yield server
    server.close()


@pytest.fixture
def ray_tmp():
    """A short, private Ray temp dir (its logs are searched too; socket paths must stay short)."""
    path = tempfile.mkdtemp(prefix="rk")
    yield Path(path)
    shutil.rmtree(path, ignore_errors=True)


def cli_args(server: LeakyOpenAI, out: Path) -> list[str]:
    sets = [f"summary.base_url={server.base_url}", "summary.backend=openai", "summary.retries=0",
            "data.max_users=5",
            # half the prompts fail on purpose and a rerun retries only those: never stop on a streak
            "summary.max_consecutive_failures=0"]
    return ["--out", str(out)] + [a for s in sets for a in ("--set", s)]


def check_written(server: LeakyOpenAI, key: str, roots: list[Path]) -> None:
    """The key reached the server, every kind of echo happened, and no file under roots holds it."""
    assert server.auth and set(server.auth) == {f"Bearer {key}"}
    assert all(server.kinds.values()), server.kinds
    stored = pd.read_parquet(roots[0] / "summaries" / "summaries.parquet")
    errors = stored.loc[stored["error"] != "", "error"]
    assert errors.str.startswith("HTTP 401").any() and errors.str.startswith("HTTP 500").any()
    assert errors.str.contains(REDACTED, regex=False).all()  # the scrubber did cut something from each
    assert stored["text"].str.contains(f"key {REDACTED}", regex=False).any()
    searched = 0
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file() and not path.is_symlink() and path.stat().st_size < 200_000_000:
                assert_clean(path.read_bytes(), key, str(path))
                searched += 1
    assert searched > 10


def test_cli_in_process_never_stores_or_prints_the_key(ray_local, leaky_server, tmp_path, capfd, caplog,
                                                       monkeypatch):
    """The CLI's own code path (sracl_ray.cli.main) in this process, on the session's Ray."""
    import ray

    from sracl_ray.cli import main
    from sracl_ray.semantic.summaries import SummariesIncomplete

    key = new_key()
    monkeypatch.setenv("OPENAI_API_KEY", key)
    out = tmp_path / "out"
    common = cli_args(leaky_server, out)
    caplog.set_level(logging.DEBUG)
    assert main(["prepare", *common]) == 0
    assert main(["summarize", *common]) == 3
    with pytest.raises(SummariesIncomplete):
        main(["summarize", *common, "--debug"])
    assert main(["embed", *common]) == 3
    printed = capfd.readouterr()
    assert_clean(printed.out + printed.err + caplog.text, key, "printed output and logs")
    assert "summaries are not usable" in printed.err and "HTTP 401" in printed.err
    session = Path(ray._private.worker._global_node.get_session_dir_path())
    check_written(leaky_server, key, [out, session / "logs"])


@pytest.mark.slow
def test_cli_never_stores_or_prints_the_key(leaky_server, ray_tmp, tmp_path):
    """`sracl-ray prepare / summarize / embed` as subprocesses (with and without --debug), each on
    its own Ray whose temp dir (logs included) is searched too."""
    key = new_key()
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OPENAI_API_KEY": key, "SRACL_RAY_NUM_CPUS": "1",
           "RAY_TMPDIR": str(ray_tmp), "RAY_AUTH_MODE": "disabled", "HF_HUB_OFFLINE": "1"}
    common = cli_args(leaky_server, out)

    def cli(*args: str) -> subprocess.CompletedProcess:
        proc = subprocess.run([sys.executable, "-m", "sracl_ray.cli", *args], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=600)
        printed = proc.stdout + proc.stderr
        assert_clean(printed, key, f"output of {args[0]} {' '.join(a for a in args if a.startswith('-'))}")
        return proc

    assert cli("prepare", *common).returncode == 0
    first = cli("summarize", *common)
    assert first.returncode == 3, first.stderr[-3000:]  # some prompts failed: incomplete
    again = cli("summarize", *common, "--debug")  # the failures again, with debug logs and the traceback
    assert again.returncode != 0 and "SummariesIncomplete" in again.stderr, again.stderr[-3000:]
    for debug in ([], ["--debug"]):
        embed = cli("embed", *common, *debug)
        assert embed.returncode == (1 if debug else 3), embed.stderr[-3000:]
        line = [ln for ln in embed.stderr.splitlines() if "summaries are not usable" in ln]
        assert line and "failed" in line[0] and "HTTP 401" in embed.stderr, embed.stderr[-3000:]
    assert any(ray_tmp.rglob("raylet.out")), "Ray did not use RAY_TMPDIR: its logs were not searched"
    check_written(leaky_server, key, [out, ray_tmp])


KEY = "sk-proj-ABCDEFGHIJKLMNOPQRSTUV123"


@pytest.mark.parametrize("body", [
    "echo: " + KEY[:10] + "\n   " + KEY[10:],  # wrapped across lines
    "echo: " + "".join(f"&#{ord(c)};" for c in KEY),  # HTML character references
    '{"echo": "' + "".join(f"\\u{ord(c):04x}" for c in KEY) + '"}',  # JSON \\u escapes
    "echo: '" + KEY[:8] + "' + '" + KEY[8:] + "'",  # quoted and concatenated
    "echo: " + "".join(f"%{ord(c):02X}" for c in KEY),  # fully %-encoded
    "echo: " + "%2525".join([KEY[:5], KEY[5:]]).replace("%2525", ""),  # plain, as a control
])
def test_scrub_sees_through_every_decoding(body):
    clean = scrub(body, [KEY])
    assert KEY not in clean and KEY[8:] not in clean and "ABCDEFGHIJ" not in clean


def test_scrub_replaces_values_never_variable_names():
    assert scrub("no API key in $OPENAI_API_KEY: requests carry no header") == \
        "no API key in $OPENAI_API_KEY: requests carry no header"
    assert scrub("set ${HF_TOKEN}=x first") == "set ${HF_TOKEN}=x first"
    assert scrub("OPENAI_API_KEY=abcdefgh123 api_key: zzz") == "OPENAI_API_KEY=*** api_key: ***"
