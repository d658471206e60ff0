"""Turning what parsing a file raises into a `FormatError` naming the file and the format."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import pyarrow as pa

from dreambolt.errors import FormatError
from dreambolt.formats.detect import FileFormat, is_text
from dreambolt.formats.limits import Refused

__all__ = ["FATAL", "translated"]

# Never turned into a FormatError: they are not about the file.
FATAL = (KeyboardInterrupt, SystemExit, GeneratorExit, asyncio.CancelledError, MemoryError)
# Polars' advice names its own API, and its byte offset counts from one of its parallel chunks.
_POLARS_NOISE = ("You might want to try", "Consider ", "The current offset in the file")


@contextmanager
def translated(
    name: str, fmt: FileFormat, where: str = "", passed: Sequence[BaseException] = ()
) -> Iterator[None]:
    """Turn whatever parsing raises into `FormatError`: the one translation boundary.

    Polars panics (`pyo3_runtime.PanicException`, a `BaseException`) included, and pyarrow's
    `ArrowMemoryError` (a corrupt length asks for petabytes); a real I/O failure (an `OSError`
    with an errno: missing file, full disk) is not about the content, nor is what the source of
    the bytes raised (`passed`: a failed download).
    """
    try:
        yield
    except FormatError:
        raise
    except Refused as exc:
        raise FormatError(f"{name}{where}: {exc}") from exc
    except BaseException as exc:
        if any(exc is failure for failure in passed):
            raise
        if isinstance(exc, OSError) and exc.errno is not None:
            raise
        if isinstance(exc, FATAL) and not isinstance(exc, pa.ArrowException):
            raise
        raise FormatError(_message(name, fmt, exc, where)) from exc


def _message(name: str, fmt: FileFormat, exc: BaseException, where: str = "") -> str:
    paragraphs = [p for p in str(exc).split("\n\n") if not p.startswith(_POLARS_NOISE)]
    reason = " ".join(" ".join(paragraphs).split())[:600].rstrip(".") or type(exc).__name__
    if type(exc).__name__ == "PanicException":
        reason = f"the parser failed (a polars panic: {reason})"
    if (
        is_text(fmt)
        and ("utf-8" in reason.lower() or "utf8" in reason.lower())
        and "--encoding" not in reason
    ):
        reason += (
            " (text is read as UTF-8: give its encoding, e.g. --encoding latin-1, or "
            "convert it, e.g. with iconv -f LATIN1 -t UTF-8)"
        )
    stop = "" if reason.endswith("?") else "."
    example = "tsv.gz" if str(fmt) == "csv.gz" else "csv.gz"
    return (
        f"{name}: cannot read as {fmt}{where}: {reason}{stop} If it is not {fmt}, pass --format "
        f"(e.g. --format {example}) to override detection"
    )
