"""Keep API keys out of everything the tool stores or prints: a hiding `Secret` and one scrubber.

`scrub(text, secrets)` is applied to every error body, exception text and log message of the LLM
backends before it is stored (summaries.parquet's `error` column) or printed.  It replaces with
`***`:
- each known secret's value, and its URL-encoded, base64 and JSON-escaped forms;  the known
  secrets are the ones passed in, every `Secret` built in this process (also one unpickled in a
  Ray actor), and the values of environment variables named like keys (`*_API_KEY`, `*_TOKEN`,
  `*_SECRET*`, `*PASSWORD*`), so a process that never read the key (e.g. `embed`) still hides it;
- the value of any `Authorization:` / `Proxy-Authorization:` / `X-Api-Key:` header, any
  `Bearer <token>`, any `api_key=...` / `"api_key": "..."` / `token=...` / `password=...`, and
  anything shaped like an OpenAI (`sk-...`) or Hugging Face (`hf_...`) key.  A variable *name*
  (`$OPENAI_API_KEY: ...`) is not a value: only what follows `NAME=` / `NAME:` without a `$` is.
- a whole text in which a known secret shows only after decoding (HTML entities, %-escapes,
  `\\uXXXX`, backslashes, quotes or whitespace cut into it): the text is withheld, since the
  secret cannot be cut out of it piece by piece.
"""
from __future__ import annotations

import base64
import html
import json
import logging
import os
import re
from typing import Callable, Iterable
from urllib.parse import quote, quote_plus, unquote, unquote_plus

REDACTED = "***"
WITHHELD = "*** (withheld: the text held a secret in an encoded or split form)"
MIN_ENV_SECRET_LEN = 8  # shorter values of key-like variables are flags ("1", "false"), not keys

_registered: set[str] = set()
_SECRET_ENV = re.compile(r"(?:^|_)(?:API_?KEY|ACCESS_KEY|TOKEN|SECRET|PASSWORD|PASSWD)(?:$|_)", re.I)
_HEADER = re.compile(r"""(?i)\b((?:proxy-)?authorization|x-api-key|api-key)(["']?\s*[:=]\s*["']?)"""
                     r"""(?:(?:bearer|basic|token|digest)\s+)?[^\s"',;}\]&]+""")
_KEY_SHAPED = re.compile(r"\b(?:sk|rk|pk)-[A-Za-z0-9_\-]{16,}|\bhf_[A-Za-z0-9]{20,}")  # OpenAI / HF styles
_BEARER = re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9\-._~+/=%:]+")
_KEY_VALUE = re.compile(
    r"""(?i)((?<![A-Za-z0-9])(?:api[_-]?key|access[_-]?token|auth[_-]?token|refresh[_-]?token|token"""
    r"""|client[_-]?secret|secret[_-]?key|secret|password|passwd)["']?\s*[:=]\s*["']?)[^\s"',;&}\]]+""")


class Secret:
    """A string that never shows itself in repr/str (logs, tracebacks, Ray task descriptions)."""

    def __init__(self, value: str):
        self._value = value or ""
        register(self._value)

    def get(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret(***)" if self._value else "Secret()"

    __str__ = __repr__

    def __reduce__(self):  # unpickled (e.g. in a Ray actor) through __init__, so it registers there too
        return (Secret, (self._value,))


def register(value: str) -> None:
    """Remember a secret value: every later scrub() in this process hides it."""
    if value and value.strip():
        _registered.add(value)


def env_secrets() -> set[str]:
    """Values of environment variables whose names say they hold a key, token or password."""
    return {v for k, v in os.environ.items() if _SECRET_ENV.search(k) and len(v.strip()) >= MIN_ENV_SECRET_LEN}


def _forms(value: str) -> set[str]:
    """The raw value and the encodings it may be echoed in (URL, base64, JSON-escaped)."""
    raw = value.encode()
    forms = {value, quote(value, safe=""), quote(value), quote_plus(value), value.replace("/", "\\/"),
             html.escape(value), json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]}
    for enc in (base64.b64encode, base64.urlsafe_b64encode):
        b64 = enc(raw).decode()
        forms |= {b64, b64.rstrip("=")}
    return {f for f in forms if f}


_UNICODE_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})")
_NOISE = re.compile(r"""[\s"'\\+]""")  # what a split, quoted or wrapped value has cut into it


def _decodings(text: str) -> set[str]:
    """`text` as a reader of each encoding a body may carry would see it, each also with the
    whitespace, quotes, backslashes and `+` that split or wrap a value removed."""
    once = {text, html.unescape(text), unquote(text), unquote_plus(text),
            _UNICODE_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text)}
    twice = {html.unescape(unquote(t)) for t in once} | once
    return twice | {_NOISE.sub("", t) for t in twice}


def _key_value(match: re.Match) -> str:
    """`api_key=VALUE` -> `api_key=***`, but `$OPENAI_API_KEY: text` is a variable's name, kept."""
    start = match.start()
    head = match.string[max(0, start - 64):start]
    if re.search(r"\$\{?[A-Za-z0-9_]*$", head):
        return match.group(0)
    return match.group(1) + REDACTED


def scrubber(secrets: Iterable[str | Secret] = (), patterns: bool = True) -> Callable[[object], str]:
    """scrub() with the known secrets gathered and compiled once, for many texts."""
    values = {s.get() if isinstance(s, Secret) else s for s in secrets} | _registered | env_secrets()
    forms = sorted({f for v in values if v and v.strip() for f in _forms(v)}, key=len, reverse=True)
    # longest first, so a key is replaced whole rather than leaving an encoded tail
    literal = re.compile("|".join(map(re.escape, forms)), re.I) if forms else None
    hidden = sorted({_NOISE.sub("", v).lower() for v in values if v and len(v.strip()) >= MIN_ENV_SECRET_LEN})

    def clean(text: object) -> str:
        text = "" if text is None else str(text)
        if not text:
            return text
        if literal is not None:
            text = literal.sub(REDACTED, text)
        if hidden and any(h in d.lower() for d in _decodings(text) for h in hidden):
            return WITHHELD
        if not patterns:
            return text
        text = _HEADER.sub(rf"\1\2{REDACTED}", text)
        text = _KEY_SHAPED.sub(REDACTED, text)
        text = _BEARER.sub(rf"\1{REDACTED}", text)
        return _KEY_VALUE.sub(_key_value, text)

    return clean


def scrub(text: object, secrets: Iterable[str | Secret] = (), patterns: bool = True) -> str:
    """`text` with every known secret (in any of its forms) and, with `patterns`, every credential
    value (Authorization header, Bearer token, api_key=..., sk-... keys) replaced by ***."""
    return scrubber(secrets, patterns)(text)


class ScrubFilter(logging.Filter):
    """A logging filter that scrubs each record's message (and exception text) before it is emitted."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken format string: let logging report it as usual
            return True
        clean = scrub(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = scrub(logging.Formatter().formatException(record.exc_info))
        return True


def install_log_scrubber(*loggers: logging.Logger) -> None:
    """Scrub every record that reaches these loggers' own handlers or filters (idempotent)."""
    for lg in loggers:
        if not any(isinstance(f, ScrubFilter) for f in lg.filters):
            lg.addFilter(ScrubFilter())
