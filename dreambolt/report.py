"""What an ingest did, file by file, and the callbacks through which it reports progress."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

__all__ = ["ErrorInfo", "FileResult", "IngestReport", "Listener", "Status"]

Status = Literal["loaded", "unchanged", "skipped", "failed", "planned"]
"""`planned` appears only in dry runs, with `action` saying what a real run would do."""


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """Why a file was not loaded: the error's class name, S3/OS code, and message."""

    type: str
    code: str | None
    message: str

    @classmethod
    def of(cls, exc: BaseException) -> ErrorInfo:
        """Describe an exception (messages of DreamBolt errors are already redacted)."""
        code = getattr(exc, "code", None)
        return cls(type(exc).__name__, str(code) if code is not None else None, str(exc))


@dataclass(slots=True)
class FileResult:
    """The outcome for one object or local file."""

    uri: str
    status: Status
    rows: int = 0
    bytes: int = 0
    etag: str | None = None
    error: ErrorInfo | None = None
    table: str | None = None
    seconds: float = 0.0
    replaced: bool = False  # an earlier version's rows were replaced
    action: str | None = None  # dry runs: "new" or "changed"
    texts: int | None = None  # dry runs with --embed: distinct texts not embedded yet
    tokens: int | None = None  # ... and the tokens they would cost

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


@dataclass(slots=True)
class IngestReport:
    """Every file's result, and totals, for one `ingest` run."""

    table: str
    db: str
    files: list[FileResult] = field(default_factory=list)
    started_at: datetime | None = None
    seconds: float = 0.0
    aborted: bool = False
    dry_run: bool = False
    interrupted: bool = False  # Ctrl-C/SIGTERM: the files listed are those that committed
    embedding: dict[str, Any] | None = None  # model, texts, embedded, cached, truncated, ...

    def count(self, status: Status) -> int:
        """How many files ended with `status`."""
        return sum(1 for f in self.files if f.status == status)

    @property
    def rows(self) -> int:
        """Rows written by this run."""
        return sum(f.rows for f in self.files if f.status == "loaded")

    @property
    def bytes(self) -> int:
        """Bytes read by this run."""
        return sum(f.bytes for f in self.files if f.status == "loaded")

    @property
    def ok(self) -> bool:
        """True when every file was loaded or unchanged and nothing aborted the run."""
        good = ("loaded", "unchanged", "planned")
        return not (self.aborted or self.interrupted) and all(f.status in good for f in self.files)

    def totals(self) -> dict[str, int]:
        """Counts per status plus rows and bytes."""
        return {
            "files": len(self.files),
            "loaded": self.count("loaded"),
            "unchanged": self.count("unchanged"),
            "skipped": self.count("skipped"),
            "failed": self.count("failed"),
            "rows": self.rows,
            "bytes": self.bytes,
        }

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: the whole report, including per-file results and totals."""
        return {
            "table": self.table,
            "db": self.db,
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "seconds": round(self.seconds, 3),
            "aborted": self.aborted,
            "interrupted": self.interrupted,
            "dry_run": self.dry_run,
            "totals": self.totals(),
            "embedding": self.embedding,
            "files": [f.to_dict() for f in self.files],
        }


class Listener(Protocol):
    """Progress callbacks; the CLI draws them with rich, the library default ignores them.

    All are called from the event loop's thread, so implementations need no locking.
    """

    def planned(self, files: int, total_bytes: int) -> None:
        """The URIs expanded to `files` objects of `total_bytes` in all (may be called again)."""

    def started(self, uri: str, size: int) -> None:
        """A file's transfer began."""

    def advanced(self, uri: str, nbytes: int) -> None:
        """`nbytes` more of `uri` arrived (negative when a failed range is undone)."""

    def finished(self, result: FileResult) -> None:
        """A file reached its final status."""


class SilentListener:
    """A Listener that ignores everything."""

    def planned(self, files: int, total_bytes: int) -> None:
        pass

    def started(self, uri: str, size: int) -> None:
        pass

    def advanced(self, uri: str, nbytes: int) -> None:
        pass

    def finished(self, result: FileResult) -> None:
        pass
