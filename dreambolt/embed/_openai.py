"""The OpenAI-compatible provider: the official async SDK, retried by `dreambolt.backoff`.

The SDK's own retries are off (``max_retries=0``). Every request goes through
`OpenAIEmbedder._request`, which applies the retry policy (the same `Backoff` as S3's: full
jitter, `Retry-After` up to its ceiling) and translates SDK errors into `EmbeddingError` in one
place (`_translate`), by exception class, HTTP status and error code.

Logging, on the logger ``dreambolt.embed``: each retry at INFO (model, HTTP status and error code,
attempt n of max, the wait); each request at DEBUG (model, inputs, status, elapsed time). Lines
never carry the API key, texts or the server's message.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time
from collections.abc import AsyncGenerator
from typing import TypeVar, cast

import numpy as np
import openai
from tenacity import RetryCallState

from dreambolt.backoff import Backoff, parse_retry_after
from dreambolt.embed._base import BatchLimits, EmbedStats, Vectors
from dreambolt.embed._tokens import BatchPlanner, TokenCounter, default_counter, prepare
from dreambolt.errors import EmbeddingAuthError, EmbeddingError, redact

__all__ = ["OpenAIEmbedder", "is_retryable", "retry_after"]

log = logging.getLogger("dreambolt.embed")
T = TypeVar("T")
_COUNT_CHUNK = 4096  # texts counted per worker-thread call
_RETRYABLE_STATUS = frozenset((408, 409, 429))
# A 429 that waiting cannot fix: the account is out of credit.
_FATAL_CODES = frozenset(("insufficient_quota", "billing_hard_limit_reached"))
_KEY_HINT = (
    "check OPENAI_API_KEY (or the key of the compatible server given by --embed-base-url / "
    "OPENAI_BASE_URL)"
)


def _error_code(exc: openai.APIStatusError) -> str | None:
    body = exc.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("code"), str):
            return cast(str, inner["code"])
    code = getattr(exc, "code", None)
    return code if isinstance(code, str) else None


def is_retryable(exc: BaseException) -> bool:
    """Tell whether a failed embeddings request is worth another attempt (429, 5xx, network)."""
    if isinstance(exc, openai.APIConnectionError):  # includes timeouts
        return True
    if isinstance(exc, openai.APIStatusError):
        if _error_code(exc) in _FATAL_CODES:
            return False
        return exc.status_code in _RETRYABLE_STATUS or exc.status_code >= 500
    return False


def retry_after(exc: BaseException | None) -> float | None:
    """Seconds the server asked us to wait (``retry-after-ms`` or ``retry-after``), if any."""
    if not isinstance(exc, openai.APIStatusError):
        return None
    headers = exc.response.headers
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        if scale != 1.0:
            try:
                return max(0.0, float(value) * scale)
            except ValueError:
                continue
        return parse_retry_after(value)  # seconds, or an HTTP-date
    return None


class OpenAIEmbedder:
    """Embeds through an OpenAI-compatible ``/v1/embeddings`` endpoint.

    Requests are cut at `limits`, at most `concurrency` are in flight (shared by all concurrent
    `embed` calls), and each is tried up to ``max_retries + 1`` times: 429, 408, 409, 5xx and
    connection errors wait a random time in [0, backoff_factor * 2**(n-1)] ("full jitter"),
    capped by `max_backoff`, or the server's ``Retry-After`` if longer (up to
    `dreambolt.backoff.MAX_RETRY_AFTER`, 60 s). 401/403 and other 4xx
    raise `EmbeddingError` at once.
    """

    def __init__(
        self,
        model: str,
        *,
        api_model: str,
        api_key: str,
        base_url: str | None,
        dim: int | None = None,
        concurrency: int = 4,
        max_retries: int = 5,
        backoff_factor: float = 1.0,
        max_backoff: float = 30.0,
        timeout: float = 120.0,
        limits: BatchLimits | None = None,
        counter: TokenCounter | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        if max_retries < 0 or backoff_factor < 0 or max_backoff < 0:
            raise ValueError("max_retries, backoff_factor and max_backoff must be >= 0")
        self.backoff = Backoff(max_retries, backoff_factor, max_backoff)
        self.model = model
        self.api_model = api_model
        self.dim = dim
        self.base_url = base_url
        self.concurrency = concurrency
        self.max_retries = max_retries
        self.max_backoff = max_backoff
        self.timeout = timeout
        self.limits = limits or BatchLimits()
        self._counter = counter
        self._api_key = api_key
        self._client: openai.AsyncOpenAI | None = None
        self._slots: asyncio.Semaphore | None = None

    def __repr__(self) -> str:
        return f"OpenAIEmbedder(model={self.model!r}, base_url={self.base_url!r})"

    @property
    def counter(self) -> TokenCounter:
        """How inputs are counted and truncated (cl100k_base when available)."""
        if self._counter is None:
            self._counter = default_counter()
        return self._counter

    def _connect(self) -> tuple[openai.AsyncOpenAI, asyncio.Semaphore]:
        if self._client is None or self._slots is None:
            self._client = openai.AsyncOpenAI(
                api_key=self._api_key,
                base_url=self.base_url,
                max_retries=0,  # tenacity is the only retry layer
                timeout=self.timeout,
            )
            self._slots = asyncio.Semaphore(self.concurrency)
        return self._client, self._slots

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def embed(self, texts: list[str], *, stats: EmbedStats | None = None) -> Vectors:
        stats = stats if stats is not None else EmbedStats()
        if not texts:
            return np.empty((0, self.dim or 0), dtype=np.float32)
        if not all(texts):
            raise ValueError("embed() takes non-empty texts only (embed_texts skips empty ones)")
        tasks: list[asyncio.Task[Vectors]] = []
        failed = asyncio.Event()  # set by the first request that fails for good
        try:
            # Requests start as soon as their inputs are counted, while the rest are counted.
            async with contextlib.aclosing(self._batches(texts, stats)) as batches:
                async for batch, tokens in batches:
                    if failed.is_set():
                        break  # a request failed for good: send no more
                    request = self._request(batch, tokens, stats, failed)
                    tasks.append(asyncio.create_task(request))
            parts = await _first_error_or_all(tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        return np.concatenate(parts) if len(parts) > 1 else parts[0]

    async def _batches(
        self, texts: list[str], stats: EmbedStats
    ) -> AsyncGenerator[tuple[list[str], int], None]:
        """Requests' inputs (truncated where needed) and token counts, in order."""
        planner = BatchPlanner(self.limits)
        counter, limit = self.counter, self.limits.max_input_tokens
        ready: list[str] = []
        counts: list[int] = []
        for start in range(0, len(texts), _COUNT_CHUNK):
            chunk = texts[start : start + _COUNT_CHUNK]
            part = await asyncio.to_thread(prepare, chunk, counter, limit)
            stats.truncated += part.truncated
            ready += part.texts
            counts += part.tokens
            for n in part.tokens:
                done = planner.add(n)
                if done is not None:
                    yield ready[done.start : done.stop], sum(counts[done.start : done.stop])
        last = planner.finish()
        if last is not None:
            yield ready[last.start : last.stop], sum(counts[last.start : last.stop])

    async def _request(
        self, batch: list[str], tokens: int, stats: EmbedStats, failed: asyncio.Event
    ) -> Vectors:
        client, slots = self._connect()
        retries = 0

        def count_retry(state: RetryCallState) -> None:
            nonlocal retries
            retries += 1
            stats.retries += 1
            self._log_retry(state, len(batch))

        retrying = self.backoff.retrying(
            retry=is_retryable, retry_after=retry_after, before_sleep=count_retry
        )
        body = {"model": self.api_model, "input": batch, "encoding_format": "base64"}
        async with slots:  # held across retries: a throttled request keeps its slot
            if failed.is_set():  # another request of this call failed for good: do not send
                raise asyncio.CancelledError
            try:
                async for attempt in retrying:
                    with attempt:
                        started = time.monotonic()
                        try:
                            # The SDK's `embeddings.create` builds a pydantic object per vector
                            # and walks every input to "transform" it: ~100 us per text, more
                            # than the request itself. `post(cast_to=object)` keeps its auth,
                            # URL handling and error mapping and hands back the decoded JSON.
                            payload = await client.post("/embeddings", body=body, cast_to=object)
                        except openai.OpenAIError as exc:
                            self._log_request(len(batch), _describe(exc), started)
                            raise
                        self._log_request(len(batch), "HTTP 200", started)
            except openai.OpenAIError as exc:
                failed.set()  # before the slot is released to a waiting request
                raise self._translate(exc, retries=retries) from exc
        vectors, usage = self._decode(payload, len(batch))
        stats.tokens_sent += usage if usage is not None else tokens
        stats.requests += 1
        return vectors

    def _log_retry(self, state: RetryCallState, inputs: int) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        wait = state.next_action.sleep if state.next_action is not None else 0.0
        log.info(
            "embeddings %s (%d inputs): %s on attempt %d of %d; retrying in %.2f s",
            self.model,
            inputs,
            _describe(error),
            state.attempt_number,
            self.max_retries + 1,
            wait,
        )

    def _log_request(self, inputs: int, outcome: str, started: float) -> None:
        if log.isEnabledFor(logging.DEBUG):
            elapsed = time.monotonic() - started
            log.debug(
                "embeddings %s (%d inputs) at %s: %s in %.3f s",
                self.model,
                inputs,
                self.base_url or "api.openai.com",
                outcome,
                elapsed,
            )

    def _decode(self, payload: object, n: int) -> tuple[Vectors, int | None]:
        """The (n, dim) vectors of an embeddings response, in input order, and its token usage."""
        data = payload.get("data") if isinstance(payload, dict) else None
        if not isinstance(data, list) or len(data) != n:
            got = len(data) if isinstance(data, list) else "no"
            raise EmbeddingError(
                f"{self.model}: the embeddings API returned {got} vectors for {n} inputs"
            )
        try:
            items = sorted(data, key=lambda item: int(item["index"]))
            raw = [item["embedding"] for item in items]
            if [int(item["index"]) for item in items] != list(range(n)):
                raise ValueError("indexes are not 0..n-1")
            if all(isinstance(r, str) for r in raw):
                blob = b"".join(base64.b64decode(r) for r in raw)
                flat = np.frombuffer(blob, dtype="<f4").astype(np.float32, copy=False)
            else:  # a compatible server that ignores encoding_format=base64
                flat = np.asarray(raw, dtype=np.float32).reshape(-1)
        except (KeyError, TypeError, ValueError) as exc:
            raise EmbeddingError(
                f"{self.model}: the embeddings API returned a malformed response ({exc})"
            ) from exc
        if flat.size == 0 or flat.size % n:
            raise EmbeddingError(f"{self.model}: the embeddings API returned ragged vectors")
        vectors = flat.reshape(n, flat.size // n)
        dim = vectors.shape[1]
        if self.dim is None:
            self.dim = dim
        elif dim != self.dim:
            raise EmbeddingError(
                f"{self.model}: the embeddings API returned vectors of dimension {dim}, "
                f"expected {self.dim}; check --embed and --embed-base-url"
            )
        usage = payload.get("usage") if isinstance(payload, dict) else None
        tokens = usage.get("prompt_tokens") if isinstance(usage, dict) else None
        return vectors, tokens if isinstance(tokens, int) else None

    def _translate(self, exc: openai.OpenAIError, *, retries: int) -> EmbeddingError:
        where = f"{self.model} at {self.base_url or 'api.openai.com'}"
        if isinstance(exc, openai.APIStatusError):
            status, code = exc.status_code, _error_code(exc)
            if status in (401, 403):
                # The server's own message may quote part of the key: leave it out.
                message = f"{where}: the API key was refused (HTTP {status}); {_KEY_HINT}"
            elif code in _FATAL_CODES:
                message = (
                    f"{where}: the account is out of quota (HTTP {status}, {code}); "
                    "check the plan and billing of the key in OPENAI_API_KEY"
                )
            elif is_retryable(exc):
                message = (
                    f"{where}: still failing after {retries} retries (HTTP {status}"
                    f"{', ' + code if code else ''}): the API is rate-limiting or unavailable; "
                    "run again later (files already loaded are not loaded again), or send fewer "
                    "requests at once: from Python, Ingester(embed=make_embedder(MODEL, "
                    "concurrency=1))"
                )
            else:
                detail = _server_message(exc)
                message = f"{where}: request refused (HTTP {status})"
                message += f": {detail}" if detail else ""
        elif isinstance(exc, openai.APIConnectionError):
            message = (
                f"{where}: cannot reach the embeddings API after {retries} retries "
                f"({type(exc).__name__}); check --embed-base-url / OPENAI_BASE_URL and the network"
            )
        else:
            message = f"{where}: {type(exc).__name__}: {exc}"
        fatal = isinstance(exc, openai.APIStatusError) and (
            exc.status_code in (401, 403) or _error_code(exc) in _FATAL_CODES
        )
        kind = EmbeddingAuthError if fatal else EmbeddingError
        return kind(redact(message.replace(self._api_key, "***")))


def _describe(error: BaseException | None) -> str:
    """An error as a log line shows it: HTTP status and error code, or the exception's type."""
    if isinstance(error, openai.APIStatusError):
        code = _error_code(error)
        return f"HTTP {error.status_code}{', ' + code if code else ''}"
    return type(error).__name__


def _server_message(exc: openai.APIStatusError) -> str | None:
    body = exc.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return cast(str, inner["message"])[:500]
    return None


async def _first_error_or_all(tasks: list[asyncio.Task[T]]) -> list[T]:
    """Wait for `tasks`; the first failure is raised at once, else the results in order."""
    if not tasks:
        return []
    _, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    if pending:  # something failed: raise the earliest failure
        for task in tasks:
            if task.done() and not task.cancelled() and (exc := task.exception()) is not None:
                raise exc
    return [task.result() for task in tasks]
