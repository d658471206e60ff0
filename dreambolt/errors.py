"""DreamBolt's exceptions, and the one place where lower-layer errors are translated into them.

The tree::

    DreamBoltError
    ├── InvalidS3UriError (also ValueError)
    ├── S3BaseError            .uri .code .status .request_id .hint, original error as __cause__
    │   ├── S3AuthError
    │   ├── S3NotFoundError
    │   ├── S3RateLimitError
    │   ├── S3ObjectChangedError
    │   ├── S3IntegrityError
    │   └── S3GenericError
    ├── FormatError
    ├── EmbeddingError
    │   └── EmbeddingAuthError
    └── SinkError

`translate()` maps botocore, aiohttp and credential exceptions onto the S3 branch by error code and
HTTP status (never by message text). Every message names the URI, says why and what to do, and is
passed through `redact()` so no secret key, session token or signature can leak into it.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Mapping
from typing import Any

__all__ = [
    "DreamBoltError",
    "EmbeddingAuthError",
    "EmbeddingError",
    "FormatError",
    "InvalidS3UriError",
    "S3AuthError",
    "S3BaseError",
    "S3GenericError",
    "S3IntegrityError",
    "S3NotFoundError",
    "S3ObjectChangedError",
    "S3RateLimitError",
    "SinkError",
    "redact",
    "translate",
]


class DreamBoltError(Exception):
    """Base class of every error DreamBolt raises on purpose."""


class InvalidS3UriError(DreamBoltError, ValueError):
    """Raised when a URI or path cannot be parsed: bad scheme, bucket name, or missing key."""


class S3BaseError(DreamBoltError):
    """Raised when an S3 request fails; carries what S3 said and what to do about it."""

    def __init__(
        self,
        message: str,
        *,
        uri: str | None = None,
        code: str | None = None,
        status: int | None = None,
        request_id: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.uri = uri
        self.code = code
        self.status = status
        self.request_id = request_id
        self.hint = hint
        self.retry_after: float | None = None  # seconds, from a Retry-After header
        super().__init__(redact(message))


class S3AuthError(S3BaseError):
    """Raised when credentials are missing, invalid, expired, or lack permission (401/403)."""


class S3NotFoundError(S3BaseError):
    """Raised when the bucket, key or version does not exist (404)."""


class S3RateLimitError(S3BaseError):
    """Raised when S3 kept throttling (SlowDown, 429, 503) after every retry."""


class S3ObjectChangedError(S3BaseError):
    """Raised when the object changed while it was being read (412 on If-Match)."""


class S3IntegrityError(S3BaseError):
    """Raised when the size or checksum of what arrived differs from what S3 promised."""


class S3GenericError(S3BaseError):
    """Raised for any other S3 or network failure, after retries."""


class FormatError(DreamBoltError):
    """Raised when bytes are not a readable file of the detected or declared format."""


class EmbeddingError(DreamBoltError):
    """Raised when the embedding provider refused or failed, after retries."""


class EmbeddingAuthError(EmbeddingError):
    """Raised when there is no API key, or the provider refused it (401/403, no quota):
    every file would fail alike, so the run stops."""


class SinkError(DreamBoltError):
    """Raised when the destination table or database cannot be opened or written.

    `fatal` marks an error that every later file would meet too (the database cannot be opened,
    its disk is full, it is not a database): the run stops (exit 3) instead of failing each file.
    `code` names the cause where there is one (e.g. ``ENOSPC``, ``NotADatabase``).
    """

    def __init__(self, message: str, *, code: str | None = None, fatal: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.fatal = fatal


# --- redaction -------------------------------------------------------------------------------

_SECRET_PATTERNS = [
    # query-string credentials of presigned URLs
    re.compile(r"(?i)(X-Amz-(?:Signature|Credential|Security-Token)=)[^&\s'\"]+"),
    # header-style signatures
    re.compile(r"(?i)(Signature=)[0-9a-f]{16,}"),
    re.compile(
        r"(?i)((?:aws_secret_access_key|aws_session_token|secret|token|password)\s*[=:]\s*)['\"]?[^\s'\",;]+"
    ),
]
_known_secrets: set[str] = set()


def register_secret(value: str | None) -> None:
    """Remember a secret (e.g. the configured secret key) so that `redact` always removes it."""
    if value and len(value) >= 8:
        _known_secrets.add(value)


def redact(text: str) -> str:
    """Return `text` with every secret key, session token and signature replaced by `***`."""
    for secret in _known_secrets:
        text = text.replace(secret, "***")
    for name in ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "OPENAI_API_KEY"):
        value = os.environ.get(name)
        if value and len(value) >= 8:
            text = text.replace(value, "***")
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(r"\1***", text)
    return text


# --- translation -----------------------------------------------------------------------------

_AUTH_CODES = {
    "AccessDenied",
    "AllAccessDisabled",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "ExpiredTokenException",
    "InvalidToken",
    "TokenRefreshRequired",
    "RequestTimeTooSkewed",
    "AccountProblem",
    "InvalidSecurity",
    "UnauthorizedAccess",
}
_NOT_FOUND_CODES = {"NoSuchKey", "NoSuchBucket", "NoSuchVersion", "NotFound", "NoSuchUpload"}
_RATE_CODES = {
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "RequestLimitExceeded",
    "TooManyRequests",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "BandwidthLimitExceeded",
    "EC2ThrottledException",
    "PriorRequestNotComplete",
    "ServiceUnavailable",
}
_CHANGED_CODES = {"PreconditionFailed"}

_HEAD_CODES = {"403": "AccessDenied", "404": "NotFound", "412": "PreconditionFailed"}

_NO_CREDENTIALS_HINT = (
    "configure AWS credentials: run `aws configure`, set AWS_PROFILE to a profile in "
    "~/.aws/credentials, export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run on a host "
    "with an IAM instance role"
)
_AUTH_HINTS = {
    "InvalidAccessKeyId": "the access key id is not known to this endpoint: check AWS_PROFILE, "
    "AWS_ACCESS_KEY_ID and --endpoint-url (a key for MinIO/R2 is not valid on AWS)",
    "SignatureDoesNotMatch": "the secret access key does not match the key id: re-run "
    "`aws configure` or check AWS_SECRET_ACCESS_KEY",
    "ExpiredToken": "the session token has expired: refresh it (`aws sso login`, re-assume "
    "the role) and run again",
    "RequestTimeTooSkewed": "this machine's clock differs from S3's by over 15 minutes: sync it "
    "(NTP) and run again",
}
_DEFAULT_AUTH_HINT = (
    "access was refused: check that the IAM identity in use (AWS_PROFILE, role or keys) is allowed "
    "s3:GetObject and s3:ListBucket on this bucket, and that no bucket policy denies it"
)


def classify(code: str | None, status: int | None) -> type[S3BaseError]:
    """Pick the error class for an S3 error code and HTTP status."""
    if code in _CHANGED_CODES or status == 412:
        return S3ObjectChangedError
    if code in _AUTH_CODES or status in (401, 403):
        return S3AuthError
    if code in _NOT_FOUND_CODES or status == 404:
        return S3NotFoundError
    if code in _RATE_CODES or status in (429, 503):
        return S3RateLimitError
    return S3GenericError


def _hint_for(cls: type[S3BaseError], code: str | None, uri: str) -> str:
    if cls is S3AuthError:
        return _AUTH_HINTS.get(code or "", _DEFAULT_AUTH_HINT)
    if cls is S3NotFoundError:
        if code == "NoSuchBucket":
            return "the bucket does not exist: check its name, the account and --endpoint-url"
        if code == "NoSuchVersion":
            return "that version id does not exist for this key: drop ?versionId= or check it"
        return "check the bucket and key (`dreambolt ls` lists what exists under a prefix)"
    if cls is S3RateLimitError:
        return "S3 is throttling this prefix: lower --concurrency or raise --max-retries"
    if cls is S3ObjectChangedError:
        return "the object was overwritten during the read: run again to read the new version"
    return "check the endpoint and network, then run again; raise --max-retries for flaky links"


def make_error(
    cls: type[S3BaseError] | None,
    *,
    uri: str,
    code: str | None,
    status: int | None,
    request_id: str | None = None,
    detail: str | None = None,
) -> S3BaseError:
    """Build an S3 error with a message that names the URI, the reason and the fix."""
    cls = cls or classify(code, status)
    hint = _hint_for(cls, code, uri)
    why = " ".join(p for p in (code, f"(HTTP {status})" if status else None, detail) if p)
    message = f"{uri}: {why or 'request failed'}; {hint}"
    return cls(message, uri=uri, code=code, status=status, request_id=request_id, hint=hint)


def translate(exc: BaseException, uri: str) -> S3BaseError:
    """Translate an exception from botocore, aiohttp or the credential chain into our tree."""
    if isinstance(exc, S3BaseError):
        return exc
    # Imported here so this module stays importable on its own (and cheap at import time).
    from botocore import exceptions as bce

    if isinstance(exc, bce.NoCredentialsError | bce.PartialCredentialsError | bce.ProfileNotFound):
        what = "no AWS credentials found" if isinstance(exc, bce.NoCredentialsError) else str(exc)
        err: S3BaseError = S3AuthError(
            f"{uri}: {what}; {_NO_CREDENTIALS_HINT}",
            uri=uri,
            code="NoCredentials",
            status=None,
            hint=_NO_CREDENTIALS_HINT,
        )
        err.__cause__ = exc
        return err
    if isinstance(exc, bce.FlexibleChecksumError):
        err = make_error(
            S3IntegrityError,
            uri=uri,
            code="ChecksumMismatch",
            status=None,
            detail="the checksum of the bytes read differs from the object's checksum",
        )
    elif isinstance(exc, bce.ClientError):
        response: Mapping[str, Any] = exc.response or {}
        error = response.get("Error", {}) or {}
        meta = response.get("ResponseMetadata", {}) or {}
        status = meta.get("HTTPStatusCode")
        code = error.get("Code") or None
        # HEAD errors have no body: botocore puts the status digits in Code.
        if code and code.isdigit():
            status = status or int(code)
            code = _HEAD_CODES.get(code, code)
        detail = error.get("Message") or None
        err = make_error(
            None,
            uri=uri,
            code=code,
            status=status,
            request_id=meta.get("RequestId"),
            detail=detail,
        )
        err.retry_after = _retry_after(meta.get("HTTPHeaders") or {})
    elif isinstance(exc, asyncio.TimeoutError | TimeoutError) or _is_timeout(exc):
        err = make_error(
            S3GenericError,
            uri=uri,
            code="Timeout",
            status=None,
            detail=f"timed out ({type(exc).__name__})",
        )
    else:
        err = make_error(
            S3GenericError, uri=uri, code=type(exc).__name__, status=None, detail=str(exc) or None
        )
    err.__cause__ = exc
    return err


def _retry_after(headers: dict[str, str]) -> float | None:
    value = headers.get("retry-after") or headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP-date; jittered backoff applies instead


def _is_timeout(exc: BaseException) -> bool:
    from botocore import exceptions as bce

    return isinstance(exc, bce.ReadTimeoutError | bce.ConnectTimeoutError)
