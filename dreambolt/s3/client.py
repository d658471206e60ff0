"""The async S3 client: the verbs of the S3 stage, over one choke point for every call.

`S3Client` is a thin front: its settings become an `S3Options`, its requests go through one
`S3Calls` (`dreambolt.s3.calls`: regional clients, retries, logging, error translation), HEAD
and LIST are `dreambolt.s3.metadata`, and byte transfers (concurrent ranged GETs) are
`dreambolt.s3.transfer`. `ObjectInfo` and `Progress` live in `dreambolt.s3.objects` and are
importable from here too.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

from dreambolt.s3.calls import S3Calls
from dreambolt.s3.listing import list_objects
from dreambolt.s3.metadata import head_object
from dreambolt.s3.objects import ObjectInfo, Progress, as_uri
from dreambolt.s3.options import S3Options
from dreambolt.s3.retry import RetryPolicy
from dreambolt.s3.transfer import download_object, iter_object, read_object
from dreambolt.s3.uri import S3Uri, parse_s3_uri

if TYPE_CHECKING:
    from types_aiobotocore_s3.type_defs import HeadObjectOutputTypeDef

__all__ = ["ObjectInfo", "Progress", "S3Client"]


class S3Client:
    """An async S3 client built for reading many objects, or big ones, fast and safely.

    Use it as an async context manager; clients per region are created lazily on first use.
    `calls` is its choke point, which `dreambolt.s3.transfer`'s functions take.
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
        self.options = S3Options(  # validates every value at construction
            endpoint_url=endpoint_url,
            region=region,
            profile=profile,
            max_retries=max_retries,
            backoff_factor=backoff_factor,
            max_backoff=max_backoff,
            concurrency=concurrency,
            part_size=part_size,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
        )
        self.calls = S3Calls(self.options, concurrency=concurrency)

    @classmethod
    def from_options(cls, options: S3Options, default_concurrency: int = 16) -> S3Client:
        """A client with these settings (`options.concurrency` None: `default_concurrency`)."""
        return cls(**options.client_kwargs(default_concurrency))

    async def __aenter__(self) -> S3Client:
        self.calls.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close every regional client."""
        await self.calls.close()

    # --- settings, as the calls apply them ------------------------------------------------

    @property
    def endpoint_url(self) -> str | None:
        """The S3 endpoint (the option, else `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL`)."""
        return self.calls.endpoint_url

    @property
    def region(self) -> str | None:
        return self.options.region

    @property
    def profile(self) -> str | None:
        return self.options.profile

    @property
    def policy(self) -> RetryPolicy:
        return self.calls.policy

    @property
    def concurrency(self) -> int:
        return self.calls.concurrency

    @property
    def part_size(self) -> int:
        return self.calls.part_size

    @property
    def default_region(self) -> str:
        """The region used for buckets whose region is not known otherwise."""
        return self.calls.default_region

    async def region_of(self, uri: S3Uri) -> str:
        """The bucket's region: from the URI, else asked of S3 once and cached per bucket."""
        return await self.calls.region_of(uri)

    # --- verbs ---------------------------------------------------------------------------

    async def head(self, uri: str | S3Uri) -> ObjectInfo:
        """Describe one object (size, etag, last-modified, version)."""
        return (await head_object(self.calls, as_uri(uri, require_key=True)))[0]

    async def head_raw(
        self, uri: S3Uri, *, if_match: str | None = None
    ) -> tuple[ObjectInfo, HeadObjectOutputTypeDef]:
        """HEAD an object with checksums enabled; also returns the raw response."""
        return await head_object(self.calls, uri, if_match=if_match)

    async def list(
        self, uri: str | S3Uri, *, start_after: str | None = None
    ) -> AsyncIterator[ObjectInfo]:
        """Every object under a prefix, matching a glob, or at/below a plain key; all pages.

        A plain key `s3://b/logs` yields `logs` itself and everything under `logs/`. With
        `start_after` (a key), only the keys after it.
        """
        async for info in list_objects(self.calls, as_uri(uri), start_after=start_after):
            yield info

    async def read(
        self, uri: str | S3Uri | ObjectInfo, *, progress: Progress | None = None
    ) -> bytes:
        """The whole object, fetched as concurrent ranged GETs pinned to one version."""
        target = uri if isinstance(uri, ObjectInfo) else as_uri(uri, require_key=True)
        return (await read_object(self.calls, target, progress=progress))[1]

    async def download(
        self,
        uri: str | S3Uri | ObjectInfo,
        path: str | os.PathLike[str],
        *,
        progress: Progress | None = None,
    ) -> ObjectInfo:
        """Write the object to `path` (via a temporary name, renamed when complete)."""
        target = uri if isinstance(uri, ObjectInfo) else as_uri(uri, require_key=True)
        return await download_object(self.calls, target, Path(path), progress=progress)

    async def iter_chunks(
        self, uri: str | S3Uri | ObjectInfo, *, progress: Progress | None = None
    ) -> AsyncIterator[bytes]:
        """The object's bytes in order, one part at a time, with bounded read-ahead."""
        target = uri if isinstance(uri, ObjectInfo) else as_uri(uri, require_key=True)
        async for chunk in iter_object(self.calls, target, progress=progress):
            yield chunk
