"""Whole-object GETs of small objects: presigned by botocore, sent on DreamBolt's own session.

A `get_object` call costs botocore about 0.7 ms of CPU (serialising, endpoint rules, user agent,
signing, event hooks, parsing some thirty response headers), which makes many small objects
CPU-bound on the event loop. Presigning the same request with botocore's public presigner
(`generate_presigned_url`: the same credentials, endpoint rules and SigV4 signature) costs about
0.1 ms; the GET is then sent on an `aiohttp.ClientSession` this module owns, set up as
aiobotocore sets up its own: the client's connect and read timeouts, a pool as large as the
client's concurrency, the proxies botocore would use (the client config's, else `HTTP_PROXY`,
`HTTPS_PROXY`, `NO_PROXY` for the endpoint), and the CA bundle (`AWS_CA_BUNDLE` or the
profile's `ca_bundle`, else botocore's default). Measured with scripts/bench_small_get.py
(1,000 objects of 30 KiB, 64 in flight, 20 ms to first byte, medians of 7 rounds): 2.58 s of
CPU with `get_object`, 1.38 s this way; wall 5.76 s against 3.24 s.

Presigning still costs botocore most of that 0.1 ms (endpoint rules, serialising, the signer's
request objects). So once botocore has presigned a GET of a bucket (with a given set of
arguments, in a region), `_Signer` learns that URL's form (host, the path before the key, the
signing scope) and forms the next GETs' requests itself, signed by botocore's own SigV4 query
signer (`S3SigV4QueryAuth`) with the same credentials (the session's, refreshed as botocore
refreshes them). It is used only if what it makes differs from botocore's URL in nothing but
the time and the signature; else botocore presigns them all.

What comes back looks like botocore's result: the response fields DreamBolt reads, or the
`ClientError` botocore would raise (code, message, status, request id, headers), so error
translation and the retry policy see no difference. The plain `get_object` is used instead
where the presigned URL would not go where the client itself goes (botocore presigns against
the global endpoint unless the client's addressing style is "virtual"), where the client has
settings this session does not reproduce (a client certificate, proxy TLS settings), and for a
redirect to another region (botocore's redirector handles it).
"""

from __future__ import annotations

import asyncio
import ssl
import xml.etree.ElementTree as ET
from http import HTTPStatus
from typing import Any
from urllib.parse import SplitResult, parse_qsl, urlsplit

import aiohttp
from aiobotocore.session import AioSession
from botocore import exceptions as bce
from botocore.auth import S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.exceptions import ClientError
from botocore.httpsession import ProxyConfiguration, get_cert_path
from botocore.utils import get_environ_proxies, percent_encode
from yarl import URL

from dreambolt.s3.session import parse_timestamp

__all__ = ["PresignedGets", "get_small_object"]

EXPIRES = 900  # seconds a URL is valid; it is used at once
_SIGNED = frozenset({"Bucket", "Key", "VersionId", "ChecksumMode", "IfMatch"})
_FIELDS = {  # response header -> GetObject field (only those DreamBolt reads)
    "content-length": "ContentLength",
    "content-range": "ContentRange",
    "etag": "ETag",
    "x-amz-version-id": "VersionId",
    "x-amz-checksum-type": "ChecksumType",
    "x-amz-checksum-crc32": "ChecksumCRC32",
    "x-amz-checksum-crc32c": "ChecksumCRC32C",
    "x-amz-checksum-crc64nvme": "ChecksumCRC64NVME",
    "x-amz-checksum-sha1": "ChecksumSHA1",
    "x-amz-checksum-sha256": "ChecksumSHA256",
}
_Route = tuple[str | None, dict[str, str]]  # proxy URL (no credentials), its login header
_HEADERS = {"IfMatch": "If-Match", "ChecksumMode": "x-amz-checksum-mode"}  # signed, sent


class PresignedGets:
    """Small whole-object GETs on an HTTP session of their own; `close()` it when done.

    `get(client, params)` takes the aiobotocore S3 client of the bucket's region and the
    `get_object` arguments, and returns (response fields, body) as `get_object` and
    `Body.read()` would, or raises the `ClientError` botocore would raise.
    """

    def __init__(
        self,
        session: AioSession,
        *,
        concurrency: int,
        connect_timeout: float,
        read_timeout: float,
    ) -> None:
        ca_bundle = session.get_config_variable("ca_bundle")
        self._ca_bundle: str = str(ca_bundle or get_cert_path(True))
        self._limit = concurrency
        self._timeout = aiohttp.ClientTimeout(sock_connect=connect_timeout, sock_read=read_timeout)
        self._http: aiohttp.ClientSession | None = None
        self._lock = asyncio.Lock()
        self._routes: dict[str, _Route | None] = {}  # by endpoint URL; None: use get_object
        self._botocore = session
        self._creds: Any = None  # the session's credentials (False: none)
        self._signers: dict[tuple[object, ...], _Signer | None] = {}  # None: botocore signs
        self._closed = False

    async def get(self, client: Any, params: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
        """GET a whole object (`params` as for `get_object`); returns (response fields, body)."""
        route = self._route(client) if params.keys() <= _SIGNED else None
        url = None if route is None else await self._presign(client, params)
        if url is None or route is None:
            return await _plain_get(client, params)
        headers = {"Accept-Encoding": "identity"}  # as aiobotocore sends; bytes as stored
        # The headers that were signed (X-Amz-SignedHeaders) must be sent as signed.
        headers.update((name, params[field]) for field, name in _HEADERS.items() if field in params)
        status, reply, body = await self._send(url, headers, route)
        if status >= 300:
            if _elsewhere(status, reply):
                return await _plain_get(client, params)  # botocore follows region redirects
            raise client_error(status, reply, body)
        fields = _fields(status, reply)
        fields.setdefault("ContentLength", len(body))  # a chunked reply: aiohttp checked the end
        return fields, body

    async def _presign(self, client: Any, params: dict[str, Any]) -> str | None:
        """A presigned URL of this GET on the client's own endpoint, else None: signed here
        when `_Signer` has learnt the form of such URLs, else by botocore."""
        meta, bucket = client.meta, params["Bucket"]
        form = (meta.endpoint_url, meta.region_name, bucket, frozenset(params))
        known = form in self._signers
        signer = self._signers.get(form)
        creds = await self._credentials() if signer is not None or not known else None
        if signer is not None and creds is not None:
            return signer.url(creds, params)
        url: str = await client.generate_presigned_url(
            "get_object", Params=params, ExpiresIn=EXPIRES
        )
        if not same_endpoint(meta.endpoint_url, bucket, url):
            self._signers[form] = None
            return None
        if not known and creds is not None:
            self._signers[form] = _Signer.learn(url, params, creds)
        return url

    async def _credentials(self) -> Any:
        """The session's credentials as they are now (refreshed if due), or None."""
        if self._creds is None:
            self._creds = await self._botocore.get_credentials() or False
        return await self._creds.get_frozen_credentials() if self._creds else None

    async def _send(
        self, url: str, headers: dict[str, str], route: _Route
    ) -> tuple[int, dict[str, str], bytes]:
        """GET `url`; returns (status, lower-cased headers, body). A failure to connect or to
        receive the response head raises the botocore error aiobotocore raises for it."""
        proxy, login = route
        if url.startswith("https:"):  # tunnelled: the login goes to the proxy's CONNECT only
            proxy_headers = login or None
        else:  # forwarded: the proxy reads it from the request itself
            headers, proxy_headers = {**headers, **login}, None
        http = await self._session()
        try:
            response = await http.get(
                URL(url, encoded=True),
                headers=headers,
                proxy=proxy,
                proxy_headers=proxy_headers,
                allow_redirects=False,
            )
        except (aiohttp.ClientError, aiohttp.http_exceptions.HttpProcessingError, OSError) as exc:
            raise transport_error(exc, url, proxy) from exc  # OSError: TimeoutError too
        async with response:
            # A body that breaks off raises aiohttp.ClientPayloadError, as from botocore's Body.
            body = await response.read()
            return response.status, {k.lower(): v for k, v in response.headers.items()}, body

    async def close(self) -> None:
        """Close the HTTP session; a `get` after this raises RuntimeError."""
        self._closed = True
        async with self._lock:
            http, self._http = self._http, None
        if http is not None:
            await http.close()

    async def _session(self) -> aiohttp.ClientSession:
        if self._http is not None:
            return self._http
        async with self._lock:
            if self._closed:
                raise RuntimeError("PresignedGets is closed")
            if self._http is None:
                # Loading a CA bundle reads a file of ~300 KB: not on the event loop.
                context = await asyncio.to_thread(
                    ssl.create_default_context, cafile=self._ca_bundle
                )
                self._http = aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(limit=self._limit, ssl=context),
                    timeout=self._timeout,
                    auto_decompress=False,
                    cookie_jar=aiohttp.DummyCookieJar(),  # S3 sets none: no jar to consult
                    # No proxies or credentials from the environment here: a netrc entry would
                    # add an Authorization header next to the presigned one (S3 refuses both),
                    # and proxies are chosen as botocore chooses them (`_route`).
                    trust_env=False,
                )
            return self._http

    def _route(self, client: Any) -> _Route | None:
        """How requests of this client travel (proxy or not), worked out once per endpoint."""
        endpoint: str = client.meta.endpoint_url
        if endpoint not in self._routes:
            self._routes[endpoint] = route_for(client.meta.config, endpoint)
        return self._routes[endpoint]


class _Signer:
    """Presigns GETs whose URLs botocore forms as `prefix` + the key, with botocore's own SigV4
    query signer (`S3SigV4QueryAuth`) on a request formed here: what is skipped is botocore's
    per-call endpoint resolution and serialising, not its signing."""

    def __init__(self, prefix: str, region: str, service: str) -> None:
        self.prefix, self.region, self.service = prefix, region, service

    @classmethod
    def learn(cls, url: str, params: dict[str, Any], creds: Any) -> _Signer | None:
        """The signer of URLs like `url` (botocore's for `params`), if what it makes from the
        same arguments differs from `url` in nothing but the time and the signature."""
        parts = urlsplit(url)
        key = percent_encode(params["Key"], safe="/~")
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        scope = query.get("X-Amz-Credential", "").split("/")
        if len(scope) != 5 or not parts.path.endswith(key) or not parts.netloc:
            return None
        prefix = f"{parts.scheme}://{parts.netloc}{parts.path[: len(parts.path) - len(key)]}"
        signer = cls(prefix, scope[2], scope[3])
        mine = urlsplit(signer.url(creds, params))
        return signer if _form(mine) == _form(parts) else None

    def url(self, creds: Any, params: dict[str, Any]) -> str:
        """The presigned URL of a GET (`params` as for `get_object`), signed now."""
        url = self.prefix + percent_encode(params["Key"], safe="/~")
        if "VersionId" in params:
            url += "?versionId=" + percent_encode(params["VersionId"])
        headers = {name: params[field] for field, name in _HEADERS.items() if field in params}
        request = AWSRequest(method="GET", url=url, headers=headers)
        S3SigV4QueryAuth(creds, self.service, self.region, expires=EXPIRES).add_auth(request)
        return str(request.url)


def _form(parts: SplitResult) -> tuple[object, ...]:
    """A presigned URL but for when it was signed (its date, the day in its scope, and the
    signature): what must be the same for two URLs of one request."""
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    for name in ("X-Amz-Date", "X-Amz-Signature"):
        query.pop(name, None)
    scope = query.pop("X-Amz-Credential", "").split("/")
    return parts.scheme, parts.netloc, parts.path, sorted(query.items()), scope[:1] + scope[2:]


def route_for(config: Any, endpoint_url: str) -> _Route | None:
    """The proxy botocore would use for `endpoint_url` under `config` (a botocore Config), as
    (proxy URL without credentials, Proxy-Authorization header of its login); None where this
    module does not reproduce the client's connection settings and `get_object` must be used."""
    if config.client_cert or config.proxies_config:
        return None
    proxies = config.proxies or get_environ_proxies(endpoint_url)
    proxy_config = ProxyConfiguration(proxies=proxies)
    proxy = proxy_config.proxy_url_for(endpoint_url)
    if proxy is None:
        return None, {}
    # The login travels in Proxy-Authorization, never in a URL an error message might quote.
    return str(URL(proxy).with_user(None)), proxy_config.proxy_headers_for(proxy)


def transport_error(exc: BaseException, url: str, proxy: str | None) -> Exception:
    """The botocore exception aiobotocore raises for this aiohttp failure, naming the URL
    without its query string (the presigned signature, and any session token, stay out)."""
    endpoint = url.split("?", 1)[0]
    if isinstance(exc, aiohttp.ClientSSLError):
        return bce.SSLError(endpoint_url=endpoint, error=exc)
    if isinstance(exc, aiohttp.ClientProxyConnectionError | aiohttp.ClientHttpProxyError):
        return bce.ProxyConnectionError(proxy_url=proxy or "", error=exc)
    if isinstance(
        exc,
        aiohttp.ServerDisconnectedError
        | aiohttp.ClientPayloadError
        | aiohttp.http_exceptions.BadStatusLine,
    ):
        return bce.ConnectionClosedError(endpoint_url=endpoint, error=exc)
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return bce.ConnectTimeoutError(endpoint_url=endpoint, error=exc)
    if isinstance(exc, TimeoutError):  # aiohttp's ServerTimeoutError is one too
        return bce.ReadTimeoutError(endpoint_url=endpoint, error=exc)
    if isinstance(exc, aiohttp.ClientConnectionError | OSError):
        return bce.EndpointConnectionError(endpoint_url=endpoint, error=exc)
    return bce.HTTPClientError(error=exc)


def same_endpoint(endpoint_url: str, bucket: str, url: str) -> bool:
    """Whether `url` addresses the client's own endpoint (path- or virtual-hosted style)."""
    own = urlsplit(endpoint_url)
    signed = urlsplit(url)
    return signed.scheme == own.scheme and signed.netloc in (own.netloc, f"{bucket}.{own.netloc}")


async def get_small_object(
    client: Any, params: dict[str, Any], gets: PresignedGets | None = None
) -> tuple[dict[str, Any], bytes]:
    """GET a whole object (`params` as for `get_object`): through `gets` when given, else by
    the plain `get_object`; returns (response fields, body)."""
    if gets is not None:
        return await gets.get(client, params)
    return await _plain_get(client, params)


async def _plain_get(client: Any, params: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
    response: dict[str, Any] = await client.get_object(**params)
    async with response["Body"] as body:
        return response, await body.read()


def _elsewhere(status: int, headers: dict[str, str]) -> bool:
    """Whether S3 says the bucket lives in another region (botocore then re-sends there)."""
    return status in (301, 307) or (status == 400 and "x-amz-bucket-region" in headers)


def _fields(status: int, headers: dict[str, str]) -> dict[str, Any]:
    fields: dict[str, Any] = {"ResponseMetadata": _metadata(status, headers)}
    for header, name in _FIELDS.items():
        value = headers.get(header)
        if value is not None:
            fields[name] = value
    if "ContentLength" in fields:
        fields["ContentLength"] = int(fields["ContentLength"])
    modified = headers.get("last-modified")
    if modified:
        fields["LastModified"] = parse_timestamp(modified)
    return fields


def _metadata(status: int, headers: dict[str, str]) -> dict[str, Any]:
    meta: dict[str, Any] = {"HTTPStatusCode": status, "HTTPHeaders": headers}
    if "x-amzn-requestid" in headers:  # the headers botocore reads, in its order
        meta["RequestId"] = headers["x-amzn-requestid"]
    elif "x-amz-request-id" in headers:
        meta["RequestId"] = headers["x-amz-request-id"]
        meta["HostId"] = headers.get("x-amz-id-2", "")
    return meta


def client_error(status: int, headers: dict[str, str], body: bytes) -> ClientError:
    """The error botocore raises for this GetObject response: code and message from the XML
    body, else the status digits and the status's reason phrase (as for bodyless errors)."""
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = ""
    error = {"Code": str(status), "Message": reason}
    try:
        root = ET.fromstring(body) if body.strip() else None
    except ET.ParseError:
        root = None
    if root is not None:
        for element in root:  # Code, Message and S3's extras (BucketName, Key, Condition...)
            if element.text and len(element) == 0 and element.tag not in ("RequestId", "HostId"):
                error[element.tag] = element.text
    response: Any = {"Error": error, "ResponseMetadata": _metadata(status, headers)}
    return ClientError(response, "GetObject")
