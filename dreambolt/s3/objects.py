"""What S3 says about objects: `ObjectInfo`, built from listings and HEAD/GET responses."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from dreambolt.s3.checksum import checksum_pair
from dreambolt.s3.uri import S3Uri, parse_s3_uri

__all__ = ["ObjectInfo", "Progress", "as_uri", "info_from_response"]

Progress = Callable[[int], None]
"""Called with the number of bytes that just arrived (negative when a failed range is undone)."""


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """What S3 says about one object version."""

    uri: S3Uri
    size: int
    etag: str
    last_modified: datetime | None = None
    version_id: str | None = None
    checksum: tuple[str, str] | None = None  # (algorithm, base64) of the whole object, if known


def as_uri(target: str | S3Uri | ObjectInfo, *, require_key: bool = False) -> S3Uri:
    """The URI of an object given as text, an `S3Uri` or an `ObjectInfo`."""
    if isinstance(target, ObjectInfo):
        return target.uri
    if isinstance(target, S3Uri):
        return target
    return parse_s3_uri(target, require_key=require_key)


def info_from_response(uri: S3Uri, response: Mapping[str, object]) -> ObjectInfo:
    """Build an ObjectInfo from a HeadObject/GetObject response (or the same fields of a
    presigned GET).

    The size of a ranged response is the object's (after the `/` of `Content-Range`), and a
    ranged response's checksum, if any, is not the object's.
    """
    size = response.get("ContentLength", 0)
    content_range = response.get("ContentRange")
    if isinstance(content_range, str) and "/" in content_range:
        size = content_range.rsplit("/", 1)[1]
    modified = response.get("LastModified")
    version = response.get("VersionId")
    return ObjectInfo(
        uri=uri,
        size=int(size) if isinstance(size, int | str) else 0,
        etag=str(response.get("ETag", "")),
        last_modified=modified if isinstance(modified, datetime) else None,
        version_id=version if isinstance(version, str) else None,
        checksum=None if content_range else checksum_pair(response),
    )
