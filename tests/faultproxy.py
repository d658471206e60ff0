"""A reverse proxy in front of moto that injects S3-shaped faults and records every request.

moto cannot return 503 SlowDown, 500s, connection resets or cut bodies, so tests point the code
under test at this proxy instead. It runs its own event loop in its own thread, so it serves
async tests, sync tests and subprocesses alike.

Requests are forwarded unchanged (method, raw path and query, headers including ``Host``,
body), so SigV4 signatures still verify when moto enforces auth. Faults are ``Rule``s, tried in
the order they were added; the first one that matches and has firings left fires::

    proxy.add_rule("slowdown", method="GET", path=r"/data\\.csv$", times=2)
    proxy.add_rule("cut", has_range=True, cut_after=100, times=1)
    assert proxy.count("GET", has_range=True) == 3

aiohttp clients silently re-send an idempotent request once when a reused keep-alive connection
is reset before any response byte, so a ``"reset"`` rule with ``times=1`` can be invisible to
the caller: count what arrived instead of assuming.
"""

from __future__ import annotations

import asyncio
import io
import re
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal
from xml.sax.saxutils import escape

import aiohttp
from aiohttp import web
from threadserver import ThreadedServer
from yarl import URL

Action = Literal["slowdown", "error", "reset", "cut", "delay", "call", "strip"]
ACTIONS: frozenset[str] = frozenset(("slowdown", "error", "reset", "cut", "delay", "call", "strip"))

# RFC 9110 section 7.6.1, plus Expect: the proxy answers 100-continue itself, and the header is
# not part of SigV4's signed headers.
_HOP_BY_HOP = frozenset(
    (
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "expect",
    )
)
# aiohttp's client adds these when absent; forwarding must not add what the caller did not send.
_AUTO_HEADERS = ("Accept", "Accept-Encoding", "User-Agent", "Content-Type")

_STATUS_FOR_CODE = {
    "SlowDown": 503,
    "ServiceUnavailable": 503,
    "InternalError": 500,
    "AccessDenied": 403,
    "InvalidAccessKeyId": 403,
    "SignatureDoesNotMatch": 403,
    "NoSuchKey": 404,
    "NoSuchBucket": 404,
    "PreconditionFailed": 412,
    "InvalidRange": 416,
    "RequestTimeout": 400,
    "ExpiredToken": 400,
    "BadRequest": 400,
}
_CODE_FOR_STATUS = {
    500: "InternalError",
    503: "ServiceUnavailable",
    403: "AccessDenied",
    404: "NoSuchKey",
    412: "PreconditionFailed",
    416: "InvalidRange",
    400: "BadRequest",
}
_MESSAGES = {
    "SlowDown": "Please reduce your request rate.",
    "ServiceUnavailable": "Service is unable to handle request.",
    "InternalError": "We encountered an internal error. Please try again.",
    "AccessDenied": "Access Denied",
    "InvalidAccessKeyId": "The AWS Access Key Id you provided does not exist in our records.",
    "NoSuchKey": "The specified key does not exist.",
    "NoSuchBucket": "The specified bucket does not exist",
    "PreconditionFailed": "At least one of the pre-conditions you specified did not hold",
    "InvalidRange": "The requested range is not satisfiable",
    "RequestTimeout": "Your socket connection to the server was not read from or written to "
    "within the timeout period.",
}


@dataclass(frozen=True)
class RecordedRequest:
    """One request as it reached the proxy.

    ``path`` is percent-decoded and has no query; ``query`` is the raw query string.
    ``at`` is ``time.monotonic()`` on arrival.
    """

    method: str
    path: str
    query: str
    headers: dict[str, str]
    rule: Rule | None
    body_size: int = 0
    at: float = 0.0

    @property
    def has_range(self) -> bool:
        return any(k.lower() == "range" for k in self.headers)


@dataclass(eq=False)
class Rule:
    """A fault: which requests it matches, what it does, and how often.

    Match fields left as ``None`` match anything; ``path`` and ``query`` are regexes searched in
    the decoded path and the raw query string. ``times=None`` fires on every match.
    """

    action: Action
    method: str | None = None
    path: str | None = None
    query: str | None = None
    has_range: bool | None = None
    times: int | None = None
    status: int | None = None
    code: str | None = None
    message: str | None = None
    retry_after: float | None = None
    cut_after: int = 0
    delay: float = 0.0
    fn: Callable[[RecordedRequest], object] | None = None
    strip: tuple[str, ...] = ()  # action "strip": forwarded without these request headers
    fired: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"unknown action {self.action!r}; expected one of {sorted(ACTIONS)}")
        if self.action == "call" and self.fn is None:
            raise ValueError('action "call" needs fn')
        if self.cut_after < 0 or self.delay < 0 or (self.times is not None and self.times < 0):
            raise ValueError("cut_after, delay and times must not be negative")
        if self.action == "slowdown":
            self.status = self.status or 503
            self.code = self.code or "SlowDown"
        elif self.action == "error":
            if self.status is None and self.code is None:
                raise ValueError('action "error" needs status or code')
            self.status = self.status or _STATUS_FOR_CODE.get(self.code or "", 500)
            self.code = self.code or _CODE_FOR_STATUS.get(self.status, "InternalError")
        if self.method is not None:
            self.method = self.method.upper()
        self._path_re = re.compile(self.path) if self.path is not None else None
        self._query_re = re.compile(self.query) if self.query is not None else None

    @property
    def exhausted(self) -> bool:
        return self.times is not None and self.fired >= self.times

    def matches(self, method: str, path: str, query: str, has_range: bool) -> bool:
        return (
            (self.method is None or self.method == method.upper())
            and (self._path_re is None or self._path_re.search(path) is not None)
            and (self._query_re is None or self._query_re.search(query) is not None)
            and (self.has_range is None or self.has_range == has_range)
        )


def s3_error_body(code: str, message: str, request_id: str) -> bytes:
    """The XML body S3 sends with an error status."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{escape(code)}</Code><Message>{escape(message)}</Message>"
        f"<RequestId>{escape(request_id)}</RequestId><HostId>faultproxy</HostId></Error>"
    ).encode()


class FaultProxy(ThreadedServer):
    """Reverse proxy to ``upstream`` on a free loopback port, in a thread of its own."""

    name = "faultproxy"

    def __init__(self, upstream: str, *, host: str = "127.0.0.1") -> None:
        super().__init__(host)
        self.upstream = upstream.rstrip("/")
        self.endpoint_url = ""
        self.errors: list[BaseException] = []
        self._lock = threading.Lock()
        self._records: list[RecordedRequest] = []
        self._rules: list[Rule] = []
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    def _started(self) -> None:
        self.endpoint_url = f"http://{self.host}:{self.port}"

    async def _astart(self, sock: socket.socket) -> None:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=100),
            auto_decompress=False,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
        )
        app = web.Application(client_max_size=1 << 31)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()

    async def _astop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- rules and records -------------------------------------------------------------------

    def add_rule(
        self,
        action: Action,
        *,
        method: str | None = None,
        path: str | None = None,
        query: str | None = None,
        has_range: bool | None = None,
        times: int | None = None,
        status: int | None = None,
        code: str | None = None,
        message: str | None = None,
        retry_after: float | None = None,
        cut_after: int = 0,
        delay: float = 0.0,
        fn: Callable[[RecordedRequest], object] | None = None,
        strip: tuple[str, ...] = (),
    ) -> Rule:
        """Add a fault; see ``Rule``. Returns it, so a test can read ``rule.fired``."""
        rule = Rule(
            action,
            method=method,
            path=path,
            query=query,
            has_range=has_range,
            times=times,
            status=status,
            code=code,
            message=message,
            retry_after=retry_after,
            cut_after=cut_after,
            delay=delay,
            fn=fn,
            strip=strip,
        )
        with self._lock:
            self._rules.append(rule)
        return rule

    def remove_rule(self, rule: Rule) -> None:
        with self._lock:
            self._rules.remove(rule)

    @property
    def rules(self) -> list[Rule]:
        with self._lock:
            return list(self._rules)

    @property
    def requests(self) -> list[RecordedRequest]:
        """A copy of every request received so far, in arrival order."""
        with self._lock:
            return list(self._records)

    def count(
        self,
        method: str | None = None,
        path: str | None = None,
        query: str | None = None,
        has_range: bool | None = None,
    ) -> int:
        """How many recorded requests match (``path``/``query`` are regexes, searched)."""
        probe = Rule("delay", method=method, path=path, query=query, has_range=has_range)
        return sum(probe.matches(r.method, r.path, r.query, r.has_range) for r in self.requests)

    def reset(self) -> None:
        """Forget every recorded request, rule and handler error."""
        with self._lock:
            self._records.clear()
            self._rules.clear()
            self.errors.clear()

    def _record(self, request: web.Request, body_size: int) -> RecordedRequest:
        method = request.method
        path = request.path
        query = request.raw_path.partition("?")[2]
        headers = dict(request.headers.items())
        has_range = any(k.lower() == "range" for k in headers)
        with self._lock:
            rule = next(
                (
                    r
                    for r in self._rules
                    if not r.exhausted and r.matches(method, path, query, has_range)
                ),
                None,
            )
            if rule is not None:
                rule.fired += 1
            rec = RecordedRequest(method, path, query, headers, rule, body_size, time.monotonic())
            self._records.append(rec)
        return rec

    # -- serving -----------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        rec = self._record(request, len(body))
        rule = rec.rule
        try:
            if rule is None:
                return await self._forward(request, body)
            if rule.action in ("slowdown", "error"):
                return self._error_response(request, rule)
            if rule.action == "reset":
                return self._abort(request)
            if rule.action == "cut":
                return await self._forward(request, body, cut_after=rule.cut_after)
            if rule.action == "strip":  # a store that ignores some headers
                return await self._forward(request, body, strip=rule.strip)
            if rule.action == "delay":
                await asyncio.sleep(rule.delay)
            elif rule.action == "call":
                assert rule.fn is not None
                await asyncio.to_thread(rule.fn, rec)
            return await self._forward(request, body)
        except ConnectionError:
            # The client went away; aiohttp drops this response silently.
            return web.Response(status=499)
        except Exception as exc:  # reported to the test through .errors
            self._note_error(exc)
            return web.Response(
                status=502,
                body=s3_error_body("ProxyError", repr(exc), "FAULTPROXY"),
                content_type="application/xml",
            )

    def _note_error(self, exc: BaseException) -> None:
        with self._lock:
            self.errors.append(exc)

    def _error_response(self, request: web.Request, rule: Rule) -> web.Response:
        assert rule.status is not None and rule.code is not None
        request_id = secrets.token_hex(8).upper()
        headers = {"x-amz-request-id": request_id, "x-amz-id-2": "faultproxy"}
        if rule.retry_after is not None:
            headers["Retry-After"] = f"{rule.retry_after:g}"
        if request.method == "HEAD":
            # S3 answers a failed HEAD with the status alone.
            return web.Response(status=rule.status, headers=headers)
        message = rule.message or _MESSAGES.get(rule.code, rule.code)
        return web.Response(
            status=rule.status,
            headers=headers,
            body=s3_error_body(rule.code, message, request_id),
            content_type="application/xml",
        )

    @staticmethod
    def _abort(request: web.Request) -> web.Response:
        if request.transport is not None:
            request.transport.abort()
        # aiohttp's attempt to send this fails with ConnectionError, which it swallows.
        return web.Response(status=500)

    async def _forward(
        self,
        request: web.Request,
        body: bytes,
        *,
        cut_after: int | None = None,
        strip: tuple[str, ...] = (),
    ) -> web.StreamResponse:
        assert self._session is not None
        drop = _HOP_BY_HOP | {h.lower() for h in strip}
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in drop]
        # encoded=True keeps the path and query byte-for-byte, as the client signed them.
        url = URL(self.upstream + request.raw_path, encoded=True)
        async with self._session.request(
            request.method,
            url,
            headers=headers,
            # A BytesIO, not bytes: aiohttp warns (ResourceWarning) about raw bodies over 1 MiB.
            data=io.BytesIO(body) if body else None,
            allow_redirects=False,
            skip_auto_headers=_AUTO_HEADERS,
        ) as upstream:
            resp = web.StreamResponse(status=upstream.status, reason=upstream.reason)
            for key, value in upstream.headers.items():
                if key.lower() not in _HOP_BY_HOP:
                    resp.headers.add(key, value)
            await resp.prepare(request)
            sent = 0
            try:
                async for chunk in upstream.content.iter_chunked(1 << 16):
                    if cut_after is not None and sent + len(chunk) >= cut_after:
                        await resp.write(chunk[: cut_after - sent])
                        await self._flush_and_abort(request)
                        return resp
                    await resp.write(chunk)
                    sent += len(chunk)
            except ConnectionError:
                raise
            except Exception as exc:  # upstream failed mid-body: pass the failure on
                self._note_error(exc)
                self._abort(request)
                return resp
            if cut_after is not None:
                # Shorter than cut_after (or a HEAD): still drop the connection.
                await self._flush_and_abort(request)
                return resp
            await resp.write_eof()
            return resp

    @staticmethod
    async def _flush_and_abort(request: web.Request) -> None:
        transport = request.transport
        if transport is None:
            return
        # abort() discards unsent bytes; wait until the kernel has the partial body.
        for _ in range(5000):
            if not transport.get_write_buffer_size():
                break
            await asyncio.sleep(0.001)
        await asyncio.sleep(0.01)
        transport.abort()
