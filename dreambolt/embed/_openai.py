"""The OpenAI-compatible provider: the official async SDK, with tenacity as the one retry layer.

The SDK's own retries are off (``max_retries=0``). Every request goes through
`OpenAIEmbedder._request`, which applies the retry policy and translates SDK errors into
`EmbeddingError` in one place (`_translate`), by exception class, HTTP status and error code.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Coroutine, Iterable
from typing import Any, TypeVar, cast

import numpy as np
import openai
from openai.types import CreateEmbeddingResponse
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from ..errors import EmbeddingError, redact
from ._base import BatchLimits, EmbedStats, Vectors
from ._tokens import TokenCounter, default_counter, plan_batches, prepare

__all__ = ["OpenAIEmbedder", "is_retryable", "retry_after"]

T = TypeVar("T")
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
        try:
            return max(0.0, float(value) * scale)
        except ValueError:
            continue  # an HTTP-date: the jittered backoff applies
    return None


class OpenAIEmbedder:
    """Embeds through an OpenAI-compatible ``/v1/embeddings`` endpoint.

    Requests are cut at `limits`, at most `concurrency` are in flight (shared by all concurrent
    `embed` calls), and each is tried up to ``max_retries + 1`` times: 429, 408, 409, 5xx and
    connection errors wait a random time in [0, backoff_factor * 2**(n-1)] ("full jitter"),
    raised to the server's ``Retry-After``, never more than `max_backoff`. 401/403 and other 4xx
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
        self._jitter = wait_random_exponential(multiplier=backoff_factor, max=max_backoff)
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
        counter = self.counter
        ready = await asyncio.to_thread(prepare, texts, counter, self.limits.max_input_tokens)
        stats.truncated += ready.truncated
        batches = plan_batches(ready.tokens, self.limits)
        parts = await _gather_or_cancel(
            self._request(ready.texts[b.start : b.stop], sum(ready.tokens[b.start : b.stop]), stats)
            for b in batches
        )
        return np.concatenate(parts) if len(parts) > 1 else parts[0]

    def _wait(self, state: RetryCallState) -> float:
        delay = self._jitter(state)
        asked = retry_after(state.outcome.exception() if state.outcome else None)
        if asked is not None and asked > delay:
            delay = asked
        return min(delay, self.max_backoff)

    async def _request(self, batch: list[str], tokens: int, stats: EmbedStats) -> Vectors:
        client, slots = self._connect()
        retries = 0

        def count_retry(state: RetryCallState) -> None:
            nonlocal retries
            retries += 1
            stats.retries += 1

        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.max_retries + 1),
            wait=self._wait,
            retry=retry_if_exception(is_retryable),
            before_sleep=count_retry,
            reraise=True,
        )
        async with slots:  # held across retries: a throttled request keeps its slot
            try:
                async for attempt in retrying:
                    with attempt:
                        response = await client.embeddings.create(
                            model=self.api_model, input=batch, encoding_format="base64"
                        )
            except openai.OpenAIError as exc:
                raise self._translate(exc, retries=retries) from exc
        vectors = self._decode(response, len(batch))
        stats.tokens_sent += response.usage.prompt_tokens if response.usage else tokens
        stats.requests += 1
        return vectors

    def _decode(self, response: CreateEmbeddingResponse, n: int) -> Vectors:
        data = sorted(response.data, key=lambda item: item.index)
        if len(data) != n or (data and data[-1].index != n - 1):
            raise EmbeddingError(
                f"{self.model}: the embeddings API returned {len(data)} vectors for {n} inputs"
            )
        raw = [cast(object, item.embedding) for item in data]
        if all(isinstance(r, str) for r in raw):
            blob = b"".join(base64.b64decode(cast(str, r)) for r in raw)
            flat = np.frombuffer(blob, dtype="<f4").astype(np.float32, copy=False)
        else:  # a compatible server that ignores encoding_format=base64
            flat = np.asarray(raw, dtype=np.float32).reshape(-1)
        if flat.size % n:
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
        return vectors

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
                    f"{', ' + code if code else ''}); lower --embed-concurrency or try later"
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
        return EmbeddingError(redact(message.replace(self._api_key, "***")))


def _server_message(exc: openai.APIStatusError) -> str | None:
    body = exc.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return cast(str, inner["message"])[:500]
    return None


async def _gather_or_cancel(coros: Iterable[Coroutine[Any, Any, T]]) -> list[T]:
    """Run `coros` at once, results in order; on the first failure cancel the rest and raise it."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        _, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    except BaseException:  # we were cancelled: take the requests down with us
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    for task in tasks:
        if task.done() and not task.cancelled() and (exc := task.exception()) is not None:
            raise exc
    return [task.result() for task in tasks]
