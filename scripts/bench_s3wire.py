"""S3's wire format for scripts/bench_server.py: error responses, XML bodies, Range and ETag
headers, and aws-chunked request bodies.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from typing import IO
from xml.sax.saxutils import escape

from aiohttp import StreamReader, web

NS = "http://s3.amazonaws.com/doc/2006-03-01/"


class S3Error(Exception):
    """An S3 error response: status, code and the extra XML elements it carries."""

    def __init__(self, status: int, code: str, message: str = "", **extra: str) -> None:
        super().__init__(code)
        self.status, self.code, self.message, self.extra = status, code, message, extra


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """(start, count) of a single `bytes=` range; None sends it all; raises if unsatisfiable."""
    match = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", header)
    if match is None or match.groups() == ("", ""):
        return None  # S3 ignores what it cannot parse, multi-range requests included
    first, last = match.groups()
    if not first:  # a suffix: the last n bytes
        start, end = max(size - int(last), 0), (size - 1 if int(last) else -1)
    else:
        start, end = int(first), min(int(last), size - 1) if last else size - 1
        if last and int(last) < start:
            return None
    if start >= size or end < start:
        raise S3Error(416, "InvalidRange", "Range not satisfiable", ActualObjectSize=str(size))
    return start, end - start + 1


def iso_time(ns: int) -> str:
    """ISO 8601 with milliseconds, as S3 lists LastModified."""
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 10**9))
    return f"{seconds}.{ns // 10**6 % 1000:03d}Z"


def parse_etags(header: str) -> set[str]:
    return {'"' + tag.strip().removeprefix("W/").strip('"') + '"' for tag in header.split(",")}


def xml_response(root: str, inner: str, status: int = 200) -> web.Response:
    xmlns = f' xmlns="{NS}"' if status < 300 else ""  # S3's <Error> has no namespace
    body = f'<?xml version="1.0" encoding="UTF-8"?>\n<{root}{xmlns}>{inner}</{root}>'
    return web.Response(status=status, body=body.encode(), content_type="application/xml")


def xml_tags(**fields: str | int | None) -> str:
    return "".join(f"<{k}>{escape(str(v))}</{k}>" for k, v in fields.items() if v is not None)


def file_etag(st: os.stat_result, name: str) -> str:
    """A quoted ETag that is stable across restarts and needs no read of the file."""
    return f'"{hashlib.md5(f"{st.st_size}:{st.st_mtime_ns}:{name}".encode()).hexdigest()}"'


async def read_aws_chunked(content: StreamReader, out: IO[bytes]) -> None:
    # Frames: "<hex size>[;chunk-signature=...]\r\n<data>\r\n", ending with a 0-size frame
    # followed by optional trailer lines (checksums) and a blank line.
    while line := await content.readline():
        size = int(line.split(b";", 1)[0].strip() or b"0", 16)
        if size == 0:
            while (await content.readline()).strip():
                pass
            return
        out.write(await content.readexactly(size))
        await content.readline()
