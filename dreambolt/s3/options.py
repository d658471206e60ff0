"""How to reach S3: the settings of an `S3Client`, as one frozen, validated value.

`Ingester(s3=S3Options(...))` and the CLI build their client from it; `S3Client(...)` takes the
same names as keyword arguments. A misspelt name is a TypeError where it is written, and a value
out of range a ValueError at construction, not at the first request.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True, kw_only=True)
class S3Options:
    """Settings of an S3 client.

    - `endpoint_url`: an S3-compatible endpoint (MinIO, moto, ...); default: `AWS_ENDPOINT_URL_S3`,
      `AWS_ENDPOINT_URL`, else AWS.
    - `region`: the region of buckets whose region is not known otherwise; default: the profile's
      `region`, `AWS_REGION`, `AWS_DEFAULT_REGION`, else us-east-1.
    - `profile`: a profile of the AWS config files (default: `AWS_PROFILE`, else `default`).
    - `max_retries`: retries after the first attempt of a request that failed transiently.
    - `backoff_factor`, `max_backoff`: the n-th retry waits a jittered time up to
      `backoff_factor * 2**(n-1)` seconds, at most `max_backoff`.
    - `concurrency`: requests in flight at once, over all objects; None: the user's default
      (16 for `S3Client`, 64 for `Ingester`, which is mostly bound by time to first byte).
    - `part_size`: bytes per ranged GET of a large object.
    - `connect_timeout`, `read_timeout`: seconds, per request.
    """

    endpoint_url: str | None = None
    region: str | None = None
    profile: str | None = None
    max_retries: int = 3
    backoff_factor: float = 2.0
    max_backoff: float = 20.0
    concurrency: int | None = None
    part_size: int = 8 * 2**20
    connect_timeout: float = 5.0
    read_timeout: float = 30.0

    def __post_init__(self) -> None:
        if self.concurrency is not None and self.concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {self.concurrency}")
        if self.part_size < 1:
            raise ValueError(f"part_size must be >= 1, got {self.part_size}")
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {self.max_retries}")
        for name in ("backoff_factor", "max_backoff"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("connect_timeout", "read_timeout"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0 seconds, got {getattr(self, name)}")

    def client_kwargs(self, default_concurrency: int) -> dict[str, Any]:
        """The keyword arguments of `S3Client` these options stand for."""
        kwargs = asdict(self)
        if kwargs["concurrency"] is None:
            kwargs["concurrency"] = default_concurrency
        return kwargs
