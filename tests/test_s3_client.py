"""S3Client against the real moto server, through the fault proxy where faults are needed."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import os
import re
import subprocess
import sys
import time
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from faultproxy import FaultProxy
from motoserver import MotoServer

from dreambolt import (
    S3AuthError,
    S3Client,
    S3GenericError,
    S3NotFoundError,
    S3ObjectChangedError,
    S3RateLimitError,
)
from dreambolt.s3.transfer import split
from dreambolt.s3.uri import parse_s3_uri

PART = 1024


def fast(endpoint: str, **options: Any) -> S3Client:
    """A client with tiny parts and backoff, so multi-range reads and retries are quick."""
    options.setdefault("part_size", PART)
    options.setdefault("concurrency", 4)
    options.setdefault("backoff_factor", 0.01)
    options.setdefault("max_backoff", 0.05)
    return S3Client(endpoint_url=endpoint, **options)


@pytest.fixture
async def client(proxy: FaultProxy) -> AsyncIterator[S3Client]:
    async with fast(proxy.endpoint_url) as s3_client:
        yield s3_client


def payload(size: int) -> bytes:
    return (hashlib.sha256(str(size).encode()).digest() * (size // 32 + 1))[:size]


@pytest.mark.parametrize("size", [0, 1, PART - 1, PART, PART + 1, 3 * PART + 5])
async def test_read_download_and_iter_every_size(
    client: S3Client, s3: Any, bucket: str, tmp_path: Path, size: int
) -> None:
    data = payload(size)
    s3.put_object(Bucket=bucket, Key="obj.bin", Body=data)
    uri = f"s3://{bucket}/obj.bin"
    assert await client.read(uri) == data
    assert b"".join([chunk async for chunk in client.iter_chunks(uri)]) == data
    target = tmp_path / "out.bin"
    info = await client.download(uri, target)
    assert target.read_bytes() == data
    assert info.size == size
    assert os.listdir(tmp_path) == ["out.bin"]  # no temporary file left behind


async def test_multi_range_read_is_concurrent_ranged_and_pinned(
    client: S3Client, proxy: FaultProxy, s3: Any, bucket: str
) -> None:
    data = payload(5 * PART)
    s3.put_object(Bucket=bucket, Key="big.bin", Body=data)
    assert await client.read(f"s3://{bucket}/big.bin") == data
    ranged = [r for r in proxy.requests if r.method == "GET" and r.has_range]
    assert len(ranged) == len(split(len(data), PART, 4)) == 4  # 5 parts: one round of 4 lanes
    assert not [r for r in proxy.requests if r.method == "GET" and not r.has_range]
    # one HEAD learns size, etag and checksum; every range is pinned to that etag
    etag = s3.head_object(Bucket=bucket, Key="big.bin")["ETag"]
    assert all(r.headers.get("If-Match") == etag for r in ranged)
    heads = [r for r in proxy.requests if r.method == "HEAD" and r.path.endswith("big.bin")]
    assert len(heads) == 1
    assert ranged[0].at >= heads[0].at


async def test_head_and_progress(client: S3Client, s3: Any, bucket: str) -> None:
    data = payload(3 * PART)
    s3.put_object(Bucket=bucket, Key="a/b.bin", Body=data)
    info = await client.head(f"s3://{bucket}/a/b.bin")
    etag = s3.head_object(Bucket=bucket, Key="a/b.bin")["ETag"]
    assert (info.size, info.etag) == (len(data), etag)
    seen: list[int] = []
    await client.read(info, progress=seen.append)
    assert sum(seen) == len(data)


async def test_slowdown_twice_then_success_takes_three_attempts(
    client: S3Client, proxy: FaultProxy, s3: Any, bucket: str
) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"hello")
    rule = proxy.add_rule("slowdown", method="GET", path=f"/{bucket}/k$", times=2)
    assert await client.read(f"s3://{bucket}/k") == b"hello"
    assert rule.fired == 2
    assert proxy.count("GET", f"/{bucket}/k$") == 3


async def test_slowdown_every_time_gives_rate_limit_error_after_all_retries(
    proxy: FaultProxy, s3: Any, bucket: str
) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"hello")
    proxy.add_rule("slowdown", method="GET", path=f"/{bucket}/k$")
    async with fast(proxy.endpoint_url, max_retries=4) as s3_client:
        with pytest.raises(S3RateLimitError) as caught:
            await s3_client.read(f"s3://{bucket}/k")
    assert proxy.count("GET", f"/{bucket}/k$") == 1 + 4
    assert caught.value.code == "SlowDown" and caught.value.status == 503
    assert f"s3://{bucket}/k" in str(caught.value) and "--concurrency" in str(caught.value)


async def test_retry_after_is_honoured(proxy: FaultProxy, s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    proxy.add_rule("slowdown", method="GET", path=f"/{bucket}/k$", times=1, retry_after=0.4)
    async with fast(proxy.endpoint_url, max_backoff=2.0) as s3_client:
        started = time.monotonic()
        assert await s3_client.read(f"s3://{bucket}/k") == b"x"
    assert time.monotonic() - started >= 0.4


async def test_server_errors_and_resets_are_retried(
    client: S3Client, proxy: FaultProxy, s3: Any, bucket: str
) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"payload")
    proxy.add_rule("error", status=500, code="InternalError", method="GET", path="/k$", times=1)
    proxy.add_rule("reset", method="GET", path="/k$", times=1)
    assert await client.read(f"s3://{bucket}/k") == b"payload"
    assert proxy.count("GET", "/k$") >= 3


@pytest.mark.parametrize(
    ("status", "code", "error"),
    [
        (403, "AccessDenied", S3AuthError),
        (404, "NoSuchKey", S3NotFoundError),
        (412, "PreconditionFailed", S3ObjectChangedError),
    ],
)
async def test_client_errors_are_never_retried(
    client: S3Client,
    proxy: FaultProxy,
    s3: Any,
    bucket: str,
    status: int,
    code: str,
    error: type[Exception],
) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    proxy.add_rule("error", status=status, code=code, method="GET", path="/k$")
    with pytest.raises(error):
        await client.read(f"s3://{bucket}/k")
    assert proxy.count("GET", "/k$") == 1


async def test_cut_body_refetches_only_that_range(
    client: S3Client, proxy: FaultProxy, s3: Any, bucket: str
) -> None:
    data = payload(4 * PART + 100)
    s3.put_object(Bucket=bucket, Key="cut.bin", Body=data)
    rule = proxy.add_rule(
        "cut", method="GET", path="/cut.bin$", has_range=True, times=1, cut_after=PART // 2
    )
    got = await client.read(f"s3://{bucket}/cut.bin")
    assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()
    assert rule.fired == 1
    ranges = [r.headers["Range"] for r in proxy.requests if r.has_range]
    assert len(ranges) == len(split(len(data), PART, 4)) + 1
    repeated = {r for r in ranges if ranges.count(r) > 1}
    assert len(repeated) == 1
    assert ranges.count(repeated.pop()) == 2


async def test_overwrite_between_ranges_raises_object_changed(
    proxy: FaultProxy, s3: Any, bucket: str
) -> None:
    s3.put_object(Bucket=bucket, Key="moving.bin", Body=payload(3 * PART))
    seen = 0

    def overwrite_before_second_range(_: object) -> None:
        nonlocal seen
        seen += 1
        if seen == 2:
            s3.put_object(Bucket=bucket, Key="moving.bin", Body=os.urandom(3 * PART + 1))

    proxy.add_rule(
        "call", method="GET", path="/moving.bin$", has_range=True, fn=overwrite_before_second_range
    )
    async with fast(proxy.endpoint_url, concurrency=1) as s3_client:
        with pytest.raises(S3ObjectChangedError) as caught:
            await s3_client.read(f"s3://{bucket}/moving.bin")
        assert caught.value.status == 412
        with pytest.raises(S3ObjectChangedError):
            async for _ in s3_client.iter_chunks(f"s3://{bucket}/moving.bin"):
                seen = 1  # the next ranged GET overwrites again


async def test_missing_bucket_and_key(client: S3Client, bucket: str) -> None:
    with pytest.raises(S3NotFoundError) as no_key:
        await client.read(f"s3://{bucket}/nope.csv")
    assert no_key.value.code == "NoSuchKey" or no_key.value.status == 404
    assert f"s3://{bucket}/nope.csv" in str(no_key.value)
    assert "dreambolt ls" in str(no_key.value)
    with pytest.raises(S3NotFoundError) as no_bucket:
        async for _ in client.list("s3://no-such-bucket-here/x/"):
            pass
    assert no_bucket.value.code == "NoSuchBucket"
    assert "s3://no-such-bucket-here/x/" in str(no_bucket.value)
    assert "bucket does not exist" in str(no_bucket.value)


async def test_bad_credentials_and_denied_user(
    moto: MotoServer, s3: Any, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # moto checks only header-signed requests (a presigned URL gets a 500 under enable_auth), so
    # the object is bigger than a part: HEAD and ranged GETs, header-signed by botocore. The
    # small-object path's presigned GETs meet the same errors in test_presigned_get_errors_*.
    body = os.urandom(4 * PART)
    s3.put_object(Bucket=bucket, Key="k", Body=body)
    reader = moto.create_user(bucket, can_read=True)
    lister = moto.create_user(bucket, can_read=False)
    uri = f"s3://{bucket}/k"
    with moto.enable_auth():
        async with fast(moto.endpoint_url) as default_keys:  # not an IAM user: unknown key
            with pytest.raises(S3AuthError) as unknown:
                await default_keys.read(uri)
        assert unknown.value.code == "InvalidAccessKeyId" and unknown.value.status == 403
        assert uri in str(unknown.value) and "AWS_PROFILE" in str(unknown.value)

        monkeypatch.setenv("AWS_ACCESS_KEY_ID", lister.access_key_id)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", lister.secret_access_key)
        async with fast(moto.endpoint_url) as denied:
            with pytest.raises(S3AuthError) as refused:
                await denied.read(uri)
        assert refused.value.status == 403 and "s3:GetObject" in str(refused.value)
        assert lister.secret_access_key not in str(refused.value)

        monkeypatch.setenv("AWS_ACCESS_KEY_ID", reader.access_key_id)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", reader.secret_access_key)
        async with fast(moto.endpoint_url) as allowed:
            assert await allowed.read(uri) == body


async def test_no_credentials_at_all(
    proxy: FaultProxy, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    async with fast(proxy.endpoint_url) as s3_client:
        with pytest.raises(S3AuthError) as caught:
            await s3_client.read(f"s3://{bucket}/k")
    message = str(caught.value)
    assert caught.value.code == "NoCredentials"
    for fix in ("aws configure", "AWS_PROFILE", "AWS_ACCESS_KEY_ID", "instance role"):
        assert fix in message
    assert f"s3://{bucket}/k" in message


async def test_secret_appears_in_no_error_or_log(
    client: S3Client,
    proxy: FaultProxy,
    s3: Any,
    bucket: str,
    fake_secret: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("DEBUG")
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    proxy.add_rule(
        "error",
        status=403,
        code="SignatureDoesNotMatch",
        method="GET",
        message=f"The request signature we calculated does not match; "
        f"secret={fake_secret} X-Amz-Signature=abcdef0123456789abcdef",
    )
    with pytest.raises(S3AuthError) as caught:
        await client.read(f"s3://{bucket}/k")
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("dreambolt"))
    assert "GetObject" in ours  # our own log did record the failure
    texts = [str(caught.value), repr(caught.value), ours]
    assert all(fake_secret not in text for text in texts)
    assert "abcdef0123456789abcdef" not in str(caught.value)
    assert "SignatureDoesNotMatch" in str(caught.value)


async def test_region_from_uri_gets_its_own_cached_client(
    client: S3Client, proxy: FaultProxy, s3: Any, bucket: str
) -> None:
    s3.put_object(Bucket=bucket, Key="r.csv", Body=b"a,b\n")
    assert await client.read(f"s3://{bucket}.us-west-2.amazonaws.com/r.csv") == b"a,b\n"
    west = client.calls.clients["us-west-2"]
    assert await client.read(f"https://{bucket}.s3.us-west-2.amazonaws.com/r.csv") == b"a,b\n"
    assert client.calls.clients["us-west-2"] is west
    assert await client.read(f"https://{bucket}.s3.eu-central-1.amazonaws.com/r.csv") == b"a,b\n"
    assert set(client.calls.clients) == {"us-west-2", "eu-central-1"}
    # the signing scope: in the Authorization header, or in a presigned GET's query
    scopes = [
        r.headers.get("Authorization", "") + unquote(r.query)
        for r in proxy.requests
        if r.method == "GET"
    ]
    assert sum("/us-west-2/s3/aws4_request" in s for s in scopes) == 2
    assert sum("/eu-central-1/s3/aws4_request" in s for s in scopes) == 1


async def test_region_discovered_from_bucket_once(
    client: S3Client, proxy: FaultProxy, s3: Any
) -> None:
    name = f"eu-{os.urandom(4).hex()}"
    s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    s3.put_object(Bucket=name, Key="a", Body=b"1")
    s3.put_object(Bucket=name, Key="b", Body=b"2")
    assert await asyncio.gather(client.read(f"s3://{name}/a"), client.read(f"s3://{name}/b")) == [
        b"1",
        b"2",
    ]
    assert proxy.count("HEAD", f"^/{name}/?$") == 1
    gets = [
        r.headers.get("Authorization", "") + unquote(r.query)
        for r in proxy.requests
        if r.method == "GET"
    ]
    assert all("/eu-west-1/s3/aws4_request" in g for g in gets) and len(gets) == 2


async def test_list_all_pages_and_globs(client: S3Client, s3: Any, bucket: str) -> None:
    def put(key: str) -> None:
        s3.put_object(Bucket=bucket, Key=key, Body=b"")

    keys = [f"many/{i:05d}.csv" for i in range(1100)]  # two pages of ListObjectsV2 (1,000 each)
    globbed = ["logs/2024-01/part-0.csv", "logs/2024-02/part-1.csv"]
    others = ["logs/2024-01/other.csv", "logs/2023-12/part-0.csv", "logs/2024-01/x/part-2.csv"]
    await asyncio.gather(*(asyncio.to_thread(put, k) for k in [*keys, *globbed, *others]))
    listed = [info.uri.key async for info in client.list(f"s3://{bucket}/many/")]
    assert listed == keys
    matched = [info.uri.key async for info in client.list(f"s3://{bucket}/logs/2024-*/part-*.csv")]
    assert matched == globbed


async def test_failed_download_leaves_no_file(
    client: S3Client, proxy: FaultProxy, s3: Any, bucket: str, tmp_path: Path
) -> None:
    s3.put_object(Bucket=bucket, Key="f.bin", Body=payload(4 * PART))
    proxy.add_rule(
        "error",
        status=500,
        code="InternalError",
        method="GET",
        has_range=True,
        path="/f.bin$",
        times=None,
    )
    with pytest.raises(S3GenericError):
        await client.download(f"s3://{bucket}/f.bin", tmp_path / "f.bin")
    assert list(tmp_path.iterdir()) == []


async def test_download_48_mib_keeps_memory_bounded(
    moto: MotoServer, s3: Any, bucket: str, tmp_path: Path
) -> None:
    size = 48 * 2**20
    data = os.urandom(size)
    s3.put_object(Bucket=bucket, Key="big.bin", Body=data)
    digest = hashlib.sha256(data).digest()
    del data
    async with S3Client(
        endpoint_url=moto.endpoint_url, part_size=8 * 2**20, concurrency=4
    ) as s3_client:
        await s3_client.head(f"s3://{bucket}/big.bin")  # warm the client up outside the trace
        tracemalloc.start()
        try:
            await s3_client.download(f"s3://{bucket}/big.bin", tmp_path / "big.bin")
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    with (tmp_path / "big.bin").open("rb") as handle:
        assert hashlib.file_digest(handle, "sha256").digest() == digest
    print(f"download 48 MiB: peak traced allocation {peak / 2**20:.1f} MiB")
    # ranges stream to disk in chunks: less than one 8 MiB part, never the whole 48 MiB
    assert peak < 8 * 2**20


# --- small objects: one presigned GET on the client's own HTTP session ------------------------


async def test_small_objects_are_fetched_with_one_presigned_get(
    client: S3Client, proxy: FaultProxy, s3: Any, bucket: str
) -> None:
    from dreambolt.s3.transfer import read_object

    s3.put_object(Bucket=bucket, Key="small ü+.csv", Body=b"a,b\n1,2\n", ChecksumAlgorithm="CRC32")
    head = s3.head_object(Bucket=bucket, Key="small ü+.csv", ChecksumMode="ENABLED")
    info, data = await read_object(client.calls, parse_s3_uri(f"s3://{bucket}/small ü+.csv"))
    assert data == b"a,b\n1,2\n"
    assert (info.size, info.etag, info.last_modified) == (8, head["ETag"], head["LastModified"])
    assert info.checksum == ("CRC32", head["ChecksumCRC32"])
    gets = [r for r in proxy.requests if r.method == "GET"]
    assert len(gets) == 1 and gets[0].path == f"/{bucket}/small ü+.csv"
    assert "X-Amz-Signature=" in gets[0].query and "X-Amz-Credential=" in gets[0].query
    headers = {k.lower(): v for k, v in gets[0].headers.items()}
    assert headers.get("x-amz-checksum-mode") == "ENABLED" and "authorization" not in headers


async def test_presigned_get_errors_read_like_botocores(
    client: S3Client, proxy: FaultProxy, s3: Any, bucket: str, fake_secret: str
) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    proxy.add_rule(
        "error",
        status=403,
        code="InvalidAccessKeyId",
        method="GET",
        path="/k$",
        message="The AWS Access Key Id you provided does not exist in our records.",
    )
    with pytest.raises(S3AuthError) as caught:
        await client.read(f"s3://{bucket}/k")
    assert caught.value.code == "InvalidAccessKeyId" and caught.value.status == 403
    assert "AWS_PROFILE" in str(caught.value) and proxy.count("GET", "/k$") == 1
    # A broken connection is reported without the URL's signature or key ID.
    proxy.reset()
    proxy.add_rule("reset", method="GET", path="/k$")
    async with fast(proxy.endpoint_url, max_retries=0) as s3_client:
        with pytest.raises(S3GenericError) as broken:
            await s3_client.read(f"s3://{bucket}/k")
    assert proxy.count("GET", "/k$") >= 1
    text = f"{broken.value} {broken.value!r}"
    assert os.environ["AWS_ACCESS_KEY_ID"] not in text and fake_secret not in text
    assert not re.search(r"X-Amz-Signature=(?!\*\*\*)", text), text


def test_split_fills_every_round_of_requests() -> None:
    mib = 2**20
    for size in (1, PART, 5 * PART + 1, 271_136_768, 1_087_853_183, 20 * mib, 24 * 8 * mib):
        for part, lanes in ((PART, 4), (8 * mib, 16), (8 * mib, 64)):
            spans = split(size, part, lanes)
            assert spans[0][0] == 0 and spans[-1][1] == size - 1
            assert all(a[1] + 1 == b[0] for a, b in itertools.pairwise(spans))
            sizes = [b - a + 1 for a, b in spans]
            assert max(sizes) <= part * 5 // 4 + 1  # at most +25%
            if len(spans) > 1:
                assert min(sizes) >= part // 4 - 1  # at least a quarter part
            if len(spans) > lanes:
                assert len(spans) % lanes == 0  # no round of a few stragglers
    assert len(split(271_136_768, 8 * mib, 16)) == 32  # 33 parts of 8 MiB: one round fewer
    # fewer parts than lanes: the idle lanes take a share, down to a quarter part each
    assert len(split(64 * mib, 8 * mib, 16)) == 16
    assert len(split(271_136_768, 8 * mib, 64)) == 64
    assert len(split(9 * mib, 8 * mib, 16)) == 4


# --- no process-wide side effects ---------------------------------------------------------------

PROCESS_STATE = r"""
import asyncio, gc, json, sys

events, watching = [], False

def hook(event, args):
    if watching and event.startswith("ctypes."):  # dlopen/dlsym/call_function: malloc_trim & co
        events.append(f"{event} {args[1] if event == 'ctypes.dlsym' else ''}".strip())

sys.addaudithook(hook)
for name in ("disable", "enable", "freeze", "set_threshold"):
    def spy(*args, _name=name, _real=getattr(gc, name)):
        if watching:
            events.append(f"gc.{_name}")
        return _real(*args)
    setattr(gc, name, spy)

from dreambolt import S3Client

async def main():
    global watching
    watching = True
    async with S3Client(endpoint_url=sys.argv[1], part_size=1024, concurrency=4) as s3:
        data = await s3.read(sys.argv[2])  # a new client, then several ranges joined
    watching = False
    return len(data)

size = asyncio.run(main())
print(json.dumps({"size": size, "events": events}))
"""


def test_the_client_leaves_the_gc_and_the_allocator_alone(
    proxy: FaultProxy, s3: Any, bucket: str
) -> None:
    """Creating a client and reading a multi-range object neither switches the garbage
    collector off (other threads and the caller run meanwhile) nor calls malloc_trim."""
    s3.put_object(Bucket=bucket, Key="big.bin", Body=payload(5 * PART))
    done = subprocess.run(
        [sys.executable, "-c", PROCESS_STATE, proxy.endpoint_url, f"s3://{bucket}/big.bin"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["size"] == 5 * PART
    assert proxy.count("GET", "/big.bin$", has_range=True) > 1
    assert result["events"] == []
