"""Tests for dreambolt.uri: every accepted S3 spelling, the rejected ones, globs and local paths."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dreambolt.errors import InvalidS3UriError
from dreambolt.s3.uri import S3Uri, glob_match, has_glob, is_local, local_path, parse_s3_uri

W2, E1 = "us-west-2", "us-east-1"

VALID = [
    # s3:// forms: keys are literal
    ("s3://bucket/key.csv", ("bucket", "key.csv", None, None)),
    ("s3a://bucket/a/b/c.parquet", ("bucket", "a/b/c.parquet", None, None)),
    ("s3n://bucket/a/b/c.parquet", ("bucket", "a/b/c.parquet", None, None)),
    ("S3://bucket/key", ("bucket", "key", None, None)),
    ("  s3://bucket/key \n", ("bucket", "key", None, None)),
    ("s3://bucket/file%20name.csv", ("bucket", "file%20name.csv", None, None)),
    ("s3://bucket/what?.csv", ("bucket", "what?.csv", None, None)),
    ("s3://bucket/a#b c", ("bucket", "a#b c", None, None)),
    ("s3://bucket/key?versionId=3HL4kqtJlcpX", ("bucket", "key", None, "3HL4kqtJlcpX")),
    ("s3a://bucket/key?versionId=null", ("bucket", "key", None, "null")),
    ("s3://bucket/key?versionId=", ("bucket", "key?versionId=", None, None)),
    ("s3://bucket", ("bucket", "", None, None)),
    ("s3://bucket/", ("bucket", "", None, None)),
    ("s3://bucket/logs/", ("bucket", "logs/", None, None)),
    ("s3://bucket//double", ("bucket", "/double", None, None)),
    ("s3://my.bucket.name/key", ("my.bucket.name", "key", None, None)),
    ("s3://123/key", ("123", "key", None, None)),
    # s3:// with an AWS host naming the region
    ("s3://bucket.us-west-2.amazonaws.com/file.csv", ("bucket", "file.csv", W2, None)),
    ("s3://bucket.s3.us-west-2.amazonaws.com/file.csv", ("bucket", "file.csv", W2, None)),
    ("s3://bucket.s3-us-west-2.amazonaws.com/file.csv", ("bucket", "file.csv", W2, None)),
    ("s3://bucket.s3.amazonaws.com/file.csv", ("bucket", "file.csv", E1, None)),
    ("s3://my.bucket.eu-central-1.amazonaws.com/x", ("my.bucket", "x", "eu-central-1", None)),
    ("s3://bucket.cn-north-1.amazonaws.com.cn/x", ("bucket", "x", "cn-north-1", None)),
    ("s3://bucket.us-west-2.amazonaws.com/a%20b?versionId=v1", ("bucket", "a%20b", W2, "v1")),
    # virtual-hosted https: keys are percent-decoded
    ("https://bucket.s3.us-west-2.amazonaws.com/key", ("bucket", "key", W2, None)),
    ("https://bucket.s3.us-west-2.amazonaws.com/a%20b/c%2Bd+e", ("bucket", "a b/c+d+e", W2, None)),
    ("https://bucket.s3-us-west-2.amazonaws.com/key", ("bucket", "key", W2, None)),
    ("https://bucket.s3.amazonaws.com/key", ("bucket", "key", E1, None)),
    ("https://bucket.s3.dualstack.us-west-2.amazonaws.com/key", ("bucket", "key", W2, None)),
    ("https://bkt.s3-fips.us-gov-west-1.amazonaws.com/k", ("bkt", "k", "us-gov-west-1", None)),
    ("https://bucket.s3-accelerate.amazonaws.com/key", ("bucket", "key", None, None)),
    ("https://bucket.s3.cn-north-1.amazonaws.com.cn/key", ("bucket", "key", "cn-north-1", None)),
    ("http://bucket.s3.us-west-2.amazonaws.com/key", ("bucket", "key", W2, None)),
    ("HTTPS://Bucket.S3.US-WEST-2.AMAZONAWS.COM/Key", ("bucket", "Key", W2, None)),
    ("https://bucket.s3.us-west-2.amazonaws.com:443/key", ("bucket", "key", W2, None)),
    ("https://my.bucket.s3.us-west-2.amazonaws.com/key", ("my.bucket", "key", W2, None)),
    ("https://bucket.s3.amazonaws.com/key?versionId=abc&x=1", ("bucket", "key", E1, "abc")),
    ("https://bucket.s3.amazonaws.com/what%3F.csv#frag", ("bucket", "what?.csv", E1, None)),
    ("https://bucket.s3.amazonaws.com/", ("bucket", "", E1, None)),
    ("https://bucket.s3.amazonaws.com", ("bucket", "", E1, None)),
    # path-style https
    ("https://s3.us-west-2.amazonaws.com/bucket/key", ("bucket", "key", W2, None)),
    ("https://s3.amazonaws.com/bucket/key", ("bucket", "key", E1, None)),
    ("https://s3-us-west-2.amazonaws.com/bucket/key", ("bucket", "key", W2, None)),
    ("https://s3.dualstack.us-west-2.amazonaws.com/bucket/key", ("bucket", "key", W2, None)),
    ("https://s3.us-west-2.amazonaws.com/my.bucket.name/a%2F", ("my.bucket.name", "a/", W2, None)),
    ("https://s3.cn-northwest-1.amazonaws.com.cn/bkt/k", ("bkt", "k", "cn-northwest-1", None)),
    ("http://s3.amazonaws.com/bucket/key?versionId=v2", ("bucket", "key", E1, "v2")),
    ("https://s3.amazonaws.com/bucket", ("bucket", "", E1, None)),
]


@pytest.mark.parametrize(("text", "expected"), VALID)
def test_parse_valid(text: str, expected: tuple[str, str, str | None, str | None]) -> None:
    uri = parse_s3_uri(text)
    assert (uri.bucket, uri.key, uri.region, uri.version_id) == expected


INVALID = [
    "",
    "   ",
    "s3:/bad",
    "s3:bucket/key",
    "s3//bucket/key",
    "gs://bucket/key",
    "ftp://host/file",
    "file:///tmp/x.csv",
    "bucket/key",
    "s3://",
    "s3:///key",
    "s3://ab/key",
    "s3://" + "ab-" * 21 + "a/key",
    "s3://My-Bucket/key",
    "s3://bucket_name/key",
    "s3://-bucket/key",
    "s3://bucket-/key",
    "s3://my..bucket/key",
    "s3://192.168.1.1/key",
    "s3://xn--bucket/key",
    "s3://bucket-s3alias/key",
    "s3://bucket--ol-s3/key",
    "s3://bucket:9000/key",
    "s3://bucket?versionId=v1",
    "https://example.com/bucket/key",
    "https://localhost:9000/bucket/key",
    "https://storage.googleapis.com/bucket/key",
    "https://ec2.us-west-2.amazonaws.com/bucket/key",
    "https://bucket.us-west-2.amazonaws.com/key",
    "https://s3.amazonaws.com/",
    "https://s3.amazonaws.com/UPPER/key",
]


@pytest.mark.parametrize("text", INVALID)
def test_parse_invalid(text: str) -> None:
    with pytest.raises(InvalidS3UriError) as caught:
        parse_s3_uri(text)
    message = str(caught.value)
    assert text in message
    assert "s3://" in message


def test_invalid_message_says_what_is_wrong() -> None:
    with pytest.raises(InvalidS3UriError, match="scheme gs:// is not supported"):
        parse_s3_uri("gs://bucket/key")
    with pytest.raises(InvalidS3UriError, match=r"must not contain '\.\.'"):
        parse_s3_uri("s3://a..b/key")
    with pytest.raises(InvalidS3UriError, match="not an AWS S3 endpoint"):
        parse_s3_uri("https://minio.local/bucket/key")


def test_invalid_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="must be followed by '://'"):
        parse_s3_uri("s3:/bad")


def test_invalid_message_hides_presigned_signature() -> None:
    text = "https://evil.example.com/b/k?X-Amz-Signature=deadbeefcafe1234"
    with pytest.raises(InvalidS3UriError) as caught:
        parse_s3_uri(text)
    assert "deadbeefcafe1234" not in str(caught.value)


@pytest.mark.parametrize("text", ["s3://bucket", "s3://bucket/", "https://s3.amazonaws.com/bucket"])
def test_require_key_rejects_bucket_only(text: str) -> None:
    assert parse_s3_uri(text).key == ""
    with pytest.raises(InvalidS3UriError, match="no object key"):
        parse_s3_uri(text, require_key=True)


def test_require_key_accepts_a_key() -> None:
    assert parse_s3_uri("s3://bucket/k", require_key=True).key == "k"


def test_non_string_input_is_an_invalid_uri() -> None:
    with pytest.raises(InvalidS3UriError):
        parse_s3_uri(None)  # type: ignore[arg-type]


def test_surrogates_are_an_invalid_uri() -> None:
    with pytest.raises(InvalidS3UriError, match="not valid Unicode"):
        parse_s3_uri("s3://bucket/\udc80")


def test_unpacking_and_str() -> None:
    bucket, key, region = parse_s3_uri("https://b-1.s3.eu-west-1.amazonaws.com/a%20b.csv")
    assert (bucket, key, region) == ("b-1", "a b.csv", "eu-west-1")
    assert str(S3Uri("b-1", "a b.csv", "eu-west-1")) == "s3://b-1/a b.csv"
    assert str(S3Uri("b-1", "k", version_id="v9")) == "s3://b-1/k?versionId=v9"
    assert str(S3Uri("b-1", "")) == "s3://b-1/"


def test_s3uri_is_frozen() -> None:
    uri = S3Uri("bucket", "key")
    with pytest.raises(AttributeError):
        uri.key = "other"  # type: ignore[misc]


def test_with_key_keeps_bucket_and_region_and_drops_version() -> None:
    uri = parse_s3_uri("s3://bucket.us-west-2.amazonaws.com/logs/*.csv?versionId=v1")
    assert uri.with_key("logs/a.csv") == S3Uri("bucket", "logs/a.csv", W2, None)


@pytest.mark.parametrize(
    ("key", "is_prefix", "is_glob", "list_prefix"),
    [
        ("", True, False, ""),
        ("logs/", True, False, "logs/"),
        ("logs/2024/data.csv", False, False, "logs/2024/data.csv"),
        ("logs/*.csv", False, True, "logs/"),
        ("logs/2024-*/part-*.csv", False, True, "logs/2024-"),
        ("logs/**/x.csv", False, True, "logs/"),
        ("logs/file?.csv", False, True, "logs/file"),
        ("logs/[ab].csv", False, True, "logs/"),
        ("logs/*/", False, True, "logs/"),
        ("*.csv", False, True, ""),
        ("a\\*b/*.csv", False, True, "a*b/"),
        ("a\\*b.csv", False, False, "a\\*b.csv"),
    ],
)
def test_prefix_and_glob_properties(
    key: str, is_prefix: bool, is_glob: bool, list_prefix: str
) -> None:
    uri = S3Uri("bucket", key)
    assert (uri.is_prefix, uri.is_glob, uri.list_prefix) == (is_prefix, is_glob, list_prefix)
    assert has_glob(key) is is_glob


@pytest.mark.parametrize(
    ("pattern", "key", "expected"),
    [
        ("logs/2024-*/part-*.csv", "logs/2024-01/part-0.csv", True),
        ("logs/2024-*/part-*.csv", "logs/2024-01/sub/part-0.csv", False),
        ("logs/2024-*/part-*.csv", "logs/2023-01/part-0.csv", False),
        ("*.csv", "a.csv", True),
        ("*.csv", "dir/a.csv", False),
        ("*.csv", "a.csv.gz", False),
        ("logs/**/x.csv", "logs/x.csv", True),
        ("logs/**/x.csv", "logs/a/x.csv", True),
        ("logs/**/x.csv", "logs/a/b/x.csv", True),
        ("logs/**/x.csv", "logs/a/b/y.csv", False),
        ("logs/**/x.csv", "other/x.csv", False),
        ("logs/**", "logs/a/b/c", True),
        ("logs/**", "logs/", True),
        ("**/*.parquet", "a/b/c.parquet", True),
        ("**/*.parquet", "c.parquet", True),
        ("**.csv", "a/b.csv", True),
        ("file?.csv", "file1.csv", True),
        ("file?.csv", "file10.csv", False),
        ("a?b", "a/b", False),
        ("part-[0-9].csv", "part-7.csv", True),
        ("part-[0-9].csv", "part-x.csv", False),
        ("part-[!0-9].csv", "part-x.csv", True),
        ("part-[!0-9].csv", "part-7.csv", False),
        ("part-[^0-9].csv", "part-x.csv", True),
        ("a[!x]b", "a/b", False),
        ("a[/]b", "a/b", False),
        ("[]]", "]", True),
        ("[!]]", "a", True),
        ("[[]", "[", True),
        ("[]", "[]", True),
        ("[!]", "[!]", True),
        ("[!]", "a", False),
        ("[+--]", ",", True),
        ("[a-]", "-", True),
        ("[a--]", "-", False),
        ("[z-a]x", "bx", False),
        ("[!z-a]x", "bx", True),
        ("[abc", "[abc", True),
        ("[", "[", True),
        ("a\\*b", "a*b", True),
        ("a\\*b", "axb", False),
        ("a\\", "a\\", True),
        ("a.b", "axb", False),
        ("(x)|+$^", "(x)|+$^", True),
        ("line*", "line1\nline2", True),
        ("", "", True),
    ],
)
def test_glob_match(pattern: str, key: str, expected: bool) -> None:
    assert glob_match(pattern, key) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("data/x.csv", True),
        ("/tmp/x", True),
        ("./x", True),
        ("x.csv", True),
        ("dir with space/x:y.csv", True),
        ("C:/data/x.csv", True),
        ("file:///tmp/x.csv", True),
        ("FILE:///tmp/x.csv", True),
        ("file:/tmp/x.csv", True),
        ("s3://bucket/key", False),
        ("s3a://bucket/key", False),
        ("https://bucket.s3.amazonaws.com/key", False),
        ("gs://bucket/key", False),
        ("s3:/bad", False),
        ("s3//bucket/key", False),
        ("http:/bad", False),
        ("s3:bucket/key", False),
        ("", False),
        ("  ", False),
    ],
)
def test_is_local(text: str, expected: bool) -> None:
    assert is_local(text) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("data/x.csv", Path("data/x.csv")),
        (" /tmp/x ", Path("/tmp/x")),
        ("file:///tmp/my%20file.csv", Path("/tmp/my file.csv")),
        ("file://localhost/tmp/x.csv", Path("/tmp/x.csv")),
        ("file:/tmp/x.csv", Path("/tmp/x.csv")),
    ],
)
def test_local_path(text: str, expected: Path) -> None:
    assert local_path(text) == expected


@pytest.mark.parametrize("text", ["s3://bucket/key", "s3:/bad", "file://otherhost/x.csv", ""])
def test_local_path_rejects_non_local(text: str) -> None:
    with pytest.raises(InvalidS3UriError):
        local_path(text)


# --- property tests ---------------------------------------------------------------------------

REGIONS = [
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "eu-west-1",
    "eu-central-1",
    "eu-north-1",
    "ap-southeast-1",
    "ap-northeast-1",
    "ap-south-1",
    "sa-east-1",
    "ca-central-1",
    "me-south-1",
    "af-south-1",
    "il-central-1",
    "us-gov-west-1",
    "cn-north-1",
    "cn-northwest-1",
]


def _aws_valid(name: str) -> bool:
    """AWS bucket rules beyond the character classes the strategies already respect."""
    return (
        3 <= len(name) <= 63
        and ".." not in name
        and not re.fullmatch(r"\d+\.\d+\.\d+\.\d+", name)
        and not name.startswith("xn--")
        and not name.endswith(("-s3alias", "--ol-s3"))
    )


plain_buckets = st.from_regex(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]", fullmatch=True).filter(_aws_valid)
_label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
dotted_buckets = st.lists(_label, min_size=2, max_size=5).map(".".join).filter(_aws_valid)
keys = st.text(min_size=1).filter(
    lambda k: (
        not k.startswith("/") and k == k.strip() and not re.search(r"\?versionId=[^?&/]+\Z", k)
    )
)
regions = st.sampled_from(REGIONS)


def _suffix(region: str) -> str:
    return "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"


@settings(max_examples=200, deadline=None)
@given(bucket=st.one_of(plain_buckets, dotted_buckets), key=keys)
def test_s3_forms_keep_the_key_literal(bucket: str, key: str) -> None:
    for scheme in ("s3", "s3a", "s3n"):
        uri = parse_s3_uri(f"{scheme}://{bucket}/{key}")
        assert tuple(uri) == (bucket, key, None)
        assert uri.version_id is None
    assert parse_s3_uri(f"s3://{bucket}/{key}?versionId=v1").version_id == "v1"


@settings(max_examples=200, deadline=None)
@given(bucket=plain_buckets, key=keys, region=regions)
def test_every_regional_form_round_trips(bucket: str, key: str, region: str) -> None:
    quoted, suffix = quote(key, safe="/"), _suffix(region)
    forms = [
        f"https://{bucket}.s3.{region}.{suffix}/{quoted}",
        f"http://{bucket}.s3-{region}.{suffix}/{quoted}",
        f"https://{bucket}.s3.dualstack.{region}.{suffix}/{quoted}",
        f"https://s3.{region}.{suffix}/{bucket}/{quoted}",
        f"https://s3-{region}.{suffix}/{bucket}/{quoted}",
        f"s3://{bucket}.{region}.{suffix}/{key}",
        f"s3://{bucket}.s3.{region}.{suffix}/{key}",
    ]
    if region == "us-east-1":
        forms += [
            f"https://{bucket}.s3.amazonaws.com/{quoted}",
            f"https://s3.amazonaws.com/{bucket}/{quoted}",
        ]
    for text in forms:
        assert tuple(parse_s3_uri(text)) == (bucket, key, region), text


@settings(max_examples=200, deadline=None)
@given(bucket=dotted_buckets, key=keys, region=regions)
def test_path_style_keeps_dotted_buckets(bucket: str, key: str, region: str) -> None:
    text = f"https://s3.{region}.{_suffix(region)}/{bucket}/{quote(key, safe='/')}"
    assert tuple(parse_s3_uri(text)) == (bucket, key, region)


_URI_START = st.sampled_from(
    ["", "s3://", "s3:/", "s3a://b", "https://", "http://s3.amazonaws.com/", "https://b.", "file:"]
)
_URI_CHARS = st.text(alphabet="s3:/.ab-?=*[]%#@~ \\versionIdamazonws.cn12", max_size=60)


@settings(max_examples=300, deadline=None)
@given(text=st.one_of(st.text(), st.builds(str.__add__, _URI_START, _URI_CHARS)))
def test_garbage_parses_or_raises_invalid_uri(text: str) -> None:
    try:
        uri = parse_s3_uri(text)
    except InvalidS3UriError:
        return
    assert isinstance(uri, S3Uri)
    assert uri.bucket


@settings(max_examples=300, deadline=None)
@given(
    pattern=st.text(alphabet="ab/*?[]!^-\\.", max_size=20),
    key=st.text(alphabet="ab/.-", max_size=20),
)
def test_glob_match_never_raises(pattern: str, key: str) -> None:
    assert glob_match(pattern, key) in (True, False)


def _reference_match(pattern: str, key: str) -> bool:
    """Slow, obviously correct matcher for globs made of literals, `?`, `*`, `**` and `**/`."""
    if not pattern:
        return not key
    if pattern.startswith("**/"):
        ends = [0] + [i + 1 for i, char in enumerate(key) if char == "/"]
        return any(_reference_match(pattern[3:], key[end:]) for end in ends)
    if pattern.startswith("**"):
        return any(_reference_match(pattern[2:], key[end:]) for end in range(len(key) + 1))
    if pattern[0] == "*":
        segment = len(key.split("/")[0])
        return any(_reference_match(pattern[1:], key[end:]) for end in range(segment + 1))
    if pattern[0] == "?":
        return key[:1] not in ("", "/") and _reference_match(pattern[1:], key[1:])
    return key[:1] == pattern[0] and _reference_match(pattern[1:], key[1:])


@settings(max_examples=300, deadline=None)
@given(
    pattern=st.text(alphabet="ab-/*?", max_size=12),
    key=st.text(alphabet="ab-/", max_size=12),
)
def test_glob_match_agrees_with_reference(pattern: str, key: str) -> None:
    assert glob_match(pattern, key) is _reference_match(pattern, key)


def test_many_stars_do_not_backtrack_exponentially() -> None:
    pattern, key = "*-" * 12 + "*.csv", "a-" * 60 + ".json"
    assert not glob_match(pattern, key)
    assert glob_match(pattern, "a-" * 60 + ".csv")


@settings(max_examples=200, deadline=None)
@given(key=st.text())
def test_escaped_key_matches_only_itself(key: str) -> None:
    pattern = re.sub(r"([*?\[\\])", r"\\\1", key)
    assert not has_glob(pattern)
    assert glob_match(pattern, key)
    assert not glob_match(pattern, key + "x")
