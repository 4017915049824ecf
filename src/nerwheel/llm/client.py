"""An async client for OpenAI-compatible chat completions (vLLM, Ollama, SGLang, llama.cpp, hosted APIs).

Why it is built this way:
- a semaphore bounds the requests in flight and a spacing limiter bounds the
  request rate, because shared inference servers punish bursts with 429s;
- 429, 5xx, timeouts and dropped connections are retried with exponential
  backoff and full jitter (``Retry-After`` wins when the server sends it, up
  to ``max_retry_after_s``: a header asking for an hour is clamped and logged);
  other 4xx answers are the caller's bug and fail at once;
- every question goes through :class:`~nerwheel.llm.cache.ResponseCache` first,
  so reruns and resumed runs cost nothing for what was already answered; only
  *usable* answers are stored (a well-formed completion that the caller's
  ``accept`` check, its parser, takes), so an empty, prose or cut-off answer is
  asked again on the next run instead of being replayed forever, and such an
  answer found in a cache written before is asked again too;
- token usage and cost are summed per run in :class:`RunStats`.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any

import httpx

from nerwheel.errors import NerwheelError
from nerwheel.llm.cache import ResponseCache, cache_key
from nerwheel.llm.config import LLMConfig, api_key_from_env
from nerwheel.redact import redact, split_userinfo

__all__ = ["ChatClient", "ChatResponse", "LLMError", "RunStats"]

log = logging.getLogger(__name__)

RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


class LLMError(NerwheelError, RuntimeError):
    """A request that failed for good (non-retryable status, or retries exhausted)."""


@dataclass(frozen=True, slots=True)
class ChatResponse:
    content: str
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    cached: bool = False

    @property
    def truncated(self) -> bool:
        return self.finish_reason == "length"


@dataclass(slots=True)
class RunStats:
    """What one run asked, got, retried and paid (cache hits cost nothing)."""

    requests: int = 0
    cache_hits: int = 0
    http_calls: int = 0
    retries: int = 0
    failures: int = 0
    truncated: int = 0
    structured_fallbacks: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


Sleep = Callable[[float], Awaitable[None]]


class _RateLimiter:
    """Spaces request starts at least ``1 / rate`` seconds apart.

    ``clock`` and ``sleep`` are the time it reads and the waits it asks for: a test checks the waits
    asked for on a frozen clock, where timing the starts on a loaded machine would be a flaky test.
    """

    def __init__(self, rate: float | None, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Sleep = asyncio.sleep) -> None:
        self.interval = 1.0 / rate if rate else 0.0
        self._next = 0.0
        self._lock = asyncio.Lock()
        self._clock, self._sleep = clock, sleep

    async def wait(self) -> None:
        if not self.interval:
            return
        async with self._lock:
            now = self._clock()
            delay = self._next - now
            self._next = max(now, self._next) + self.interval
        if delay > 0:
            await self._sleep(delay)


def _retry_after(resp: httpx.Response) -> float | None:
    value = resp.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value)
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


def _refuses_schema(resp: httpx.Response) -> bool:
    if resp.status_code not in (400, 422, 501):
        return False
    body = resp.text.lower()
    return "response_format" in body or "json_schema" in body or "schema" in body


class ChatClient:
    """Chat completions with cache, concurrency bound, rate limit, retries and accounting.

    Use as ``async with ChatClient(config, cache=...) as client: await client.complete(messages, schema=...)``.
    ``transport`` lets tests inject an httpx transport; ``rng`` makes jitter reproducible; ``clock`` (the
    rate limiter's) and ``sleep`` (every wait: rate limit and retries) let a test check the waits asked for.
    """

    def __init__(
        self,
        config: LLMConfig,
        *,
        cache: ResponseCache | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.config = config
        self.cache = cache
        self.stats = RunStats()
        self._rng = rng or random.Random()
        self._sem = asyncio.Semaphore(config.max_in_flight)
        self._sleep = sleep
        self._limiter = _RateLimiter(config.requests_per_second, clock=clock, sleep=sleep)
        self._structured = config.structured != "off"
        headers = {"Content-Type": "application/json"}
        key = api_key_from_env()
        if key:
            headers["Authorization"] = f"Bearer {key}"
        timeout = httpx.Timeout(config.read_timeout, connect=config.connect_timeout)
        # user:password in the URL becomes HTTP basic auth, so the URL that is logged and quoted holds none
        self._url, userinfo = split_userinfo(config.chat_url)
        auth = httpx.BasicAuth(*userinfo) if userinfo is not None and "Authorization" not in headers else None
        self._http = httpx.AsyncClient(headers=headers, timeout=timeout, transport=transport, auth=auth,
                                       limits=httpx.Limits(max_connections=config.max_in_flight))

    async def __aenter__(self) -> ChatClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    def request_body(self, messages: list[dict[str, str]], schema: dict[str, Any] | None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.config.model,
            "messages": messages,
            "temperature": self.config.temperature,
            "max_tokens": self.config.max_tokens,
        }
        if schema is not None and self._structured:
            body["response_format"] = {"type": "json_schema",
                                       "json_schema": {"name": "nerwheel", "schema": schema, "strict": True}}
        return body

    async def complete(
        self, messages: list[dict[str, str]], *, schema: dict[str, Any] | None = None,
        accept: Callable[[ChatResponse], bool] | None = None,
    ) -> ChatResponse:
        """One chat completion: from the cache when it was answered usably before, else from the server.

        ``accept`` says whether an answer is usable (the caller parses it); only usable answers are
        cached, and a cached one it refuses is asked again. A completion without ``choices[0].message``
        raises :class:`LLMError` and is not cached either.
        """
        self.stats.requests += 1
        body = self.request_body(messages, schema)
        key = cache_key(self.config.model, body)
        if self.cache is not None:
            keys = [key]
            if "response_format" in body and self.config.structured == "auto":
                # answered prompt-only by an earlier run that fell back
                keys.append(cache_key(self.config.model, {k: v for k, v in body.items() if k != "response_format"}))
            for k in keys:
                if (hit := self.cache.get(k)) is not None and (cached := self._usable(hit, accept)) is not None:
                    self.stats.cache_hits += 1
                    return cached
        async with self._sem:
            data, body = await self._post_with_retries(body, schema)
        resp = self._response(data, cached=False)
        if self.cache is not None and (accept is None or accept(resp)):
            # stored under the question asked and, after a structured-output fallback, under the one answered
            self.cache.put(key, self.config.model, body, data)
            if (answered := cache_key(self.config.model, body)) != key:
                self.cache.put(answered, self.config.model, body, data)
        self.stats.prompt_tokens += resp.prompt_tokens
        self.stats.completion_tokens += resp.completion_tokens
        self.stats.cost += (resp.prompt_tokens * self.config.price_prompt_per_1k
                            + resp.completion_tokens * self.config.price_completion_per_1k) / 1000.0
        self.stats.truncated += int(resp.truncated)
        return resp

    def _usable(self, data: dict[str, Any], accept: Callable[[ChatResponse], bool] | None) -> ChatResponse | None:
        """A cached answer as a response, or ``None`` when it is not usable (stored by an older run)."""
        try:
            resp = self._response(data, cached=True)
        except LLMError:
            return None
        return resp if accept is None or accept(resp) else None

    def _response(self, data: dict[str, Any], *, cached: bool) -> ChatResponse:
        try:
            choice = data["choices"][0]
            content = choice.get("message", {}).get("content") or ""
        except (KeyError, IndexError, TypeError, AttributeError):
            raise LLMError(f"malformed chat completion (no choices[0].message): {str(data)[:200]}") from None
        usage = data.get("usage") or {}
        return ChatResponse(content=content, finish_reason=choice.get("finish_reason"),
                            prompt_tokens=int(usage.get("prompt_tokens") or 0),
                            completion_tokens=int(usage.get("completion_tokens") or 0), cached=cached)

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            cap = self.config.max_retry_after_s
            if retry_after > cap:
                log.warning("server asked to wait %.0fs (Retry-After); waiting %.0fs instead (max_retry_after_s)",
                            retry_after, cap)
                return cap
            return retry_after
        cap = min(self.config.backoff_max, self.config.backoff_base * (2**attempt))
        return self._rng.uniform(0, cap)

    async def _post_with_retries(
        self, body: dict[str, Any], schema: dict[str, Any] | None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        attempt = 0
        while True:
            await self._limiter.wait()
            self.stats.http_calls += 1
            retry_after: float | None = None
            try:
                resp = await self._http.post(self._url, json=body)
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                problem = f"{type(exc).__name__}: {exc}"
            else:
                if resp.status_code == 200:
                    try:
                        return resp.json(), body
                    except ValueError:
                        problem = f"HTTP 200 with a body that is not JSON: {resp.text[:200]!r}"
                elif ("response_format" in body and self.config.structured == "auto" and _refuses_schema(resp)):
                    log.warning("server refused response_format (HTTP %s); continuing with prompt-only JSON",
                                resp.status_code)
                    self._structured = False
                    self.stats.structured_fallbacks += 1
                    body = self.request_body(body["messages"], schema)
                    continue
                elif resp.status_code in RETRY_STATUS:
                    problem = f"HTTP {resp.status_code}: {resp.text[:200]}"
                    retry_after = _retry_after(resp)
                else:
                    self.stats.failures += 1
                    raise LLMError(f"HTTP {resp.status_code} from {self._url}: {redact(resp.text[:300])}")
            if attempt >= self.config.max_retries:
                self.stats.failures += 1
                raise LLMError(f"giving up after {attempt + 1} tries on {self._url}: {redact(problem)}")
            delay = self._backoff(attempt, retry_after)
            log.info("retrying in %.2fs after %s", delay, problem)
            self.stats.retries += 1
            attempt += 1
            await self._sleep(delay)
