"""One file to load, as the inputs named it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from dreambolt.s3.objects import ObjectInfo

__all__ = ["Failures", "Source"]

Failures = list[tuple[str, Exception]]  # (what could not be read, why)


@dataclass(frozen=True, slots=True)
class Source:
    """One file to load: an S3 object (with what listing/HEAD said) or a local file."""

    uri: str  # canonical: s3://bucket/key or file:///abs/path
    size: int
    etag: str | None
    info: ObjectInfo | None = None
    path: Path | None = None

    @property
    def name(self) -> str:
        """The file name part, used to detect the format."""
        if self.path:
            return self.path.name
        last = self.uri.rpartition("/")[2]  # as PurePosixPath says, at a fraction of the cost
        return last if last not in ("", ".") else PurePosixPath(self.uri).name
