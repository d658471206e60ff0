"""Branches of URI parsing and error translation that the S3 tests do not reach on their own:
an endpoint spelled inside an s3:// URI, an error translated twice, a checksum mismatch reported
by botocore, a timeout. Pure functions, so plain values stand in for the exceptions."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, FlexibleChecksumError

from dreambolt.errors import (
    S3GenericError,
    S3IntegrityError,
    S3NotFoundError,
    translate,
)
from dreambolt.s3.uri import parse_s3_uri

URI = "s3://bucket/data.csv"


@pytest.mark.parametrize(
    ("text", "region"),
    [
        ("s3://s3.eu-west-1.amazonaws.com/bucket/dir/data.csv", "eu-west-1"),
        ("s3://s3.dualstack.ap-south-1.amazonaws.com/bucket/dir/data.csv", "ap-south-1"),
    ],
)
def test_path_style_endpoint_inside_s3_uri(text: str, region: str) -> None:
    """`s3://ENDPOINT/bucket/key` (as some consoles copy it): the bucket is the first segment."""
    uri = parse_s3_uri(text)
    assert (uri.bucket, uri.key, uri.region) == ("bucket", "dir/data.csv", region)


def test_translating_a_translated_error_keeps_it() -> None:
    first = translate(
        ClientError({"Error": {"Code": "NoSuchKey"}, "ResponseMetadata": {}}, "GetObject"), URI
    )
    assert isinstance(first, S3NotFoundError)
    assert translate(first, URI) is first


def test_botocore_checksum_mismatch_is_an_integrity_error() -> None:
    err = translate(FlexibleChecksumError(error_msg="Expected checksum x did not match y"), URI)
    assert isinstance(err, S3IntegrityError)
    assert err.code == "ChecksumMismatch"
    assert URI in str(err) and "checksum" in str(err)


@pytest.mark.parametrize("exc", [TimeoutError(), TimeoutError("read")])
def test_timeouts_are_generic_errors_coded_timeout(exc: BaseException) -> None:
    err = translate(exc, URI)
    assert isinstance(err, S3GenericError)
    assert err.code == "Timeout"
    assert err.__cause__ is exc
