"""Where the CLI's log lines go: -v shows INFO, -vv DEBUG, on stderr, redacted, above the progress.

The library only logs (its package logger has a NullHandler); the command owns its process, so
it is the one that decides where records go. Lines are printed through the same rich console
as the progress display, so a log line appears above a live bar instead of tearing it, and in a
pipe each record is one plain line (no wrapping, no escape codes).
"""

from __future__ import annotations

import logging
from typing import ClassVar

from dreambolt.cli.base import stderr_console
from dreambolt.errors import redact

__all__ = ["ConsoleHandler", "JsonFormatter", "RedactingFilter", "setup_logging"]

FORMAT = "%(levelname)s %(name)s: %(message)s"


class RedactingFilter(logging.Filter):
    """Replaces every secret in a record's message (and its traceback) with `***`.

    The message is rendered once (`getMessage`) and stored without its arguments, so the
    handler cannot re-introduce a secret from an argument that is formatted later.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


class ConsoleHandler(logging.Handler):
    """Prints records on the CLI's stderr console (the one the progress display draws on)."""

    _STYLES: ClassVar[dict[str, str]] = {
        "WARNING": "yellow",
        "ERROR": "red",
        "CRITICAL": "bold red",
    }

    def emit(self, record: logging.LogRecord) -> None:
        try:
            from rich.text import Text

            line = redact(self.format(record))  # redacted again: a custom formatter may add text
            style = self._STYLES.get(record.levelname, "dim" if record.levelno < 20 else "")
            stderr_console().print(Text(line, style=style), soft_wrap=True, highlight=False)
        except Exception:  # a log line must never stop an ingest
            self.handleError(record)


class JsonFormatter(logging.Formatter):
    """One JSON object a line, for log shippers: time (UTC, ISO 8601), level, logger, message
    (and the traceback, if any)."""

    def format(self, record: logging.LogRecord) -> str:
        import json
        from datetime import UTC, datetime

        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_text:
            entry["traceback"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False)


def setup_logging(verbose: int, *, json_lines: bool = False) -> None:
    """Route log records to stderr: package logs at ERROR, INFO (-v) or DEBUG (-vv).

    Other libraries' records (botocore, aiobotocore, asyncio) show from ERROR, or WARNING with
    -v: their DEBUG output carries signed request headers and is not request-level detail a
    user can act on. Calling this again replaces the handler (it does not add a second one).
    """
    level = logging.ERROR if verbose <= 0 else logging.INFO if verbose == 1 else logging.DEBUG
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, ConsoleHandler)]:
        root.removeHandler(handler)
    handler = ConsoleHandler()
    handler.setFormatter(JsonFormatter() if json_lines else logging.Formatter(FORMAT))
    handler.addFilter(RedactingFilter())
    root.addHandler(handler)
    root.setLevel(logging.ERROR if verbose <= 0 else logging.WARNING)
    logging.getLogger("dreambolt").setLevel(level)
