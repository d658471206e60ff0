"""LIST: every object under a prefix, matching a glob, or at/below a plain key.

A prefix of up to 1,000 keys is one request. A bigger one is listed in parallel: its first page
shows it is big, then a listing with `Delimiter="/"` names its sub-prefixes ("folders"), and each
is listed at once, split again the same way while its own first page is full, down to
`SPLIT_DEPTH` levels (date- or hash-partitioned layouts, the big ones, split well). A flat prefix
(no sub-prefixes) is listed page after page, as S3 gives no way to split it. The requests go
through the choke point (`S3Calls.call`), so the client's concurrency bounds them. Keys come
back sorted, each once, as one sequential listing returns them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

from dreambolt.s3.calls import S3Calls
from dreambolt.s3.objects import ObjectInfo
from dreambolt.s3.uri import S3Uri, glob_match

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client as RegionClient
    from types_aiobotocore_s3.type_defs import (
        ListObjectsV2OutputTypeDef,
        ListObjectsV2RequestTypeDef,
        ObjectTypeDef,
    )

__all__ = ["SPLIT_DEPTH", "key_matcher", "list_objects"]

SPLIT_DEPTH = 3  # levels of sub-prefixes a big listing is split into at most

Wanted = Callable[[str], bool]


def key_matcher(base: S3Uri) -> tuple[str, Callable[[str], bool]]:
    """The prefix to list for `base`, and which listed keys it means.

    A glob lists its fixed prefix and keeps the keys that match; a prefix (`…/`) keeps every
    key; a plain key `s3://b/logs` keeps `logs` itself and everything under `logs/`.
    """
    if base.is_glob:
        return base.list_prefix, lambda key: glob_match(base.key, key)
    if base.is_prefix:
        return base.key, lambda key: True
    return base.key, lambda key: key == base.key or key.startswith(base.key + "/")


def _info(base: S3Uri, item: ObjectTypeDef) -> ObjectInfo:
    return ObjectInfo(
        uri=S3Uri(base.bucket, item.get("Key", ""), base.region),
        size=int(item.get("Size", 0)),
        etag=str(item.get("ETag", "")),
        last_modified=item.get("LastModified"),
    )


def _is_folder_marker(item: ObjectTypeDef) -> bool:
    """An empty object named `…/`: a console "folder", not data."""
    return item.get("Key", "").endswith("/") and item.get("Size", 0) == 0


async def list_objects(
    calls: S3Calls, base: S3Uri, *, start_after: str | None = None
) -> AsyncIterator[ObjectInfo]:
    """Every object under a prefix, matching a glob, or at/below a plain key; all pages.
    With `start_after`, only keys after it (one listing, page after page: keys that only
    grow, such as date paths, are listed from where the last listing ended)."""
    prefix, wanted = key_matcher(base)
    if start_after is not None:
        params: ListObjectsV2RequestTypeDef = {"Bucket": base.bucket, "Prefix": prefix}
        params["StartAfter"] = start_after
        found = await _pages(calls, base, params, wanted)
    else:
        found = await _list(calls, base, prefix, wanted, SPLIT_DEPTH)
    for key in sorted(found):
        yield found[key]


async def _list(
    calls: S3Calls, base: S3Uri, prefix: str, wanted: Wanted, depth: int
) -> dict[str, ObjectInfo]:
    """key -> object for the keys under `prefix` that `wanted` keeps."""
    params: ListObjectsV2RequestTypeDef = {"Bucket": base.bucket, "Prefix": prefix}
    page = await _page(calls, base, params)
    found = _kept(base, page, wanted)
    if page.get("IsTruncated") and depth > 0:
        return found | await _split(calls, base, prefix, wanted, depth)
    return found | await _pages(calls, base, params, wanted, page)


async def _pages(
    calls: S3Calls,
    base: S3Uri,
    params: ListObjectsV2RequestTypeDef,
    wanted: Wanted,
    page: ListObjectsV2OutputTypeDef | None = None,
) -> dict[str, ObjectInfo]:
    """The keys of a listing page after page (from `page`, the first, if given)."""
    found: dict[str, ObjectInfo] = {}
    if page is None:
        page = await _page(calls, base, params)
        found |= _kept(base, page, wanted)
    while page.get("IsTruncated"):
        params["ContinuationToken"] = page["NextContinuationToken"]
        page = await _page(calls, base, params)
        found |= _kept(base, page, wanted)
    return found


async def _split(
    calls: S3Calls, base: S3Uri, prefix: str, wanted: Wanted, depth: int
) -> dict[str, ObjectInfo]:
    """The keys under `prefix`: those right under it page by page (a delimited listing), its
    sub-prefixes at once."""
    params: ListObjectsV2RequestTypeDef = {"Bucket": base.bucket, "Prefix": prefix}
    params["Delimiter"] = "/"
    found: dict[str, ObjectInfo] = {}
    folders: list[str] = []
    while True:
        page = await _page(calls, base, params)
        found |= _kept(base, page, wanted)
        folders += [p["Prefix"] for p in page.get("CommonPrefixes", []) if "Prefix" in p]
        if not page.get("IsTruncated"):
            break
        params["ContinuationToken"] = page["NextContinuationToken"]
    parts = await asyncio.gather(
        *(_list(calls, base, folder, wanted, depth - 1) for folder in folders)
    )
    for part in parts:
        found |= part
    return found


async def _page(
    calls: S3Calls, base: S3Uri, params: ListObjectsV2RequestTypeDef
) -> ListObjectsV2OutputTypeDef:
    async def page_of(client: RegionClient) -> ListObjectsV2OutputTypeDef:
        return await client.list_objects_v2(**params)

    detail = f"prefix={params['Prefix']!r}"
    return await calls.call("ListObjectsV2", base, page_of, detail=detail)


def _kept(base: S3Uri, page: ListObjectsV2OutputTypeDef, wanted: Wanted) -> dict[str, ObjectInfo]:
    return {
        item.get("Key", ""): _info(base, item)
        for item in page.get("Contents", [])
        if not _is_folder_marker(item) and wanted(item.get("Key", ""))
    }
