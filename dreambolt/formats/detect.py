"""Recognise a data file's format from its name, its first bytes and what the user declared."""

from __future__ import annotations

import codecs
import re
import zlib
from dataclasses import dataclass
from typing import Literal

import zstandard

__all__ = [
    "HEAD_BYTES",
    "Compression",
    "CsvOptions",
    "FileFormat",
    "Format",
    "detect_format",
    "is_text",
]

Format = Literal["csv", "tsv", "parquet", "ndjson", "json", "ipc"]
Compression = Literal["gzip", "zstd", "bz2"] | None

HEAD_BYTES = 4096  # all that detect_format looks at (gzip headers may hold a file name)
TEXT_KINDS = frozenset({"csv", "tsv", "ndjson", "json"})


@dataclass(frozen=True)
class CsvOptions:
    """What the user says about CSV/TSV files; None means: detect it (as DuckDB's sniffer does).

    `delimiter`: one single-byte character; `header`: whether the first (unskipped) line names
    the columns; `skip_rows`: lines before that one to ignore; `encoding`: of every text file
    (any Python codec name: ``latin-1``, ``cp1252``, ``utf-16`` ...), else UTF-8 (or UTF-16
    when the text starts with its byte order mark).
    """

    delimiter: str | None = None
    header: bool | None = None
    skip_rows: int | None = None
    encoding: str | None = None

    def __post_init__(self) -> None:
        if self.delimiter is not None and (
            len(self.delimiter.encode()) != 1 or self.delimiter in '\r\n"'
        ):
            raise ValueError(
                f"the CSV delimiter must be one single-byte character other than a quote or a "
                f"line end, not {self.delimiter!r} (for a tab give '\\t')"
            )
        if self.skip_rows is not None and (isinstance(self.skip_rows, bool) or self.skip_rows < 0):
            raise ValueError(f"skip_rows must be 0 or more, not {self.skip_rows!r}")
        if self.encoding is not None:
            try:
                codecs.lookup(self.encoding)
            except LookupError:
                raise ValueError(
                    f"unknown encoding {self.encoding!r}: give a name Python knows, e.g. "
                    "'latin-1', 'cp1252' or 'utf-16'"
                ) from None


NO_OPTIONS = CsvOptions()


@dataclass(frozen=True)
class FileFormat:
    """What a file contains (`kind`), how it is compressed, as decided by `detect_format`, and
    what the user said about its text (`options`)."""

    kind: Format
    compression: Compression = None
    options: CsvOptions = NO_OPTIONS

    def __str__(self) -> str:
        """Spell the format the way `--format` accepts it, e.g. ``csv.gz``."""
        suffix = {"gzip": ".gz", "zstd": ".zst", "bz2": ".bz2", None: ""}[self.compression]
        return f"{self.kind}{suffix}"


def is_text(fmt: FileFormat) -> bool:
    """Tell whether the format is line-oriented text (where an empty file means no rows)."""
    return fmt.kind in TEXT_KINDS


_KIND_NAMES: dict[str, Format] = {
    "csv": "csv",
    "tsv": "tsv",
    "tab": "tsv",
    "parquet": "parquet",
    "pq": "parquet",
    "ndjson": "ndjson",
    "jsonl": "ndjson",
    "json": "json",
    "arrow": "ipc",
    "ipc": "ipc",
    "feather": "ipc",
}
_COMPRESSION_NAMES: dict[str, Compression] = {
    "gz": "gzip",
    "gzip": "gzip",
    "zst": "zstd",
    "zstd": "zstd",
    "bz2": "bz2",
}
# "BZh", block size, then the magic of a first block or of an empty stream's end.
_BZ2_MAGIC = re.compile(rb"BZh[1-9](?:\x31\x41\x59\x26\x53\x59|\x17\x72\x45\x38\x50\x90)")
_FIRST_CHAR = re.compile(rb"(?:\xef\xbb\xbf)?\s*(\S?)")


def detect_format(
    name: str, head: bytes, declared: str | None = None, options: CsvOptions = NO_OPTIONS
) -> FileFormat:
    """Decide a file's format from its first bytes, its name and an optional declared format.

    Content first: magic bytes decide compression and Parquet/IPC; text starting with ``{`` is
    JSON lines (a lone ``{`` on the first line: one pretty-printed JSON document), with ``[`` a
    JSON array, whatever the extension (``.jsn``, ``.txt``, ``.csv``...). Other text is what the
    name says (``.csv``, ``.tsv``), else TSV if its first line has tabs and no commas, else CSV
    (whose delimiter is sniffed later). `declared` (``csv``, ``parquet``, ``csv.gz``,
    ``ndjson.zst``, ``jsonl`` ...) beats all of that for what it names. Raises `ValueError`
    for a declared format that is none of these.
    """
    head = bytes(head[:HEAD_BYTES])
    declared_kind, declared_compression = _parse_declared(declared)
    name_kind, name_compression = _parse_name(name)
    if declared_compression is not False:
        compression = declared_compression
    else:
        compression = _compression_magic(head) if head else name_compression
    if declared_kind is not None:
        return FileFormat(declared_kind, compression, options)

    start = _peek(head, compression)
    first = first_char(start)
    kind: Format
    if start.startswith(b"PAR1"):
        kind = "parquet"
    elif start.startswith((b"ARROW1", b"\xff\xff\xff\xff")):
        kind = "ipc"
    elif first == b"{":
        line = start.split(b"\n", 1)[0].strip().lstrip(b"\xef\xbb\xbf")
        kind = "json" if line == b"{" and b"\n" in start else "ndjson"
    elif first == b"[":
        kind = "json"
    elif name_kind is not None:
        kind = name_kind
    else:
        line = start.split(b"\n", 1)[0]
        kind = "tsv" if b"\t" in line and b"," not in line else "csv"
    return FileFormat(kind, compression, options)


def named_format(name: str, declared: str | None = None) -> FileFormat | None:
    """The format the declared format, else the name, says, before any byte is seen (None when
    neither names a kind): a guess for planning how to fetch; `detect_format` decides."""
    kind, compression = _parse_declared(declared)
    if kind is None:
        kind, compression = _parse_name(name)
    if kind is None:
        return None
    return FileFormat(kind, None if compression is False else compression)


def _parse_declared(declared: str | None) -> tuple[Format | None, Compression | Literal[False]]:
    """Split e.g. ``csv.gz`` into kind and compression; False means no compression was named."""
    kind: Format | None = None
    compression: Compression | Literal[False] = False
    tokens = declared.strip().lower().lstrip(".").split(".") if declared else []
    for token in filter(None, tokens):
        if token in _KIND_NAMES and kind is None:
            kind = _KIND_NAMES[token]
        elif token in _COMPRESSION_NAMES and compression is False:
            compression = _COMPRESSION_NAMES[token]
        else:
            known = ", ".join(sorted({*_KIND_NAMES, *_COMPRESSION_NAMES}))
            raise ValueError(
                f"unknown format {declared!r}: give a kind, optionally with a compression, "
                f"e.g. 'csv', 'parquet' or 'ndjson.gz' (known names: {known})"
            )
    return kind, compression


def _parse_name(name: str) -> tuple[Format | None, Compression]:
    parts = name.rsplit("/", 1)[-1].lower().split(".")[1:]
    compression = _COMPRESSION_NAMES.get(parts[-1]) if parts else None
    if compression is not None:
        parts.pop()
    return (_KIND_NAMES.get(parts[-1]) if parts else None), compression


def _compression_magic(head: bytes) -> Compression:
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        return "zstd"
    return "bz2" if _BZ2_MAGIC.match(head) else None


def _peek(head: bytes, compression: Compression) -> bytes:
    """Decompress what `head` allows, to sniff inside (best effort: bz2 needs whole blocks)."""
    try:
        if compression == "gzip":
            return zlib.decompressobj(wbits=31).decompress(head)
        if compression == "zstd":
            return zstandard.ZstdDecompressor().decompressobj().decompress(head)
    except (zlib.error, zstandard.ZstdError):
        pass
    return head if compression is None else b""


def first_char(data: bytes) -> bytes:
    """The first non-blank byte of text (after a UTF-8 BOM), or b"" for blank text."""
    match = _FIRST_CHAR.match(data)
    return match.group(1) if match else b""
