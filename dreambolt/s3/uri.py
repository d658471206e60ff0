r"""Parsing of the places DreamBolt reads from: S3 URIs in every AWS spelling, and local paths.

`parse_s3_uri` turns any of these into one canonical `S3Uri`::

    s3://bucket/key            s3a://bucket/key          s3n://bucket/key?versionId=v
    s3://bucket.us-west-2.amazonaws.com/key              (the host names the region)
    https://bucket.s3.us-west-2.amazonaws.com/key        (virtual-hosted, also s3-REGION,
    https://s3.us-west-2.amazonaws.com/bucket/key         dualstack, global and .com.cn)

Keys are literal in `s3://` forms and percent-decoded in `http(s)://` forms, as the AWS CLI and
browsers write them. A key ending in `/` is a prefix; an unescaped `*`, `?` or `[` makes it a glob,
matched by `glob_match` (`*` stays within one path segment, `**` crosses them, `\` escapes).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, unquote

from dreambolt.errors import InvalidS3UriError, redact

__all__ = [
    "S3Uri",
    "glob_match",
    "has_glob",
    "is_local",
    "local_path",
    "parse_s3_uri",
]

_EXAMPLE = "s3://my-bucket/path/to/file.csv"
_S3_SCHEMES = {"s3", "s3a", "s3n"}
_WILDCARDS = "*?["
_ESCAPE_OR_WILDCARD = re.compile(r"\\.|[*?\[]", re.DOTALL)

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://(.*)", re.DOTALL)
# A word, a colon, then a slash (`s3:/x`, `http:/x`) is a mistyped URI, never a local path; so is
# a known scheme followed by a colon (`s3:bucket/key`) or by `//` without one (`s3//bucket/key`).
# One-letter words are Windows drives.
_URI_ATTEMPT = re.compile(
    r"[A-Za-z][A-Za-z0-9+.-]+:/|(?:s3[an]?|https?|file):|(?:s3[an]?|https?)//", re.IGNORECASE
)
_VERSION_SUFFIX = re.compile(r"\?versionId=([^?&/]+)\Z")

_REGION = r"[a-z]{2}(?:-[a-z]+)+-\d+"
_ENDPOINT = (
    rf"(?P<endpoint>s3(?:-fips)?(?:\.dualstack)?(?:[.-](?P<region>{_REGION}))?"
    r"|s3-accelerate(?:\.dualstack)?)"
)
_BUCKET_LABELS = r"(?:(?P<bucket>.+?)\.)?"
_AWS_SUFFIX = r"\.amazonaws\.com(?P<cn>\.cn)?"
# An S3 endpoint host, with the bucket in front when virtual-hosted.
_HTTP_HOST = re.compile(_BUCKET_LABELS + _ENDPOINT + _AWS_SUFFIX)
# After s3:// the bare `bucket.REGION.amazonaws.com` spelling is accepted as well.
_S3_HOST = re.compile(rf"(?P<bucket>.+?)\.(?P<bare>{_REGION}){_AWS_SUFFIX}")

_BUCKET_CHARS = re.compile(r"[a-z0-9][a-z0-9.-]*[a-z0-9]")
_IP_ADDRESS = re.compile(r"\d+\.\d+\.\d+\.\d+")


@dataclass(frozen=True, slots=True)
class S3Uri:
    """One S3 object, prefix or glob, as `parse_s3_uri` understood it."""

    bucket: str
    key: str
    region: str | None = None
    version_id: str | None = None

    def __iter__(self) -> Iterator[str | None]:
        """Yield `(bucket, key, region)`, so `bucket, key, region = parse_s3_uri(u)` works."""
        yield self.bucket
        yield self.key
        yield self.region

    def __str__(self) -> str:
        """Canonical spelling: `s3://bucket/key`, plus `?versionId=…` when pinned."""
        version = f"?versionId={self.version_id}" if self.version_id else ""
        return f"s3://{self.bucket}/{self.key}{version}"

    @property
    def is_glob(self) -> bool:
        """Whether the key holds an unescaped wildcard, so it must be listed and matched."""
        return has_glob(self.key)

    @property
    def is_prefix(self) -> bool:
        """Whether the URI names everything under a prefix: the whole bucket or a key ending `/`."""
        return self.key == "" or (self.key.endswith("/") and not self.is_glob)

    @property
    def list_prefix(self) -> str:
        """The literal key prefix to list: the part of a glob before its first wildcard."""
        index = _first_wildcard(self.key)
        return self.key if index < 0 else _unescape(self.key[:index])

    def with_key(self, key: str) -> S3Uri:
        """The same bucket and region with another key (and no version), e.g. a glob's match."""
        return S3Uri(self.bucket, key, self.region)


def parse_s3_uri(text: str, *, require_key: bool = False) -> S3Uri:
    """Parse any AWS spelling of an S3 location; raise `InvalidS3UriError` saying what is wrong.

    With `require_key=True` a bucket-only URI such as `s3://bucket/` is an error rather than a
    prefix covering the whole bucket.
    """
    if not isinstance(text, str):
        raise _invalid(repr(text), "expected a string")
    stripped = text.strip()
    if not stripped:
        raise _invalid(text, "it is empty")
    if any("\ud800" <= char <= "\udfff" for char in stripped):
        raise _invalid(text, "it is not valid Unicode text")
    match = _SCHEME.fullmatch(stripped)
    if match is None:
        if _URI_ATTEMPT.match(stripped):
            raise _invalid(text, "the scheme must be followed by '://'")
        raise _invalid(text, "it has no scheme; S3 URIs start with s3://")
    scheme, rest = match[1].lower(), match[2]
    if scheme in _S3_SCHEMES:
        uri = _parse_s3_form(text, rest)
    elif scheme in ("http", "https"):
        uri = _parse_http_form(text, rest)
    else:
        raise _invalid(text, f"the scheme {scheme}:// is not supported, only s3:// and https://")
    if require_key and not uri.key:
        raise _invalid(text, "it names a bucket but no object key")
    return uri


def _parse_s3_form(text: str, rest: str) -> S3Uri:
    """Parse what follows `s3://`: a bucket (maybe spelled as an AWS host) and a literal key."""
    version = None
    if suffix := _VERSION_SUFFIX.search(rest):
        version, rest = suffix[1], rest[: suffix.start()]
    host, _, key = rest.partition("/")
    bucket, region = host, None
    if len(host) <= 255 and (found := _HTTP_HOST.fullmatch(host) or _S3_HOST.fullmatch(host)):
        groups = found.groupdict()
        region = groups.get("region") or groups.get("bare") or _global_region(found)
        bucket = groups["bucket"]
        if bucket is None:  # a path-style endpoint: the bucket is the first path segment
            bucket, _, key = key.partition("/")
    return _checked(text, bucket, key, region, version)


def _parse_http_form(text: str, rest: str) -> S3Uri:
    """Parse what follows `https://`: an AWS S3 endpoint host and a percent-encoded path."""
    rest = rest.partition("#")[0]
    rest, _, query = rest.partition("?")
    netloc, _, path = rest.partition("/")
    host = netloc.rpartition("@")[2].partition(":")[0].lower()
    found = _HTTP_HOST.fullmatch(host) if len(host) <= 255 else None
    if found is None:
        raise _invalid(
            text,
            f"{host or 'the host'} is not an AWS S3 endpoint (for MinIO or another S3-compatible "
            "service pass its address as the endpoint URL and write the object as s3://bucket/key)",
        )
    bucket = found["bucket"]
    if bucket is None:  # path-style: https://s3.REGION.amazonaws.com/bucket/key
        bucket, _, path = path.partition("/")
    versions = [value for name, value in parse_qsl(query) if name == "versionId"]
    version = versions[-1] if versions else None
    region = found["region"] or _global_region(found)
    return _checked(text, bucket, unquote(path), region, version)


def _global_region(found: re.Match[str]) -> str | None:
    """The region implied by the global endpoint `s3.amazonaws.com`, which is us-east-1."""
    return "us-east-1" if found.groupdict().get("endpoint") == "s3" and not found["cn"] else None


def _checked(text: str, bucket: str, key: str, region: str | None, version: str | None) -> S3Uri:
    """Build the `S3Uri` once its bucket name follows AWS rules and a version has a key."""
    if problem := _bucket_problem(bucket):
        raise _invalid(text, problem)
    if version is not None and not key:
        raise _invalid(text, "a versionId needs an object key")
    return S3Uri(bucket, key, region, version)


def _bucket_problem(name: str) -> str | None:
    """Say why `name` breaks the AWS bucket naming rules, or return None if it is valid."""
    if not name:
        return "the bucket name is missing"
    if not 3 <= len(name) <= 63:
        return f"the bucket name {name!r} must be 3 to 63 characters long"
    if not _BUCKET_CHARS.fullmatch(name):
        return (
            f"the bucket name {name!r} may contain only lowercase letters, digits, dots and "
            "hyphens, and must start and end with a letter or digit"
        )
    if ".." in name:
        return f"the bucket name {name!r} must not contain '..'"
    if _IP_ADDRESS.fullmatch(name):
        return f"the bucket name {name!r} must not be an IP address"
    if name.startswith("xn--"):
        return f"the bucket name {name!r} must not start with 'xn--'"
    if name.endswith(("-s3alias", "--ol-s3")):
        return f"the bucket name {name!r} must not end with '-s3alias' or '--ol-s3'"
    return None


def _invalid(text: str, why: str) -> InvalidS3UriError:
    """The error for an unusable URI: it quotes the input, says why, and shows a valid one."""
    return InvalidS3UriError(redact(f"Invalid S3 URI {text!r}: {why}. Example: {_EXAMPLE}"))


def is_local(text: str) -> bool:
    """Whether `text` names a local file: a `file:` URI or a plain path with no `scheme://`."""
    stripped = text.strip()
    if not stripped:
        return False
    return stripped[:5].lower() == "file:" or not _URI_ATTEMPT.match(stripped)


def local_path(text: str) -> Path:
    """The filesystem path of a local source; `file://` URIs are percent-decoded."""
    stripped = text.strip()
    if not is_local(stripped):
        raise _not_local(text)
    if stripped[:5].lower() != "file:":
        return Path(stripped)
    path = stripped[5:]
    if path.startswith("//"):  # file://HOST/path names a file on HOST; only this one is readable
        host, _, path = path[2:].partition("/")
        if host.lower() not in ("", "localhost"):
            raise _not_local(text)
        path = "/" + path
    return Path(unquote(path) or "/")


def _not_local(text: str) -> InvalidS3UriError:
    """The error for text that is not a local path, or names a file on another host."""
    return InvalidS3UriError(
        f"{text!r} is not a local path; expected e.g. data/file.csv, file:///abs/path/file.csv "
        f"or an S3 URI such as {_EXAMPLE}"
    )


def has_glob(text: str) -> bool:
    """Whether `text` holds an unescaped `*`, `?` or `[`, so it is a pattern, not a name."""
    return _first_wildcard(text) >= 0


def glob_match(pattern: str, key: str) -> bool:
    """Whether an S3 key matches a glob: `*`/`?`/`[…]` within a segment, `**` across segments."""
    return _compile_glob(pattern).fullmatch(key) is not None


def _first_wildcard(text: str) -> int:
    """Index of the first unescaped wildcard character in `text`, or -1."""
    for found in _ESCAPE_OR_WILDCARD.finditer(text):
        if found[0] in _WILDCARDS:
            return found.start()
    return -1


def _unescape(text: str) -> str:
    r"""`text` with glob escapes (`\*` → `*`) removed."""
    return re.sub(r"\\(.)", r"\1", text, flags=re.DOTALL)


_STAR, _GLOBSTAR, _GLOBSTAR_DIR = "[^/]*", ".*", "(?:.*/)?"
_STARS = (_STAR, _GLOBSTAR, _GLOBSTAR_DIR)
_GLOB_PIECES = {"**/": _GLOBSTAR_DIR, "**": _GLOBSTAR, "*": _STAR, "?": "[^/]"}
# One glob element: `**/`, `**`, `*`, `?`, a class (a leading `]` is a member, as in fnmatch),
# an escaped character, or any other single character (an unclosed `[` is literal).
_GLOB_TOKEN = re.compile(r"\*\*/|\*\*|\*|\?|\[[!^]?+\]?+[^\]]*\]|\\.|.", re.DOTALL)
_CLASS_MEMBER = re.compile(r"(.)-(.)|(.)", re.DOTALL)


@functools.lru_cache(maxsize=256)
def _compile_glob(pattern: str) -> re.Pattern[str]:
    """Translate a key glob into a regular expression (cached, globs repeat across listings)."""
    tokens = [_glob_piece(found[0]) for found in _GLOB_TOKEN.finditer(pattern)]
    parts: list[str] = []
    index = 0
    while index < len(tokens):
        token, index = tokens[index], index + 1
        end = index
        while token == _STAR and end < len(tokens) and tokens[end] not in _STARS:
            end += 1
        chunk, after = tokens[index:end], tokens[end : end + 1]
        # In `*C*` the first C in the segment is always a safe choice; committing to it (atomic
        # group) stops the exponential backtracking of e.g. `*-*-*-*.csv` on a key that fails.
        if chunk and "/" not in chunk and after in ([_STAR], [_GLOBSTAR]):
            parts.append(f"(?>[^/]*?{''.join(chunk)})")
            index = end
        else:
            parts.append(token)
    return re.compile("".join(parts), re.DOTALL)


def _glob_piece(token: str) -> str:
    """The regex for one glob element found by `_GLOB_TOKEN`."""
    if token in _GLOB_PIECES:
        return _GLOB_PIECES[token]
    if token.startswith("[") and len(token) > 1:
        return _char_class(token[1:-1])
    return re.escape(token[-1])  # a plain or backslash-escaped character


def _char_class(body: str) -> str:
    """Regex for a glob class body such as `a-z0-9` or `!._`; it never matches `/`."""
    negate = body[:1] in ("!", "^")
    members: list[str] = []
    for first, last, single in _CLASS_MEMBER.findall(body[1:] if negate else body):
        if single:
            members.append(re.escape(single))
        elif first <= last:  # an empty range like `z-a` matches nothing, as in fnmatch
            members.append(f"{re.escape(first)}-{re.escape(last)}")
    if not members:
        return "[^/]" if negate else "(?!)"
    return f"(?!/)[{'^' if negate else ''}{''.join(members)}]"
