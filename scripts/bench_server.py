#!/usr/bin/env python3
"""A fast S3-compatible HTTP server over a local directory, for benchmarks.

moto loads a whole object for every ranged GET; this server stats the file and sends only the
asked-for bytes with sendfile, so it can stand in for S3 when measuring concurrency.

Top-level folders of --root are buckets, files below them are keys (path-style addressing only,
authentication ignored). Files written straight into the root are served as they are; object
metadata is always read with a fresh stat, listings cache the key names per bucket and rescan
when a directory's mtime changes or the server itself writes.

    python scripts/bench_server.py --root DIR --host 127.0.0.1 --port 0 \
        [--ttfb-ms 20] [--conn-mibps 60] [--port-file FILE]

--ttfb-ms delays each response's first byte (per request; requests never queue behind each
other); --conn-mibps paces each response body to that many MiB/s (0 = unlimited, sendfile).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import email.utils
import itertools
import os
import shutil
import signal
import stat
import sys
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import IO
from urllib.parse import quote, unquote
from xml.etree import ElementTree

from aiohttp import web
from bench_listing import Listing, page, scan
from bench_s3wire import (
    S3Error,
    file_etag,
    iso_time,
    parse_etags,
    parse_range,
    read_aws_chunked,
    xml_response,
    xml_tags,
)

READ_CHUNK = 1024 * 1024


class BenchS3:
    """The request handler: routes each S3 call to a method over the root directory."""

    def __init__(self, root: Path, *, ttfb_ms: float, conn_mibps: float) -> None:
        self.root = root.resolve()
        self.tmp = self.root / ".tmp"  # dot-names are never buckets
        self.uploads = self.root / ".uploads"
        self.ttfb = ttfb_ms / 1000
        self.rate = conn_mibps * 1024 * 1024
        # ~10 ms of body per paced write: smooth enough, and few wakeups per stream
        self.pace_chunk = int(min(max(self.rate / 100, 16 * 1024), 256 * 1024))
        self.listings: dict[str, Listing] = {}
        self.ids = itertools.count(1)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if self.ttfb:
            await asyncio.sleep(self.ttfb)
        request_id = f"{next(self.ids):016X}"
        try:
            response = await self.route(request)
        except S3Error as e:
            if request.method == "HEAD":
                response = web.Response(status=e.status)
            else:
                inner = xml_tags(Code=e.code, Message=e.message, **e.extra, RequestId=request_id)
                response = xml_response("Error", inner, e.status)
        if not response.prepared:
            response.headers["x-amz-request-id"] = response.headers["x-amz-id-2"] = request_id
        return response

    async def route(self, request: web.Request) -> web.StreamResponse:
        raw_bucket, _, raw_key = request.rel_url.raw_path.lstrip("/").partition("/")
        bucket, key = unquote(raw_bucket), unquote(raw_key)
        method = request.method
        if not bucket and method == "GET":
            return self.list_buckets()
        if bucket and not key:
            found = await self.route_bucket(bucket, method, request.query)
        elif bucket:
            found = await self.route_object(bucket, key, request)
        else:
            found = None
        if found is None:
            raise S3Error(405, "MethodNotAllowed", f"{method} is not supported here")
        return found

    async def route_bucket(
        self, bucket: str, method: str, query: Mapping[str, str]
    ) -> web.StreamResponse | None:
        if method == "PUT":
            self.bucket_dir(bucket, create=True)
            return web.Response(headers={"Location": f"/{bucket}"})
        self.bucket_dir(bucket)
        if method == "HEAD":
            return web.Response(headers={"x-amz-bucket-region": "us-east-1"})
        if method == "GET" and "location" in query:
            return xml_response("LocationConstraint", "")
        if method == "GET":
            return await self.list_objects(bucket, query)
        return None

    async def route_object(
        self, bucket: str, key: str, request: web.Request
    ) -> web.StreamResponse | None:
        method = request.method
        if "uploadId" in request.query or "uploads" in request.query:
            return await self.multipart(bucket, key, request)
        if method in ("GET", "HEAD"):
            return await self.get_object(bucket, key, request)
        if key.endswith("/") and method in ("PUT", "DELETE"):  # folder markers: keep nothing
            self.object_path(bucket, key)
            await request.read()
            return web.Response(status=200 if method == "PUT" else 204)
        if method == "PUT":
            await self.receive(request, self.object_path(bucket, key))
            self.listings.pop(bucket, None)
            return web.Response(headers={"ETag": self.stat_object(bucket, key)[2]})
        if method == "DELETE":
            self.object_path(bucket, key).unlink(missing_ok=True)
            self.listings.pop(bucket, None)
            return web.Response(status=204)
        return None

    def bucket_dir(self, bucket: str, *, create: bool = False) -> Path:
        if "/" in bucket or bucket.startswith("."):
            raise S3Error(400, "InvalidBucketName", BucketName=bucket)
        path = self.root / bucket
        if create:
            path.mkdir(exist_ok=True)
        if not path.is_dir():
            raise S3Error(404, "NoSuchBucket", "No such bucket", BucketName=bucket)
        return path

    def object_path(self, bucket: str, key: str) -> Path:
        parts = key.split("/")
        if any(part in ("", ".", "..") for part in parts[:-1]) or parts[-1] in (".", ".."):
            raise S3Error(400, "InvalidArgument", "Key cannot be mapped to a file", Key=key)
        return self.bucket_dir(bucket).joinpath(*parts)

    def stat_object(self, bucket: str, key: str) -> tuple[Path, os.stat_result, str]:
        path = self.object_path(bucket, key)
        try:
            st = path.stat()
        except OSError:
            st = None
        if st is None or not stat.S_ISREG(st.st_mode) or key.endswith("/"):
            raise S3Error(404, "NoSuchKey", "The specified key does not exist.", Key=key)
        return path, st, file_etag(st, f"{bucket}/{key}")

    def list_buckets(self) -> web.Response:
        buckets = sorted(p for p in self.root.iterdir() if p.is_dir() and p.name[0] != ".")
        inner = "".join(
            f"<Bucket>{xml_tags(Name=p.name, CreationDate=iso_time(p.stat().st_mtime_ns))}</Bucket>"
            for p in buckets
        )
        owner = xml_tags(ID="bench", DisplayName="bench")
        return xml_response(
            "ListAllMyBucketsResult", f"<Owner>{owner}</Owner><Buckets>{inner}</Buckets>"
        )

    async def list_objects(self, bucket: str, q: Mapping[str, str]) -> web.Response:
        """ListObjectsV2 with `list-type=2`, else ListObjects (v1, marker-based)."""
        v2 = q.get("list-type") == "2"
        prefix, delimiter = q.get("prefix", ""), q.get("delimiter", "")
        max_keys = min(int(q.get("max-keys") or 1000), 1000)
        token = q.get("continuation-token")
        marker = q.get("start-after" if v2 else "marker", "")
        if token is not None:
            marker = base64.urlsafe_b64decode(token.encode()).decode()
        directory = str(self.bucket_dir(bucket))
        listing = await asyncio.to_thread(scan, directory, self.listings.get(bucket))
        self.listings[bucket] = listing
        keys, prefixes, truncated, last = page(listing.keys, prefix, delimiter, marker, max_keys)
        url = q.get("encoding-type") == "url"  # botocore always asks, then unquotes

        def enc(value: str | None) -> str | None:
            return quote(value, safe="/") if url and value is not None else value

        entries = []
        for key in keys:
            try:
                _, st, tag = self.stat_object(bucket, key)
            except S3Error:
                continue  # deleted since the scan
            fields = xml_tags(Key=enc(key), LastModified=iso_time(st.st_mtime_ns), ETag=tag)
            fields += xml_tags(Size=st.st_size, StorageClass="STANDARD")
            entries.append(f"<Contents>{fields}</Contents>")
        entries += [f"<CommonPrefixes>{xml_tags(Prefix=enc(p))}</CommonPrefixes>" for p in prefixes]
        head: dict[str, str | int | None] = {"Name": bucket, "Prefix": enc(prefix)}
        head |= {"Delimiter": enc(delimiter) or None, "MaxKeys": max_keys}
        head["EncodingType"] = "url" if url else None
        if v2:
            next_token = base64.urlsafe_b64encode(last.encode()).decode() if truncated else None
            head |= {"KeyCount": len(entries), "ContinuationToken": token}
            head |= {"NextContinuationToken": next_token, "StartAfter": enc(q.get("start-after"))}
        else:
            next_marker = enc(last) if truncated else None
            head |= {"Marker": enc(q.get("marker", "")), "NextMarker": next_marker}
        head["IsTruncated"] = "true" if truncated else "false"
        return xml_response("ListBucketResult", xml_tags(**head) + "".join(entries))

    async def get_object(self, bucket: str, key: str, request: web.Request) -> web.StreamResponse:
        path, st, tag = self.stat_object(bucket, key)
        modified = email.utils.formatdate(st.st_mtime, usegmt=True)
        headers = {"ETag": tag, "Last-Modified": modified, "Accept-Ranges": "bytes"}
        headers["Content-Type"] = "binary/octet-stream"
        if_match, if_none = request.headers.get("If-Match"), request.headers.get("If-None-Match")
        if if_match is not None and not ({tag, '"*"'} & parse_etags(if_match)):
            raise S3Error(412, "PreconditionFailed", "ETag mismatch", Condition="If-Match")
        if if_none is not None and {tag, '"*"'} & parse_etags(if_none):
            return web.Response(status=304, headers=headers)
        span = parse_range(request.headers.get("Range", ""), st.st_size)
        start, count = span or (0, st.st_size)
        if span is not None:
            headers["Content-Range"] = f"bytes {start}-{start + count - 1}/{st.st_size}"
        status = 206 if span is not None else 200
        if request.method == "HEAD":
            return web.Response(status=status, headers=headers | {"Content-Length": str(count)})
        response = web.StreamResponse(status=status, headers=headers)
        response.content_length = count
        with path.open("rb") as file:
            await response.prepare(request)
            try:
                if self.rate:
                    await self.pace(response, file, start, count)
                elif count and request.transport is not None:  # kernel copies, Python never sees
                    loop = asyncio.get_running_loop()
                    if await loop.sendfile(request.transport, file, start, count) < count:
                        raise ConnectionError("file shrank while being sent")
            except ConnectionError:  # client gone or file shrank: close rather than desync
                response.force_close()
                return response
        await response.write_eof()
        return response

    async def pace(
        self, response: web.StreamResponse, file: IO[bytes], start: int, count: int
    ) -> None:
        """Send count bytes from start in small writes, never faster than self.rate."""
        loop = asyncio.get_running_loop()
        began, sent = loop.time(), 0
        while sent < count:  # token bucket: never ahead of began + sent / rate
            data = os.pread(file.fileno(), min(self.pace_chunk, count - sent), start + sent)
            if not data:
                raise ConnectionError("file shrank while being sent")
            await response.write(data)
            sent += len(data)
            delay = began + sent / self.rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)

    async def receive(self, request: web.Request, dest: Path) -> None:
        """Write the request body to dest atomically, undoing aws-chunked framing if present."""
        self.tmp.mkdir(exist_ok=True)
        tmp = self.tmp / uuid.uuid4().hex
        chunked = request.headers.get("x-amz-content-sha256", "").startswith("STREAMING-")
        chunked |= "aws-chunked" in request.headers.get("Content-Encoding", "")
        try:
            with tmp.open("wb") as out:
                if chunked:
                    await read_aws_chunked(request.content, out)
                else:
                    async for data in request.content.iter_chunked(READ_CHUNK):
                        out.write(data)
            _commit(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)

    async def multipart(self, bucket: str, key: str, request: web.Request) -> web.Response:
        """Create, upload a part to, complete or abort a multipart upload: parts are files."""
        dest, query, method = self.object_path(bucket, key), request.query, request.method
        if method == "POST" and "uploads" in query:
            upload_id = uuid.uuid4().hex
            (self.uploads / upload_id).mkdir(parents=True)
            inner = xml_tags(Bucket=bucket, Key=key, UploadId=upload_id)
            return xml_response("InitiateMultipartUploadResult", inner)
        upload = self.uploads / query["uploadId"].replace("/", "")
        if not upload.is_dir():
            raise S3Error(404, "NoSuchUpload", "The specified upload does not exist")
        if method == "PUT":
            part = upload / str(int(query["partNumber"]))
            await self.receive(request, part)
            return web.Response(headers={"ETag": file_etag(part.stat(), str(part))})
        if method == "POST":
            tree = ElementTree.fromstring(await request.read())
            numbers = [e.text for e in tree.iter() if e.tag.endswith("PartNumber")]
            with (upload / "joined").open("wb") as out:
                for number in numbers:
                    with (upload / str(int(number or "0"))).open("rb") as part_file:
                        shutil.copyfileobj(part_file, out, READ_CHUNK)
            _commit(upload / "joined", dest)
            self.listings.pop(bucket, None)
        shutil.rmtree(upload)
        if method == "DELETE":
            return web.Response(status=204)
        tag = self.stat_object(bucket, key)[2]
        inner = xml_tags(Location=f"/{bucket}/{key}", Bucket=bucket, Key=key, ETag=tag)
        return xml_response("CompleteMultipartUploadResult", inner)


def _commit(tmp: Path, dest: Path) -> None:
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, dest)
    except (NotADirectoryError, FileExistsError, IsADirectoryError) as e:
        raise S3Error(409, "InvalidRequest", f"Key clashes with a folder: {e}") from e


async def serve(args: argparse.Namespace) -> None:
    handler = BenchS3(Path(args.root), ttfb_ms=args.ttfb_ms, conn_mibps=args.conn_mibps)
    app = web.Application(client_max_size=1024**3)
    app.router.add_route("*", "/{tail:.*}", handler.handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    await web.TCPSite(runner, args.host, args.port, backlog=1024).start()
    _announce(args, runner.addresses[0][1])
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


def _announce(args: argparse.Namespace, port: int) -> None:
    if args.port_file:  # written whole under a temporary name, so readers never see half
        tmp = f"{args.port_file}.tmp{os.getpid()}"
        Path(tmp).write_text(f"{port}\n")
        os.replace(tmp, args.port_file)
    print(f"listening on http://{args.host}:{port}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--root", required=True, help="directory whose folders are buckets")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--port-file", help="write the port number here once listening")
    parser.add_argument("--ttfb-ms", type=float, default=0.0, help="first-byte delay per request")
    parser.add_argument("--conn-mibps", type=float, default=0.0, help="MiB/s per response body")
    args = parser.parse_args(argv)
    Path(args.root).mkdir(parents=True, exist_ok=True)
    asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
