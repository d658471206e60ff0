"""PresignedGets: small whole-object GETs presigned by botocore, sent on DreamBolt's own session.

Over HTTP to moto (through the fault proxy, which records what arrived), in regions other than
us-east-1, compared with what the plain `get_object` returns or raises for the same request.
"""

from __future__ import annotations

import base64
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import unquote

import aiohttp
import pytest
from aiobotocore.config import AioConfig
from aiohttp import web
from botocore.config import Config
from botocore.exceptions import ClientError, EndpointConnectionError
from faultproxy import FaultProxy
from motoserver import MotoServer, free_port
from threadserver import ThreadedServer

from dreambolt.errors import (
    S3AuthError,
    S3BaseError,
    S3NotFoundError,
    S3ObjectChangedError,
    S3RateLimitError,
    translate,
)
from dreambolt.s3.presigned import (
    PresignedGets,
    client_error,
    get_small_object,
    route_for,
    same_endpoint,
)
from dreambolt.s3.session import new_session

REGIONS = ("eu-west-1", "ap-southeast-2", "us-east-1")
FIELDS = ("ContentLength", "ETag", "LastModified", "ChecksumCRC32", "ChecksumType")


@asynccontextmanager
async def lean(
    endpoint: str, region: str = "eu-west-1"
) -> AsyncIterator[tuple[Any, PresignedGets]]:
    """An S3 client configured as S3Client configures one for `endpoint`, and a PresignedGets."""
    session = new_session()
    config = AioConfig(
        retries={"total_max_attempts": 1},
        s3={"addressing_style": "path"},
        signature_version="s3v4",
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    gets = PresignedGets(session, concurrency=4, connect_timeout=2.0, read_timeout=5.0)
    async with session.create_client(
        "s3", region_name=region, endpoint_url=endpoint, config=config
    ) as client:
        try:
            yield client, gets
        finally:
            await gets.close()


def count_botocore_gets(client: Any) -> list[str]:
    """The URLs of GetObject requests botocore itself sends on `client` (appended as sent)."""
    sent: list[str] = []

    def before_send(request: Any, **_: Any) -> None:
        sent.append(request.url)

    client.meta.events.register("before-send.s3.GetObject", before_send)
    return sent


def regional_bucket(moto: MotoServer, region: str, name: str) -> Any:
    """Create bucket `name` in `region`; returns a boto3 client of that region (close it)."""
    s3 = moto.client("s3", region_name=region)
    if region == "us-east-1":
        s3.create_bucket(Bucket=name)
    else:
        s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": region})
    return s3


async def outcome(call: Any) -> S3BaseError:
    """The DreamBolt error a GET raises, translated as S3Client's choke point translates it."""
    with pytest.raises(ClientError) as caught:
        await call
    return translate(caught.value, "s3://b/k")


def same_error(ours: S3BaseError, botocores: S3BaseError) -> None:
    assert type(ours) is type(botocores)
    assert (ours.code, ours.status) == (botocores.code, botocores.status)
    assert getattr(ours, "retry_after", None) == getattr(botocores, "retry_after", None)


# --- over HTTP -----------------------------------------------------------------------------------


@pytest.mark.parametrize("region", REGIONS)
async def test_gets_in_any_region_are_presigned_and_read_like_get_object(
    moto: MotoServer, proxy: FaultProxy, region: str
) -> None:
    name = f"lean-{region}-{free_port()}"
    boto = regional_bucket(moto, region, name)
    try:
        boto.put_object(Bucket=name, Key="a b+ü.csv", Body=b"a,b\n1,2\n", ChecksumAlgorithm="CRC32")
        params = {"Bucket": name, "Key": "a b+ü.csv", "ChecksumMode": "ENABLED"}
        async with lean(proxy.endpoint_url, region) as (client, gets):
            sent = count_botocore_gets(client)
            fields, body = await gets.get(client, params)
            assert sent == []  # botocore sent no GetObject: the presigned path was taken
            expected, expected_body = await get_small_object(client, params)
            assert len(sent) == 1
    finally:
        boto.close()
    assert body == expected_body == b"a,b\n1,2\n"
    assert {k: fields.get(k) for k in FIELDS} == {k: expected.get(k) for k in FIELDS}
    assert fields["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert fields["ResponseMetadata"].keys() >= {"RequestId", "HTTPHeaders"}
    assert expected["ResponseMetadata"].keys() >= {"RequestId", "HTTPHeaders"}
    presigned = [r for r in proxy.requests if r.method == "GET" and "X-Amz-Signature=" in r.query]
    assert len(presigned) == 1 and presigned[0].path == f"/{name}/a b+ü.csv"
    assert f"/{region}/s3/aws4_request" in unquote(presigned[0].query)
    headers = {k.lower(): v for k, v in presigned[0].headers.items()}
    assert headers["x-amz-checksum-mode"] == "ENABLED" and "authorization" not in headers


async def test_if_match_pins_the_version_412_like_get_object(
    moto: MotoServer, proxy: FaultProxy
) -> None:
    name = f"lean-pin-{free_port()}"
    boto = regional_bucket(moto, "eu-west-1", name)
    try:
        old = boto.put_object(Bucket=name, Key="k", Body=b"old")["ETag"]
        params = {"Bucket": name, "Key": "k", "IfMatch": old}
        async with lean(proxy.endpoint_url) as (client, gets):
            fields, body = await gets.get(client, params)
            assert (body, fields["ETag"]) == (b"old", old)
            boto.put_object(Bucket=name, Key="k", Body=b"new")
            ours = await outcome(gets.get(client, params))
            botocores = await outcome(get_small_object(client, params))
    finally:
        boto.close()
    assert isinstance(ours, S3ObjectChangedError)
    same_error(ours, botocores)
    assert (ours.code, ours.status) == ("PreconditionFailed", 412)


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        (None, S3NotFoundError),  # a missing key: moto's own NoSuchKey
        ({"status": 403, "code": "AccessDenied"}, S3AuthError),
        ({"status": 403, "code": "InvalidAccessKeyId"}, S3AuthError),
        ({"status": 503, "code": "SlowDown", "retry_after": 3}, S3RateLimitError),
    ],
)
async def test_errors_are_classified_as_get_objects_are(
    moto: MotoServer,
    proxy: FaultProxy,
    rule: dict[str, Any] | None,
    expected: type[S3BaseError],
) -> None:
    name = f"lean-err-{free_port()}"
    boto = regional_bucket(moto, "eu-west-1", name)
    try:
        boto.put_object(Bucket=name, Key="there", Body=b"x")
        key = "missing" if rule is None else "there"
        if rule is not None:
            proxy.add_rule("error", method="GET", path=f"/{name}/there$", **rule)
        params = {"Bucket": name, "Key": key}
        async with lean(proxy.endpoint_url) as (client, gets):
            ours = await outcome(gets.get(client, params))
            botocores = await outcome(get_small_object(client, params))
    finally:
        boto.close()
    assert isinstance(ours, expected)
    same_error(ours, botocores)
    assert ours.request_id and botocores.request_id


async def test_missing_bucket_is_no_such_bucket(proxy: FaultProxy) -> None:
    params = {"Bucket": f"no-such-bucket-{free_port()}", "Key": "k"}
    async with lean(proxy.endpoint_url) as (client, gets):
        ours = await outcome(gets.get(client, params))
        botocores = await outcome(get_small_object(client, params))
    assert isinstance(ours, S3NotFoundError) and ours.code == "NoSuchBucket"
    same_error(ours, botocores)


async def test_a_region_redirect_is_left_to_botocore(moto: MotoServer, proxy: FaultProxy) -> None:
    name = f"lean-moved-{free_port()}"
    boto = regional_bucket(moto, "eu-west-1", name)
    try:
        boto.put_object(Bucket=name, Key="k", Body=b"here")
        proxy.add_rule("error", method="GET", path=f"/{name}/k$", status=301, times=1)
        async with lean(proxy.endpoint_url) as (client, gets):
            sent = count_botocore_gets(client)
            _, body = await gets.get(client, {"Bucket": name, "Key": "k"})
    finally:
        boto.close()
    assert body == b"here" and len(sent) == 1  # the 301 went to get_object, which got it
    assert proxy.count("GET", f"/{name}/k$") == 2


async def test_nothing_secret_in_errors(
    moto: MotoServer, proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch, fake_secret: str
) -> None:
    token = "FakeSessionToken/ForTestsOnly+0123456789abcdef"
    monkeypatch.setenv("AWS_SESSION_TOKEN", token)
    name = f"lean-secret-{free_port()}"
    boto = regional_bucket(moto, "eu-west-1", name)
    try:
        boto.put_object(Bucket=name, Key="k", Body=b"x")
        proxy.add_rule("error", method="GET", path=f"/{name}/k$", status=403, code="AccessDenied")
        params = {"Bucket": name, "Key": "k"}
        texts = []
        async with lean(proxy.endpoint_url) as (client, gets):
            denied = await outcome(gets.get(client, params))
            texts.append(f"{denied} {denied!r} {denied.__cause__!r}")
        async with lean(f"http://127.0.0.1:{free_port()}") as (client, gets):  # nobody listens
            with pytest.raises(EndpointConnectionError) as refused:
                await gets.get(client, params)
            err = translate(refused.value, f"s3://{name}/k")
            texts.append(f"{err} {err!r} {refused.value} {refused.value.__cause__!r}")
    finally:
        boto.close()
    assert f"/{name}/k" in texts[1]  # the error names what it tried to reach...
    for text in texts:  # ...but no secret, token, signature or key ID
        for secret in (fake_secret, token, "X-Amz-Signature", "X-Amz-Credential", "Security-Token"):
            assert secret not in text, text


# --- proxies ------------------------------------------------------------------------------------


class ForwardProxy(ThreadedServer):
    """A plain HTTP forward proxy that records the requests it forwards."""

    name = "forwardproxy"

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, str | None]] = []  # (absolute URL, Proxy-Authorization)
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    async def _astart(self, sock: socket.socket) -> None:
        self._session = aiohttp.ClientSession(auto_decompress=False)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()

    async def _astop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def _handle(self, request: web.Request) -> web.Response:
        assert self._session is not None
        url = request.url  # absolute-form request target: the origin's URL
        self.seen.append((str(url), request.headers.get("Proxy-Authorization")))
        headers = {
            k: v for k, v in request.headers.items() if k.lower() not in ("proxy-authorization",)
        }
        async with self._session.get(url, headers=headers, allow_redirects=False) as upstream:
            body = await upstream.read()
            return web.Response(status=upstream.status, body=body)


async def test_proxies_from_the_environment(
    moto: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"lean-proxy-{free_port()}"
    boto = regional_bucket(moto, "eu-west-1", name)
    try:
        boto.put_object(Bucket=name, Key="k", Body=b"via proxy")
        with ForwardProxy() as forward:
            for variable in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "http_proxy"):
                monkeypatch.delenv(variable, raising=False)
            monkeypatch.setenv("HTTP_PROXY", f"http://user:p%40ss@127.0.0.1:{forward.port}")
            async with lean(moto.endpoint_url) as (client, gets):
                sent = count_botocore_gets(client)
                _, body = await gets.get(client, {"Bucket": name, "Key": "k"})
            assert body == b"via proxy" and sent == []
            assert len(forward.seen) == 1
            url, auth = forward.seen[0]
            assert url.startswith(f"{moto.endpoint_url}/{name}/k?") and "X-Amz-Signature=" in url
            assert auth == "Basic " + base64.b64encode(b"user:p@ss").decode()
            monkeypatch.setenv("NO_PROXY", "127.0.0.1")  # now bypassed, as botocore would
            async with lean(moto.endpoint_url) as (client, gets):
                _, body = await gets.get(client, {"Bucket": name, "Key": "k"})
            assert body == b"via proxy" and len(forward.seen) == 1
    finally:
        boto.close()


def test_routes_follow_botocores_proxy_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ("NO_PROXY", "no_proxy", "HTTP_PROXY", "http_proxy", "HTTPS_PROXY"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.delenv("https_proxy", raising=False)
    endpoint = "https://s3.eu-west-1.amazonaws.com"
    assert route_for(Config(), endpoint) == (None, {})
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.corp:3128")
    assert route_for(Config(), endpoint) == ("http://proxy.corp:3128", {})
    monkeypatch.setenv("NO_PROXY", ".amazonaws.com")
    assert route_for(Config(), endpoint) == (None, {})
    configured = Config(proxies={"https": "http://u:p%40w@other.corp:8080"})  # config beats env
    assert route_for(configured, endpoint) == (
        "http://other.corp:8080",
        {"Proxy-Authorization": "Basic " + base64.b64encode(b"u:p@w").decode()},
    )
    # settings this session does not reproduce: the plain get_object is used
    assert route_for(Config(client_cert="/tmp/cert.pem"), endpoint) is None
    assert route_for(Config(proxies_config={"proxy_ca_bundle": "/x.pem"}), endpoint) is None


async def test_a_closed_getter_refuses_work(proxy: FaultProxy) -> None:
    async with lean(proxy.endpoint_url) as (client, gets):
        await gets.close()
        with pytest.raises(RuntimeError, match="closed"):
            await gets.get(client, {"Bucket": "b", "Key": "k"})
        await gets.close()  # twice is fine


# --- pure units ----------------------------------------------------------------------------------


@pytest.mark.parametrize("region", [*REGIONS, "af-south-1", "us-gov-west-1", "cn-north-1"])
@pytest.mark.parametrize("bucket", ["plain-bucket", "my.dotted.bucket"])
async def test_virtual_addressing_presigns_for_the_clients_own_endpoint_in_every_region(
    region: str, bucket: str
) -> None:
    config = AioConfig(signature_version="s3v4", s3={"addressing_style": "virtual"})
    async with new_session().create_client("s3", region_name=region, config=config) as client:
        url = await client.generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": "k.csv"}, ExpiresIn=60
        )
        assert same_endpoint(client.meta.endpoint_url, bucket, url), url
        assert f"%2F{region}%2Fs3%2Faws4_request" in url


@pytest.mark.parametrize(
    ("region", "endpoint", "same"),
    [
        ("us-east-1", None, True),  # the global endpoint is us-east-1's own
        ("eu-west-1", None, False),  # auto addressing: presigned for the global endpoint
        ("eu-west-1", "http://127.0.0.1:9000", True),  # custom endpoint, path style
        ("ap-southeast-2", "https://minio.example:9000", True),
    ],
)
async def test_other_presigned_hosts_are_not_used(
    region: str, endpoint: str | None, same: bool
) -> None:
    options: dict[str, Any] = {"region_name": region, "config": AioConfig(signature_version="s3v4")}
    if endpoint:
        options["endpoint_url"] = endpoint
        options["config"] = options["config"].merge(AioConfig(s3={"addressing_style": "path"}))
    async with new_session().create_client("s3", **options) as client:
        url = await client.generate_presigned_url(
            "get_object", Params={"Bucket": "plain-bucket", "Key": "k.csv"}, ExpiresIn=60
        )
        assert same_endpoint(client.meta.endpoint_url, "plain-bucket", url) is same, url


def test_error_responses_become_the_client_errors_botocore_raises() -> None:
    body = (
        b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>SlowDown</Code>"
        b"<Message>Please reduce your request rate.</Message><RequestId>R1</RequestId></Error>"
    )
    slow = client_error(503, {"retry-after": "3", "x-amz-request-id": "R1"}, body)
    assert slow.response["Error"] == {
        "Code": "SlowDown",
        "Message": "Please reduce your request rate.",
    }
    assert slow.response["ResponseMetadata"]["RequestId"] == "R1"
    translated = translate(slow, "s3://b/k")
    assert isinstance(translated, S3RateLimitError) and translated.retry_after == 3.0
    changed = client_error(
        412,
        {},
        b"<Error><Code>PreconditionFailed</Code><Message>At least one of the pre-conditions "
        b"you specified did not hold</Message><Condition>If-Match</Condition></Error>",
    )
    assert changed.response["Error"]["Condition"] == "If-Match"
    assert isinstance(translate(changed, "s3://b/k"), S3ObjectChangedError)
    bodyless = client_error(404, {}, b"")
    assert bodyless.response["Error"] == {"Code": "404", "Message": "Not Found"}
    assert isinstance(translate(bodyless, "s3://b/k"), S3NotFoundError)
    assert (
        client_error(416, {}, b"").response["Error"]["Message"] == "Requested Range Not Satisfiable"
    )
    garbled = client_error(500, {}, b"<html>oops")
    assert garbled.response["Error"] == {"Code": "500", "Message": "Internal Server Error"}
    assert client_error(599, {}, b"").response["Error"] == {"Code": "599", "Message": ""}
