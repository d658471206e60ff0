"""Ranges of one object version, fetched on demand: what a reader that picks its own ranges
(a Parquet file's footer, then its row groups) asks for.

Every range is pinned to the version the listing or HEAD saw (`IfMatch`, plus `VersionId` on a
versioned bucket), so an overwrite meanwhile is `S3ObjectChangedError`, never a mix of two
versions; each is retried alone through `S3Calls.call` under the shared budget, and a short body
is fetched again. The object's full checksum (when S3 keeps one) is known after `pin`; a reader
that fetches every byte exactly once checks it with `Checksum.matches_parts`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from dreambolt.errors import S3BaseError, S3IntegrityError, make_error
from dreambolt.s3.calls import S3Calls
from dreambolt.s3.checksum import Checksum, from_response
from dreambolt.s3.metadata import head_object
from dreambolt.s3.objects import ObjectInfo, Progress
from dreambolt.s3.ranges import Span

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client as RegionClient
    from types_aiobotocore_s3.type_defs import GetObjectOutputTypeDef, GetObjectRequestTypeDef

__all__ = ["Pinned", "pin"]

CHUNK = 256 << 10  # bytes taken from a response body at a time


@dataclass(frozen=True, slots=True)
class Pinned:
    """One object version whose ranges can be fetched, and its full checksum if S3 keeps one."""

    calls: S3Calls
    info: ObjectInfo
    params: GetObjectRequestTypeDef
    checksum: Checksum | None

    async def get(self, span: Span, progress: Progress) -> bytes:
        """The bytes `span` (first and last, inclusive) names; raises S3 errors as translated."""
        target = bytearray(span[1] - span[0] + 1)
        await self.get_into(span, memoryview(target), progress)
        return bytes(target)

    async def get_into(self, span: Span, target: memoryview, progress: Progress) -> None:
        """Fetch the bytes `span` names into `target` (as long as the span, bytes-shaped)."""
        first, last = span
        want = last - first + 1
        params: GetObjectRequestTypeDef = {**self.params, "Range": f"bytes={first}-{last}"}
        uri = self.info.uri

        async def op(client: RegionClient) -> tuple[GetObjectOutputTypeDef, None]:
            response = await client.get_object(**params)
            received = 0
            try:
                async with response["Body"] as body:
                    while chunk := await body.read(CHUNK):
                        if received + len(chunk) > want:
                            received += len(chunk)
                            break
                        target[received : received + len(chunk)] = chunk
                        received += len(chunk)
                        progress(len(chunk))
                if received != want:
                    raise make_error(
                        S3IntegrityError,
                        uri=str(uri),
                        code="IncompleteBody",
                        status=None,
                        detail=f"range {first}-{last}: got {received} of {want} bytes",
                    )
            except BaseException:
                progress(-received)  # the retry reports these bytes again
                raise
            return response, None

        async with self.calls.budget:
            await self.calls.call("GetObject", uri, op, detail=params["Range"])

    def mismatch(self) -> S3BaseError:
        """The error for bytes whose checksum is not the object's."""
        algorithm = self.checksum.algorithm if self.checksum else "checksum"
        return make_error(
            S3IntegrityError,
            uri=str(self.info.uri),
            code="ChecksumMismatch",
            status=None,
            detail=f"the {algorithm} of the bytes read differs from the object's checksum; "
            "run again, and report it if it persists",
        )


async def pin(calls: S3Calls, info: ObjectInfo, *, checksum: bool = True) -> Pinned:
    """Pin `info` (as listed or HEADed). With `checksum`, the object's full checksum is asked
    for: a listing tells none, so a HEAD pinned to the same version asks for it."""
    params: GetObjectRequestTypeDef = {"Bucket": info.uri.bucket, "Key": info.uri.key}
    version = info.uri.version_id or info.version_id
    if version:
        params["VersionId"] = version
    if info.etag:
        params["IfMatch"] = info.etag
    known = Checksum.of(info.checksum)
    if known is None and checksum:
        _, head = await head_object(calls, info.uri, if_match=info.etag or None)
        known = from_response(head)
    return Pinned(calls, info, params, known if checksum else None)
