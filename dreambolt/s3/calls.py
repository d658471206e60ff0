"""The one choke point of every S3 request: `S3Calls.call`.

    calls = S3Calls(S3Options(...), concurrency=16)
    response = await calls.call("HeadObject", uri, lambda s3: s3.head_object(Bucket=..., Key=...))

`call` picks the bucket's regional aiobotocore client, runs the request under the retry policy
(tenacity, the only retry layer: botocore's own retries are off), logs it, and translates whatever
goes wrong into `dreambolt.errors` (by code and status, with the original as `__cause__`). The
verbs above it (`dreambolt.s3.metadata`: HEAD and LIST; `dreambolt.s3.transfer`: GETs) go through
nothing else.

Logging, on the logger ``dreambolt.s3``: each retry at INFO (operation, URI, error code and status,
attempt n of max, the wait); each request at DEBUG (operation, URI and range, status, elapsed
time). URIs are `s3://` names, never presigned URLs, and every line goes through `redact`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, TypeVar

from aiobotocore.config import AioConfig
from tenacity import RetryCallState

from dreambolt.errors import S3BaseError, redact, register_secret, translate
from dreambolt.s3.options import S3Options
from dreambolt.s3.presigned import PresignedGets
from dreambolt.s3.retry import RetryPolicy
from dreambolt.s3.session import new_session
from dreambolt.s3.uri import S3Uri
from dreambolt.spool import is_disk_full

if TYPE_CHECKING:
    from aiobotocore.session import AioSession
    from types_aiobotocore_s3 import S3Client as RegionClient

__all__ = ["DEFAULT_REGION", "S3Calls"]

log = logging.getLogger("dreambolt.s3")
T = TypeVar("T")

DEFAULT_REGION = "us-east-1"


class S3Calls:
    """Regional clients, the shared budget of requests in flight, and `call`.

    Use it as an async context manager (or `open()` / `close()`); a region's client is created on
    its first request. `budget` bounds the requests in flight over every transfer that shares
    these calls; `part_size` is the size of a ranged GET.
    """

    def __init__(self, options: S3Options, *, concurrency: int) -> None:
        self.options = options
        self.endpoint_url = (
            options.endpoint_url
            or os.environ.get("AWS_ENDPOINT_URL_S3")
            or os.environ.get("AWS_ENDPOINT_URL")
            or None
        )
        self.policy = RetryPolicy(options.max_retries, options.backoff_factor, options.max_backoff)
        self.concurrency = concurrency
        self.part_size = options.part_size
        self.budget = asyncio.Semaphore(concurrency)
        self.clients: dict[str, RegionClient] = {}
        self.gets: PresignedGets | None = None  # small whole-object GETs, presigned
        self._session: AioSession | None = None
        self._stack = AsyncExitStack()
        self._client_lock = asyncio.Lock()
        self._bucket_regions: dict[str, asyncio.Future[str]] = {}

    async def __aenter__(self) -> S3Calls:
        self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def open(self) -> None:
        """Start the botocore session (cheap: no client, no connection, no request yet)."""
        session = new_session(self.options.profile)
        self._session = session
        self.gets = PresignedGets(
            session,
            concurrency=max(10, self.concurrency * 2),
            connect_timeout=self.options.connect_timeout,
            read_timeout=self.options.read_timeout,
        )

    async def close(self) -> None:
        """Close every regional client and the presigned GETs' HTTP session."""
        self.clients.clear()
        self._bucket_regions.clear()
        gets, self.gets = self.gets, None
        try:
            await self._stack.aclose()
        finally:
            if gets is not None:
                await gets.close()

    # --- clients and regions -------------------------------------------------------------

    @property
    def default_region(self) -> str:
        """The region used for buckets whose region is not known otherwise."""
        if self.options.region:
            return self.options.region
        configured = self._session.get_config_variable("region") if self._session else None
        return str(configured or DEFAULT_REGION)

    async def client(self, region: str) -> RegionClient:
        """The aiobotocore S3 client of `region`, created on first use."""
        client = self.clients.get(region)
        if client is not None:  # the common case: no lock, no await
            return client
        session = self._session
        if session is None:
            raise RuntimeError("S3Client must be used as `async with S3Client(...) as s3:`")
        async with self._client_lock:
            if region not in self.clients:
                if not self.clients:
                    await self._remember_secrets(session)
                self.clients[region] = await self._stack.enter_async_context(
                    session.create_client(
                        "s3",
                        region_name=region,
                        endpoint_url=self.endpoint_url,
                        config=self._config(),
                    )
                )
        return self.clients[region]

    def _config(self) -> AioConfig:
        return AioConfig(
            max_pool_connections=max(10, self.concurrency * 2),
            retries={"total_max_attempts": 1},  # tenacity owns retries
            connect_timeout=self.options.connect_timeout,
            read_timeout=self.options.read_timeout,
            # Virtual-hosted on AWS: the host botocore presigns for is then the region's own in
            # every region (with "auto" it is the global one outside us-east-1), so the lean
            # small-object GET (presigned.py) serves all regions. Dotted names stay path-style.
            s3={"addressing_style": "path" if self.endpoint_url else "virtual"},
            # SigV4 everywhere: botocore would presign with the legacy SigV2 otherwise
            signature_version="s3v4",
            # We check full-object checksums ourselves (dreambolt.s3.transfer, with awscrt's
            # CRCs), once per object; botocore's own handling costs CPU on every request.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )

    @staticmethod
    async def _remember_secrets(session: AioSession) -> None:
        try:
            creds = await session.get_credentials()
        except Exception:  # reported properly by the request that needs them
            return
        if creds is not None:
            frozen = await creds.get_frozen_credentials()
            register_secret(frozen.secret_key)
            register_secret(frozen.token)

    async def region_of(self, uri: S3Uri) -> str:
        """The bucket's region: from the URI, else asked of S3 once and cached per bucket."""
        if uri.region:
            return uri.region
        task = self._bucket_regions.get(uri.bucket)
        if task is None:
            task = asyncio.ensure_future(self._discover_region(uri.bucket))
            self._bucket_regions[uri.bucket] = task
        if task.done():
            return task.result()
        return await asyncio.shield(task)

    async def _discover_region(self, bucket: str) -> str:
        default = self.default_region
        try:
            client = await self.client(default)
        except Exception:
            return default
        response: object
        try:
            response = await client.head_bucket(Bucket=bucket)
        except Exception as exc:  # 301/403/404 still carry the header; anything else: default
            response = getattr(exc, "response", None)
        return _header(response, "x-amz-bucket-region") or default

    # --- the choke point -----------------------------------------------------------------

    async def call(
        self,
        op: str,
        uri: S3Uri,
        fn: Callable[[RegionClient], Awaitable[T]],
        *,
        detail: str = "",
    ) -> T:
        """Run one logical S3 request `fn` on the bucket's regional client, with retries,
        logging and error translation; `op` (e.g. ``GetObject``) and `detail` (e.g. the range)
        name it in logs. Every error raised is an `S3BaseError`, except a full local disk."""
        client = await self.client(await self.region_of(uri))
        what = f"{op} {uri}{' ' + detail if detail else ''}"
        attempt = 0

        async def once() -> T:
            nonlocal attempt
            attempt += 1
            started = time.monotonic()
            try:
                result = await fn(client)
            except S3BaseError as exc:
                _log_failure(what, exc, started)
                raise
            except Exception as exc:
                if is_disk_full(exc):
                    raise  # a local write found no room (spool_object says where): not S3's
                err = translate(exc, str(uri))
                _log_failure(what, err, started)
                raise err from exc
            if log.isEnabledFor(logging.DEBUG):
                elapsed = time.monotonic() - started
                log.debug("%s: %s in %.3f s", redact(what), _status_of(result), elapsed)
            return result

        return await self.policy.call(once, before_sleep=self._log_retry(what))

    def _log_retry(self, what: str) -> Callable[[RetryCallState], None]:
        tries = self.policy.max_retries + 1

        def before_sleep(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome is not None else None
            wait = state.next_action.sleep if state.next_action is not None else 0.0
            log.info(
                "%s: %s on attempt %d of %d; retrying in %.2f s",
                redact(what),
                _describe(error),
                state.attempt_number,
                tries,
                wait,
            )

        return before_sleep


def _describe(error: BaseException | None) -> str:
    """An error as a log line shows it: its code and HTTP status, never its message."""
    if isinstance(error, S3BaseError):
        status = f" (HTTP {error.status})" if error.status else ""
        return f"{error.code or type(error).__name__}{status}"
    return type(error).__name__


def _log_failure(what: str, error: S3BaseError, started: float) -> None:
    if log.isEnabledFor(logging.DEBUG):
        elapsed = time.monotonic() - started
        log.debug("%s: %s after %.3f s", redact(what), _describe(error), elapsed)


def _status_of(result: object) -> str:
    """The HTTP status of a response (or of the first item of a tuple holding one)."""
    if isinstance(result, tuple) and result:
        result = result[0]
    meta = result.get("ResponseMetadata") if isinstance(result, Mapping) else None
    status = meta.get("HTTPStatusCode") if isinstance(meta, Mapping) else None
    return f"HTTP {status}" if isinstance(status, int) else "done"


def _header(response: object, name: str) -> str | None:
    """A header of a botocore response (or of the response of a ClientError), if present."""
    meta = response.get("ResponseMetadata") if isinstance(response, Mapping) else None
    headers = meta.get("HTTPHeaders") if isinstance(meta, Mapping) else None
    value = headers.get(name) if isinstance(headers, Mapping) else None
    return value if isinstance(value, str) else None
