"""What an S3 Delta root is checked for: at open, that its bucket can be reached (and in which
region it lives); before the first write, that the store honours conditional writes.

delta-rs commits version N of a table by creating `_delta_log/N.json` with `If-None-Match: *`:
of two writers committing N at once, the store must refuse the second. A store that ignores
the header lets the second overwrite the first's commit, and rows are lost or duplicated. So an
S3 root is probed once per process, before its first write (reading needs no write access: `ls`
and `--dry-run` work with read-only credentials): an empty object is created under
`ROOT/_dreambolt_probe/` twice with `If-None-Match: *` (the second must be refused with 412 or
409), then deleted. AWS S3, MinIO, Cloudflare R2 and moto honour the header.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from typing import Any

from dreambolt.errors import SinkError

__all__ = ["PROBE_FOLDER", "probe", "reach"]

PROBE_FOLDER = "_dreambolt_probe"
_checked: set[tuple[str | None, str]] = set()  # (endpoint, bucket) found to honour the header
_lock = threading.Lock()


def reach(session: Any, storage: dict[str, str], uri: str, db: str) -> bool:
    """Check that the S3 root `uri` (`s3://bucket/prefix`) can be listed, and set
    `storage["AWS_REGION"]` to the bucket's region when talking to AWS itself. Fatal SinkError
    if it cannot be reached. Returns whether the root is itself a Delta table (it holds a
    `_delta_log/`); asked here rather than with `DeltaTable.is_deltatable`, which holds the GIL
    while it waits on the network."""
    bucket, _, prefix = uri[len("s3://") :].partition("/")
    client = _client(session, storage)
    if storage.get("AWS_ENDPOINT_URL") is None:  # AWS: the bucket may live in another region
        region = _bucket_region(client, bucket)
        if region and region != storage["AWS_REGION"]:
            storage["AWS_REGION"] = region
            client = _client(session, storage)
    log = "/".join(p for p in (prefix, "_delta_log/") if p)
    try:
        listed = client.list_objects_v2(Bucket=bucket, Prefix=log, MaxKeys=1)
    except Exception as exc:
        raise SinkError(
            f"cannot reach the Delta root {db!r}: {_code(exc)}; check that the bucket exists, "
            "the credentials may list it, and --endpoint-url/--region",
            code="Unreachable",
            fatal=True,
        ) from exc
    return bool(listed.get("KeyCount") or listed.get("Contents"))


def probe(session: Any, storage: dict[str, str], uri: str, db: str) -> None:
    """Refuse (fatal SinkError) a store that ignores conditional writes, or a root that cannot
    be written; once per (endpoint, bucket) and process."""
    bucket, _, prefix = uri[len("s3://") :].partition("/")
    endpoint = storage.get("AWS_ENDPOINT_URL")
    with _lock:
        if (endpoint, bucket) in _checked:
            return
    client = _client(session, storage)
    key = "/".join(p for p in (prefix, PROBE_FOLDER, uuid.uuid4().hex) if p)
    try:
        _put(client, bucket, key, db)
        honoured = _refused(client, bucket, key, db)
    finally:
        with contextlib.suppress(Exception):  # a store that may not delete: left for vacuum
            client.delete_object(Bucket=bucket, Key=key)
    if not honoured:
        raise SinkError(
            f"{db}: the store ignores conditional writes (If-None-Match): two writers "
            "committing at once would overwrite each other's Delta commits. Use a store that "
            "honours them (AWS S3, MinIO, Cloudflare R2), or a local root (delta:./lake)",
            code="NoConditionalWrites",
            fatal=True,
        )
    with _lock:
        _checked.add((endpoint, bucket))


def _client(session: Any, storage: dict[str, str]) -> Any:
    from botocore.config import Config

    return session.create_client(
        "s3",
        region_name=storage["AWS_REGION"],
        endpoint_url=storage.get("AWS_ENDPOINT_URL"),
        aws_access_key_id=storage.get("AWS_ACCESS_KEY_ID"),
        aws_secret_access_key=storage.get("AWS_SECRET_ACCESS_KEY"),
        aws_session_token=storage.get("AWS_SESSION_TOKEN"),
        config=Config(retries={"mode": "standard", "max_attempts": 3}),
    )


def _bucket_region(client: Any, bucket: str) -> str | None:
    try:
        response = client.head_bucket(Bucket=bucket)
    except Exception as exc:  # 301/403 still carry the header; the PUT reports the rest
        response = getattr(exc, "response", None) or {}
    headers = response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
    region = headers.get("x-amz-bucket-region")
    return str(region) if region else None


def _put(client: Any, bucket: str, key: str, db: str) -> None:
    try:
        client.put_object(Bucket=bucket, Key=key, Body=b"", IfNoneMatch="*")
    except Exception as exc:
        raise SinkError(
            f"cannot write to the Delta root {db!r}: {_code(exc)}; check that the credentials "
            "may write (s3:PutObject, s3:DeleteObject) under it",
            code="Unreachable",
            fatal=True,
        ) from exc


def _refused(client: Any, bucket: str, key: str, db: str) -> bool:
    """Whether a second create of `key` is refused, as it must be."""
    try:
        client.put_object(Bucket=bucket, Key=key, Body=b"", IfNoneMatch="*")
    except Exception as exc:
        status = getattr(exc, "response", {}).get("ResponseMetadata", {}).get("HTTPStatusCode")
        if status in (409, 412):
            return True
        raise SinkError(
            f"cannot write to the Delta root {db!r}: {_code(exc)}",
            code="Unreachable",
            fatal=True,
        ) from exc
    return False


def _code(exc: BaseException) -> str:
    """An S3 error's code and message, without request details."""
    error = getattr(exc, "response", {}).get("Error", {})
    if error:
        return f"{error.get('Code', '')} {error.get('Message', '')}".strip()
    return type(exc).__name__
