"""HEAD and LIST: what S3 says about objects, asked through the choke point (`S3Calls.call`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dreambolt.errors import S3AuthError, S3BaseError, S3NotFoundError
from dreambolt.s3.calls import S3Calls
from dreambolt.s3.objects import ObjectInfo, info_from_response
from dreambolt.s3.uri import S3Uri

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client as RegionClient
    from types_aiobotocore_s3.type_defs import (
        GetObjectOutputTypeDef,
        GetObjectRequestTypeDef,
        HeadObjectOutputTypeDef,
        HeadObjectRequestTypeDef,
    )

__all__ = ["head_object"]


async def head_object(
    calls: S3Calls, uri: S3Uri, *, if_match: str | None = None
) -> tuple[ObjectInfo, HeadObjectOutputTypeDef]:
    """HEAD an object with checksums enabled (pinned to `if_match` when given); returns what it
    says and the raw response (whose full-object checksum, if any, the transfer checks)."""
    params: HeadObjectRequestTypeDef = {
        "Bucket": uri.bucket,
        "Key": uri.key,
        "ChecksumMode": "ENABLED",
    }
    if uri.version_id:
        params["VersionId"] = uri.version_id
    if if_match:
        params["IfMatch"] = if_match

    async def head(client: RegionClient) -> HeadObjectOutputTypeDef:
        return await client.head_object(**params)

    try:
        response = await calls.call("HeadObject", uri, head)
    except (S3AuthError, S3NotFoundError) as exc:
        # HEAD errors have no body, so no code: which of NoSuchKey/NoSuchBucket or
        # AccessDenied/InvalidAccessKeyId/... it was decides the fix we suggest. A one-byte
        # GET, on this error path only, tells.
        await _explain(calls, uri, if_match)
        raise exc from exc.__cause__
    return info_from_response(uri, response), response


async def _explain(calls: S3Calls, uri: S3Uri, if_match: str | None) -> None:
    """Raise the error a GET gives for what a HEAD could not describe (if it gives one)."""

    params: GetObjectRequestTypeDef = {"Bucket": uri.bucket, "Key": uri.key, "Range": "bytes=0-0"}
    if uri.version_id:
        params["VersionId"] = uri.version_id
    if if_match:
        params["IfMatch"] = if_match

    async def probe(client: RegionClient) -> GetObjectOutputTypeDef:
        response = await client.get_object(**params)
        async with response["Body"] as body:
            await body.read()
        return response

    try:
        await calls.call("GetObject", uri, probe, detail="bytes=0-0")
    except (S3AuthError, S3NotFoundError) as exc:
        if exc.code and not exc.code.isdigit() and exc.code not in ("NotFound", "InvalidRange"):
            raise
    except S3BaseError:
        pass
