"""The async S3 client: one session, one client per region, and one choke point for every call.

Every request goes through `S3Client._call`, which picks the region's client, applies the retry
policy (tenacity, the only retry layer), logs timing, and translates errors into
`dreambolt.errors`. Byte transfer (concurrent ranged GETs) lives in `dreambolt.transfer`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from aiobotocore.config import AioConfig

from dreambolt.errors import (
    S3AuthError,
    S3BaseError,
    S3NotFoundError,
    redact,
    register_secret,
    translate,
)
from dreambolt.s3.checksum import checksum_pair
from dreambolt.s3.options import S3Options
from dreambolt.s3.retry import RetryPolicy
from dreambolt.s3.session import new_session
from dreambolt.s3.uri import S3Uri, glob_match, parse_s3_uri
from dreambolt.spool import is_disk_full

__all__ = ["ObjectInfo", "Progress", "S3Client"]

log = logging.getLogger("dreambolt.s3")
T = TypeVar("T")
Progress = Callable[[int], None]
"""Called with the number of bytes that just arrived (negative when a failed range is undone)."""

_DEFAULT_REGION = "us-east-1"


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """What S3 says about one object version."""

    uri: S3Uri
    size: int
    etag: str
    last_modified: datetime | None = None
    version_id: str | None = None
    checksum: tuple[str, str] | None = None  # (algorithm, base64) of the whole object, if known


def _as_uri(target: str | S3Uri | ObjectInfo, *, require_key: bool = False) -> S3Uri:
    if isinstance(target, ObjectInfo):
        return target.uri
    if isinstance(target, S3Uri):
        return target
    return parse_s3_uri(target, require_key=require_key)


class S3Client:
    """An async S3 client built for reading many objects, or big ones, fast and safely.

    Use it as an async context manager; clients per region are created lazily on first use.
    """

    parse_s3_uri = staticmethod(parse_s3_uri)

    def __init__(
        self,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        profile: str | None = None,
        max_retries: int = 3,
        backoff_factor: float = 2.0,
        max_backoff: float = 20.0,
        concurrency: int = 16,
        part_size: int = 8 * 2**20,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
    ) -> None:
        S3Options(  # validates every value at construction
            max_retries=max_retries,
            backoff_factor=backoff_factor,
            max_backoff=max_backoff,
            concurrency=concurrency,
            part_size=part_size,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
        )
        self.endpoint_url = (
            endpoint_url
            or os.environ.get("AWS_ENDPOINT_URL_S3")
            or os.environ.get("AWS_ENDPOINT_URL")
            or None
        )
        self.region = region
        self.profile = profile
        self.policy = RetryPolicy(max_retries, backoff_factor, max_backoff)
        self.concurrency = concurrency
        self.part_size = part_size
        self._timeouts = (connect_timeout, read_timeout)
        self._stack = AsyncExitStack()
        self._session: Any = None
        self._clients: dict[str, Any] = {}
        self._client_lock = asyncio.Lock()
        self._bucket_regions: dict[str, asyncio.Future[str]] = {}
        # One budget shared by every transfer of this client: the number of requests in flight.
        self.budget = asyncio.Semaphore(concurrency)

    @classmethod
    def from_options(cls, options: S3Options, default_concurrency: int = 16) -> S3Client:
        """A client with these settings (`options.concurrency` None: `default_concurrency`)."""
        return cls(**options.client_kwargs(default_concurrency))

    async def __aenter__(self) -> S3Client:
        self._session = new_session(self.profile)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close every regional client."""
        self._clients.clear()
        self._bucket_regions.clear()
        await self._stack.aclose()

    # --- clients and regions -------------------------------------------------------------

    @property
    def default_region(self) -> str:
        """The region used for buckets whose region is not known otherwise."""
        if self.region:
            return self.region
        configured = self._session.get_config_variable("region") if self._session else None
        return str(configured or _DEFAULT_REGION)

    async def _client(self, region: str) -> Any:
        client = self._clients.get(region)
        if client is not None:  # the common case: no lock, no await
            return client
        if self._session is None:
            raise RuntimeError("S3Client must be used as `async with S3Client(...) as s3:`")
        async with self._client_lock:
            if region not in self._clients:
                if not self._clients:
                    await self._remember_secrets()
                self._clients[region] = await self._stack.enter_async_context(
                    self._session.create_client(
                        "s3",
                        region_name=region,
                        endpoint_url=self.endpoint_url,
                        config=self._config(),
                    )
                )
        return self._clients[region]

    def _config(self) -> Any:
        connect_timeout, read_timeout = self._timeouts
        return AioConfig(
            max_pool_connections=max(10, self.concurrency * 2),
            retries={"total_max_attempts": 1},  # tenacity owns retries
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            s3={"addressing_style": "path"} if self.endpoint_url else None,
            # SigV4 everywhere: botocore would presign with the legacy SigV2 otherwise
            signature_version="s3v4",
            # We check full-object checksums ourselves (dreambolt.transfer, with awscrt's CRCs),
            # once per object; botocore's own handling costs CPU on every request.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )

    async def _remember_secrets(self) -> None:
        try:
            creds = await self._session.get_credentials()
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
            client = await self._client(default)
        except Exception:
            return default
        headers: dict[str, str] = {}
        try:
            response = await client.head_bucket(Bucket=bucket)
            headers = response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
        except Exception as exc:  # 301/403/404 still carry the header; anything else: default
            response = getattr(exc, "response", None) or {}
            headers = response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
        return headers.get("x-amz-bucket-region") or default

    # --- the choke point -----------------------------------------------------------------

    async def _call(self, op: str, uri: S3Uri, fn: Callable[[Any], Awaitable[T]]) -> T:
        """Run one logical S3 request with retries, timing, logging and error translation."""
        client = await self._client(await self.region_of(uri))
        attempt = 0

        async def once() -> T:
            nonlocal attempt
            attempt += 1
            started = time.monotonic()
            try:
                result = await fn(client)
            except S3BaseError:
                raise
            except Exception as exc:
                if is_disk_full(exc):
                    raise  # a local write found no room (spool_object says where): not S3's
                err = translate(exc, str(uri))
                log.debug(
                    "%s %s attempt %d failed after %.3fs: %s",
                    op,
                    uri,
                    attempt,
                    time.monotonic() - started,
                    redact(repr(exc)),
                )
                raise err from exc
            log.debug("%s %s attempt %d ok in %.3fs", op, uri, attempt, time.monotonic() - started)
            return result

        return await self.policy.call(once)

    # --- verbs ---------------------------------------------------------------------------

    async def head(self, uri: str | S3Uri) -> ObjectInfo:
        """Describe one object (size, etag, last-modified, version)."""
        return (await self.head_raw(_as_uri(uri, require_key=True)))[0]

    async def head_raw(
        self, uri: S3Uri, *, if_match: str | None = None
    ) -> tuple[ObjectInfo, dict[str, Any]]:
        """HEAD an object with checksums enabled; also returns the raw response."""
        kwargs: dict[str, Any] = {"Bucket": uri.bucket, "Key": uri.key, "ChecksumMode": "ENABLED"}
        if uri.version_id:
            kwargs["VersionId"] = uri.version_id
        if if_match:
            kwargs["IfMatch"] = if_match
        try:
            response: dict[str, Any] = await self._call(
                "HeadObject", uri, operation("head_object", **kwargs)
            )
        except (S3AuthError, S3NotFoundError) as exc:
            # HEAD errors have no body, so no code: which of NoSuchKey/NoSuchBucket or
            # AccessDenied/InvalidAccessKeyId/... it was decides the fix we suggest. A one-byte
            # GET, on this error path only, tells.
            await self._explain(uri, kwargs)
            raise exc from exc.__cause__
        return info_from_response(uri, response), response

    async def _explain(self, uri: S3Uri, head_kwargs: dict[str, Any]) -> None:
        """Raise the error a GET gives for what a HEAD could not describe (if it gives one)."""
        kwargs = {k: v for k, v in head_kwargs.items() if k != "ChecksumMode"}

        async def probe(client: Any) -> None:
            response = await client.get_object(**kwargs, Range="bytes=0-0")
            async with response["Body"] as body:
                await body.read()

        try:
            await self._call("GetObject", uri, probe)
        except (S3AuthError, S3NotFoundError) as exc:
            if exc.code and not exc.code.isdigit() and exc.code not in ("NotFound", "InvalidRange"):
                raise
        except S3BaseError:
            pass

    async def list(self, uri: str | S3Uri) -> AsyncIterator[ObjectInfo]:
        """Every object under a prefix, matching a glob, or at/below a plain key; all pages.

        A plain key `s3://b/logs` yields `logs` itself and everything under `logs/`.
        """
        base = _as_uri(uri)
        if base.is_glob:
            prefix = base.list_prefix

            def wanted(key: str) -> bool:
                return glob_match(base.key, key)
        elif base.is_prefix:
            prefix = base.key

            def wanted(key: str) -> bool:
                return True
        else:
            prefix = base.key

            def wanted(key: str) -> bool:
                return key == base.key or key.startswith(base.key + "/")

        kwargs: dict[str, Any] = {"Bucket": base.bucket, "Prefix": prefix}
        while True:
            page: dict[str, Any] = await self._call(
                "ListObjectsV2", base, operation("list_objects_v2", **kwargs)
            )
            for item in page.get("Contents", []):
                key = item["Key"]
                if key.endswith("/") and item.get("Size", 0) == 0:
                    continue  # a "folder" marker, not data
                if wanted(key):
                    yield ObjectInfo(
                        uri=S3Uri(base.bucket, key, base.region),
                        size=int(item["Size"]),
                        etag=str(item.get("ETag", "")),
                        last_modified=item.get("LastModified"),
                    )
            if not page.get("IsTruncated"):
                return
            kwargs["ContinuationToken"] = page["NextContinuationToken"]

    async def read(
        self, uri: str | S3Uri | ObjectInfo, *, progress: Progress | None = None
    ) -> bytes:
        """The whole object, fetched as concurrent ranged GETs pinned to one version."""
        from dreambolt.s3.transfer import read_object

        target = uri if isinstance(uri, ObjectInfo) else _as_uri(uri, require_key=True)
        return (await read_object(self, target, progress=progress))[1]

    async def download(
        self,
        uri: str | S3Uri | ObjectInfo,
        path: str | os.PathLike[str],
        *,
        progress: Progress | None = None,
    ) -> ObjectInfo:
        """Write the object to `path` (via a temporary name, renamed when complete)."""
        from dreambolt.s3.transfer import download_object

        target = uri if isinstance(uri, ObjectInfo) else _as_uri(uri, require_key=True)
        return await download_object(self, target, Path(path), progress=progress)

    async def iter_chunks(
        self, uri: str | S3Uri | ObjectInfo, *, progress: Progress | None = None
    ) -> AsyncIterator[bytes]:
        """The object's bytes in order, one part at a time, with bounded read-ahead."""
        from dreambolt.s3.transfer import iter_object

        target = uri if isinstance(uri, ObjectInfo) else _as_uri(uri, require_key=True)
        async for chunk in iter_object(self, target, progress=progress):
            yield chunk


def operation(name: str, **kwargs: Any) -> Callable[[Any], Awaitable[Any]]:
    """A call of the botocore client method `name` with these arguments, for `_call`."""
    return lambda client: getattr(client, name)(**kwargs)


def info_from_response(uri: S3Uri, response: dict[str, Any]) -> ObjectInfo:
    """Build an ObjectInfo from a HeadObject/GetObject response."""
    size = response.get("ContentLength", 0)
    content_range = response.get("ContentRange")
    if content_range and "/" in content_range:
        size = int(content_range.rsplit("/", 1)[1])
    return ObjectInfo(
        uri=uri,
        size=int(size),
        etag=str(response.get("ETag", "")),
        last_modified=response.get("LastModified"),
        version_id=response.get("VersionId"),
        checksum=None if content_range else checksum_pair(response),
    )
