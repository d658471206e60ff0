"""Pure units: when the small-object GET may use a presigned URL, and what its errors become.

(The presigned GETs themselves are exercised over HTTP in test_s3_client.py and test_ingest.py.)
"""

from __future__ import annotations

from typing import Any

import pytest
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session

from dreambolt.errors import S3AuthError, S3NotFoundError, S3RateLimitError, translate
from dreambolt.s3.presigned import _client_error, _same_endpoint

CONFIG = AioConfig(signature_version="s3v4")


@pytest.mark.parametrize(
    ("region", "endpoint", "bucket", "same"),
    [
        ("us-east-1", None, "plain-bucket", True),  # the global endpoint is us-east-1's own
        ("eu-west-1", None, "plain-bucket", False),  # presigned for the global endpoint: not used
        ("us-east-1", "http://127.0.0.1:9000", "plain-bucket", True),  # custom endpoint, path style
        ("eu-west-1", "https://minio.example:9000", "my.dotted.bucket", True),
    ],
)
async def test_presigned_only_where_the_client_itself_goes(
    region: str, endpoint: str | None, bucket: str, same: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-a-real-secret-0000")
    options: dict[str, Any] = {"region_name": region, "config": CONFIG}
    if endpoint:
        options["endpoint_url"] = endpoint
        options["config"] = CONFIG.merge(AioConfig(s3={"addressing_style": "path"}))
    async with get_session().create_client("s3", **options) as client:
        url = await client.generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": "k.csv"}, ExpiresIn=60
        )
        assert "X-Amz-Signature=" in url
        assert _same_endpoint(client, bucket, url) is same, url


def test_error_responses_become_the_client_errors_botocore_raises() -> None:
    body = (
        b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>SlowDown</Code>"
        b"<Message>Please reduce your request rate.</Message></Error>"
    )
    slow = translate(_client_error(503, {"retry-after": "3"}, body), "s3://b/k")
    assert isinstance(slow, S3RateLimitError) and slow.retry_after == 3.0
    denied = translate(
        _client_error(
            403, {}, b"<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>"
        ),
        "s3://b/k",
    )
    assert isinstance(denied, S3AuthError) and denied.code == "AccessDenied"
    bodyless = _client_error(404, {}, b"")
    assert bodyless.response["Error"] == {"Code": "404", "Message": "Not Found"}
    assert isinstance(translate(bodyless, "s3://b/k"), S3NotFoundError)
    garbled = _client_error(500, {}, b"<html>oops")
    assert garbled.response["Error"]["Code"] == "500"
