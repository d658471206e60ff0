"""The test harness itself: moto server, fault proxy and fixtures, driven by real boto3."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import aiobotocore.session
import aiohttp
import botocore.exceptions
import pytest
from botocore.config import Config
from faultproxy import FaultProxy, RecordedRequest
from motoserver import REGION, MotoServer

NO_RETRY = Config(s3={"addressing_style": "path"}, retries={"total_max_attempts": 1})
DATA = bytes(range(256)) * 1024  # 256 KiB


@pytest.fixture
def via_proxy(proxy: FaultProxy) -> Iterator[Any]:
    """A boto3 S3 client through the proxy, with botocore's retries off."""
    client = proxy_client(proxy)
    try:
        yield client
    finally:
        client.close()


def proxy_client(proxy: FaultProxy, **kwargs: Any) -> Any:
    import boto3

    return boto3.client(
        "s3", endpoint_url=proxy.endpoint_url, region_name=REGION, config=NO_RETRY, **kwargs
    )


def error_of(exc: botocore.exceptions.ClientError) -> tuple[str, int]:
    return exc.response["Error"]["Code"], exc.response["ResponseMetadata"]["HTTPStatusCode"]


def test_env_is_fake(moto: MotoServer, fake_secret: str) -> None:
    assert os.environ["AWS_SECRET_ACCESS_KEY"] == fake_secret
    assert len(fake_secret) == 40
    assert "AWS_PROFILE" not in os.environ
    assert not os.path.exists(os.environ["AWS_SHARED_CREDENTIALS_FILE"])


def test_forwards_and_records(proxy: FaultProxy, via_proxy: Any, s3: Any, bucket: str) -> None:
    big = os.urandom(3 << 20)  # above aiohttp's default 1 MiB request body limit
    via_proxy.put_object(Bucket=bucket, Key="big.bin", Body=big)
    assert s3.get_object(Bucket=bucket, Key="big.bin")["Body"].read() == big

    via_proxy.put_object(Bucket=bucket, Key="dir/a b.txt", Body=b"hello", ContentType="text/x-a")
    got = via_proxy.get_object(Bucket=bucket, Key="dir/a b.txt")
    assert got["Body"].read() == b"hello"
    assert got["ContentType"] == "text/x-a"
    head = via_proxy.head_object(Bucket=bucket, Key="big.bin")
    assert head["ContentLength"] == len(big)
    listed = via_proxy.list_objects_v2(Bucket=bucket, Prefix="dir/")
    assert [o["Key"] for o in listed["Contents"]] == ["dir/a b.txt"]

    assert proxy.count() == 5
    assert proxy.count("PUT") == 2
    assert proxy.count("GET", path=r"/dir/a b\.txt$") == 1
    assert proxy.count("HEAD") == 1
    assert proxy.count("GET", query=r"list-type=2") == 1
    assert proxy.count(has_range=True) == 0
    first = proxy.requests[0]
    assert first.rule is None
    assert first.headers["Host"] == proxy.endpoint_url.removeprefix("http://")
    assert first.body_size == len(big)


def test_slowdown_twice_then_success(
    proxy: FaultProxy, via_proxy: Any, s3: Any, bucket: str
) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"data")
    rule = proxy.add_rule("slowdown", method="GET", path=r"/k$", times=2, retry_after=1)
    for _ in range(2):
        with pytest.raises(botocore.exceptions.ClientError) as info:
            via_proxy.get_object(Bucket=bucket, Key="k")
        assert error_of(info.value) == ("SlowDown", 503)
        assert info.value.response["Error"]["Message"] == "Please reduce your request rate."
        assert info.value.response["ResponseMetadata"]["HTTPHeaders"]["retry-after"] == "1"
    assert via_proxy.get_object(Bucket=bucket, Key="k")["Body"].read() == b"data"
    assert rule.fired == 2
    assert proxy.count("GET") == 3
    assert [r.rule is rule for r in proxy.requests] == [True, True, False]


def test_cut_body_is_a_short_read(proxy: FaultProxy, via_proxy: Any, s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=DATA)
    proxy.add_rule("cut", method="GET", cut_after=1000, times=1)
    got = via_proxy.get_object(Bucket=bucket, Key="k")
    assert got["ContentLength"] == len(DATA)
    with pytest.raises(botocore.exceptions.ResponseStreamingError):
        got["Body"].read()
    # The connection was dropped, not the client: the next request goes through.
    assert via_proxy.get_object(Bucket=bucket, Key="k")["Body"].read() == DATA


def test_cut_body_delivers_the_prefix(
    proxy: FaultProxy, via_proxy: Any, s3: Any, bucket: str
) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=DATA)
    proxy.add_rule("cut", method="GET", cut_after=100_000, times=1)
    body = via_proxy.get_object(Bucket=bucket, Key="k")["Body"]
    received = b""
    # Read in chunks, botocore notices the short body itself (IncompleteReadError); one
    # read() gets urllib3's ProtocolError wrapped in ResponseStreamingError.
    with pytest.raises(botocore.exceptions.IncompleteReadError):
        while chunk := body.read(4096):
            received += chunk
    assert received == DATA[:100_000]


def test_ranged_get_through_proxy(proxy: FaultProxy, via_proxy: Any, s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=DATA)
    got = via_proxy.get_object(Bucket=bucket, Key="k", Range="bytes=1000-1999")
    assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert got["ContentRange"] == f"bytes 1000-1999/{len(DATA)}"
    assert got["Body"].read() == DATA[1000:2000]
    assert proxy.count("GET", has_range=True) == 1
    assert proxy.count(has_range=False) == 0


def test_error_rules(proxy: FaultProxy, via_proxy: Any, s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    proxy.add_rule("error", method="GET", status=403, code="AccessDenied", times=1)
    proxy.add_rule("error", method="HEAD", code="NoSuchKey", times=1)
    proxy.add_rule("error", method="GET", status=500, times=1)
    with pytest.raises(botocore.exceptions.ClientError) as info:
        via_proxy.get_object(Bucket=bucket, Key="k")
    assert error_of(info.value) == ("AccessDenied", 403)
    assert info.value.response["ResponseMetadata"]["RequestId"]
    # Like S3, a failed HEAD has no body, so botocore only has the status.
    with pytest.raises(botocore.exceptions.ClientError) as info:
        via_proxy.head_object(Bucket=bucket, Key="k")
    assert error_of(info.value) == ("404", 404)
    with pytest.raises(botocore.exceptions.ClientError) as info:
        via_proxy.get_object(Bucket=bucket, Key="k")
    assert error_of(info.value) == ("InternalError", 500)
    assert via_proxy.get_object(Bucket=bucket, Key="k")["Body"].read() == b"x"


def test_reset_is_a_connection_error(
    proxy: FaultProxy, via_proxy: Any, s3: Any, bucket: str
) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    rule = proxy.add_rule("reset", method="GET", times=1)
    with pytest.raises((botocore.exceptions.ConnectionError, botocore.exceptions.HTTPClientError)):
        via_proxy.get_object(Bucket=bucket, Key="k")
    assert rule.fired == 1
    assert via_proxy.get_object(Bucket=bucket, Key="k")["Body"].read() == b"x"


def test_delay_and_call_rules(proxy: FaultProxy, via_proxy: Any, s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"a" * 100)
    seen: list[RecordedRequest] = []

    def overwrite(req: RecordedRequest) -> None:
        seen.append(req)
        s3.put_object(Bucket=bucket, Key="k", Body=b"b" * 100)

    proxy.add_rule("delay", method="GET", query=r"^$", delay=0.3, times=1)
    call = proxy.add_rule("call", method="GET", has_range=True, fn=overwrite, times=1)
    start = time.monotonic()
    assert via_proxy.get_object(Bucket=bucket, Key="k")["Body"].read() == b"a" * 100
    assert time.monotonic() - start >= 0.3
    # The callback runs before forwarding, so the range already sees the new object.
    got = via_proxy.get_object(Bucket=bucket, Key="k", Range="bytes=0-9")
    assert got["Body"].read() == b"b" * 10
    assert call.fired == 1 and seen[0].has_range and seen[0].rule is call
    assert proxy.errors == []


def test_auth_enforcement(moto: MotoServer, proxy: FaultProxy, s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"secret data")
    reader = moto.create_user(bucket)
    lister = moto.create_user(bucket, can_read=False)

    def client_for(access_key_id: str | None = None, secret: str | None = None) -> Any:
        return proxy_client(proxy, aws_access_key_id=access_key_id, aws_secret_access_key=secret)

    default = client_for()
    good = client_for(reader.access_key_id, reader.secret_access_key)
    denied = client_for(lister.access_key_id, lister.secret_access_key)
    try:
        with moto.enable_auth():
            with pytest.raises(botocore.exceptions.ClientError) as info:
                default.get_object(Bucket=bucket, Key="k")
            assert error_of(info.value) == ("InvalidAccessKeyId", 403)
            with pytest.raises(botocore.exceptions.ClientError) as info:
                denied.get_object(Bucket=bucket, Key="k")
            assert error_of(info.value) == ("AccessDenied", 403)
            assert denied.list_objects_v2(Bucket=bucket)["KeyCount"] == 1
            # Signed for the proxy's Host and verified by moto: the proxy kept Host intact.
            assert good.get_object(Bucket=bucket, Key="k")["Body"].read() == b"secret data"
        assert default.get_object(Bucket=bucket, Key="k")["Body"].read() == b"secret data"
        assert s3.head_object(Bucket=bucket, Key="k")["ContentLength"] == 11
    finally:
        for client in (default, good, denied):
            client.close()


def test_proxy_serves_a_subprocess(proxy: FaultProxy, s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"from a child")
    proxy.add_rule("slowdown", times=1)
    code = (
        "import boto3, sys\n"
        f"c = boto3.client('s3', endpoint_url={proxy.endpoint_url!r})\n"
        f"sys.stdout.write(c.get_object(Bucket={bucket!r}, Key='k')['Body'].read().decode())\n"
        "c.close()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout == "from a child"
    assert proxy.count("GET") == 2  # botocore's own retry got past the SlowDown


async def test_aiobotocore_through_proxy(proxy: FaultProxy, s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=DATA)
    proxy.add_rule("cut", method="GET", cut_after=5000, times=1)
    session = aiobotocore.session.get_session()
    async with session.create_client(
        "s3", endpoint_url=proxy.endpoint_url, region_name=REGION, config=NO_RETRY
    ) as client:
        got = await client.get_object(Bucket=bucket, Key="k")
        with pytest.raises(aiohttp.ClientPayloadError):
            await got["Body"].read()
        got["Body"].close()
        got = await client.get_object(Bucket=bucket, Key="k", Range="bytes=5-9")
        async with got["Body"] as body:
            assert await body.read() == DATA[5:10]
    assert proxy.count("GET") == 2


async def test_aiohttp_resends_once_after_reset(proxy: FaultProxy, s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    session = aiobotocore.session.get_session()
    async with session.create_client(
        "s3", endpoint_url=proxy.endpoint_url, region_name=REGION, config=NO_RETRY
    ) as client:
        await client.head_object(Bucket=bucket, Key="k")  # leaves a keep-alive connection
        rule = proxy.add_rule("reset", method="GET", times=1)
        got = await client.get_object(Bucket=bucket, Key="k")
        async with got["Body"] as body:
            assert await body.read() == b"x"
    # botocore's retries are off: aiohttp itself re-sent the GET on a fresh connection.
    assert rule.fired == 1
    assert proxy.count("GET") == 2


def test_upstream_failure_is_a_502(proxy: FaultProxy) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"  # bound, never listening
        with FaultProxy(dead) as broken:
            client = proxy_client(broken)
            try:
                with pytest.raises(botocore.exceptions.ClientError) as info:
                    client.list_buckets()
            finally:
                client.close()
            assert error_of(info.value) == ("ProxyError", 502)
            assert len(broken.errors) == 1
