"""dreambolt.watch.events: an SQS message body (S3, SNS-wrapped, EventBridge, s3:TestEvent) →
object events, or PoisonMessage for what can never be parsed. Pure: no moto needed."""

from __future__ import annotations

import copy
import dataclasses
import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote_plus, unquote_plus

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dreambolt.watch.events import MAX_BODY_BYTES, Decoded, ObjectEvent, PoisonMessage, decode

# The "Example message when an object is created in the bucket" and the s3:TestEvent message of
# https://docs.aws.amazon.com/AmazonS3/latest/userguide/notification-content-structure.html
S3_PUT: dict[str, Any] = {
    "Records": [
        {
            "eventVersion": "2.1",
            "eventSource": "aws:s3",
            "awsRegion": "us-west-2",
            "eventTime": "1970-01-01T00:00:00.000Z",
            "eventName": "ObjectCreated:Put",
            "userIdentity": {"principalId": "AIDAJDPLRKLG7UEXAMPLE"},
            "requestParameters": {"sourceIPAddress": "127.0.0.1"},
            "responseElements": {
                "x-amz-request-id": "C3D13FE58DE4C810",
                "x-amz-id-2": "FMyUVURIY8/IgAtTv8xRjskZQpcIZ9KG4V5Wp6S7S/JRWeUWerMUE5JgHvANOjpD",
            },
            "s3": {
                "s3SchemaVersion": "1.0",
                "configurationId": "testConfigRule",
                "bucket": {
                    "name": "mybucket",
                    "ownerIdentity": {"principalId": "A3NL1KOZZKExample"},
                    "arn": "arn:aws:s3:::mybucket",
                },
                "object": {
                    "key": "HappyFace.jpg",
                    "size": 1024,
                    "eTag": "d41d8cd98f00b204e9800998ecf8427e",
                    "versionId": "096fKKXTRTtl3on89fVO.nfljtsv6qko",
                    "sequencer": "0055AED6DCD90281E5",
                },
            },
        }
    ]
}
TEST_EVENT = {
    "Service": "Amazon S3",
    "Event": "s3:TestEvent",
    "Time": "2014-10-13T15:57:02.089Z",
    "Bucket": "amzn-s3-demo-bucket",
    "RequestId": "5582815E1AEA5ADF",
    "HostId": "8cLeGAmw098X5cv4Zkwcmo8vvZa3eH3eKxsPzbB9wrR+YstdA6Knx4Ip8EXAMPLE",
}
HAPPY_FACE = ObjectEvent(
    bucket="mybucket",
    key="HappyFace.jpg",
    kind="created",
    name="ObjectCreated:Put",
    etag='"d41d8cd98f00b204e9800998ecf8427e"',
    size=1024,
    version_id="096fKKXTRTtl3on89fVO.nfljtsv6qko",
    sequencer="0055AED6DCD90281E5",
    event_time=datetime(1970, 1, 1, tzinfo=UTC),
)

# "Object created" of https://docs.aws.amazon.com/AmazonS3/latest/userguide/ev-events.html
EB_CREATED: dict[str, Any] = {
    "version": "0",
    "id": "17793124-05d4-b198-2fde-7ededc63b103",
    "detail-type": "Object Created",
    "source": "aws.s3",
    "account": "111122223333",
    "time": "2021-11-12T00:00:00Z",
    "region": "ca-central-1",
    "resources": ["arn:aws:s3:::amzn-s3-demo-bucket1"],
    "detail": {
        "version": "0",
        "bucket": {"name": "amzn-s3-demo-bucket1"},
        "object": {
            "key": "example-key",
            "size": 5,
            "etag": "b1946ac92492d2347c6235b4d2611184",
            "version-id": "IYV3p45BT0ac8hjHg1houSdS1a.Mro8e",
            "sequencer": "617f08299329d189",
        },
        "request-id": "N4N7GDK58NMKJ12R",
        "requester": "123456789012",
        "source-ip-address": "1.2.3.4",
        "reason": "PutObject",
    },
}
# Shaped like that page's "Object deleted (using DeleteObject)": no size, a deletion-type.
EB_DELETED: dict[str, Any] = {
    **EB_CREATED,
    "detail-type": "Object Deleted",
    "detail": {
        "version": "0",
        "bucket": {"name": "amzn-s3-demo-bucket1"},
        "object": {
            "key": "example-key",
            "etag": "d41d8cd98f00b204e9800998ecf8427e",
            "version-id": "1QW9g1Z99LUNbvaaYVpW9xDlOLU.qxgF",
            "sequencer": "617f0837b476e463",
        },
        "request-id": "0BH729840619AG5K",
        "requester": "123456789012",
        "source-ip-address": "1.2.3.4",
        "reason": "DeleteObject",
        "deletion-type": "Delete Marker Created",
    },
}


def sns(message: dict[str, Any] | str, type_: str = "Notification") -> dict[str, Any]:
    """An SNS envelope as SQS receives it without raw message delivery; fields as in
    https://docs.aws.amazon.com/sns/latest/dg/http-notification-json.html."""
    return {
        "Type": type_,
        "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
        "TopicArn": "arn:aws:sns:us-west-2:123456789012:MyTopic",
        "Subject": "Amazon S3 Notification",
        "Message": message if isinstance(message, str) else json.dumps(message),
        "Timestamp": "2012-05-02T00:54:06.655Z",
        "SignatureVersion": "1",
        "Signature": "EXAMPLEw6JRN...",
        "SigningCertURL": "https://sns.us-west-2.amazonaws.com/SimpleNotificationService-f3ecfb7224c7233fe7bb5f59f96de52f.pem",
        "UnsubscribeURL": "https://sns.us-west-2.amazonaws.com/?Action=Unsubscribe&SubscriptionArn=x",
    }


def record(key: str = "k", name: str = "ObjectCreated:Put", **obj: Any) -> dict[str, Any]:
    """One S3 → SQS record for bucket "b" with the key as S3 writes it (already encoded)."""
    return {
        "eventSource": "aws:s3",
        "eventName": name,
        "eventTime": "2024-05-06T07:08:09.123Z",
        "s3": {"bucket": {"name": "b"}, "object": {"key": key, **obj}},
    }


def body(*records: dict[str, Any]) -> str:
    return json.dumps({"Records": list(records)})


def eb(key: str, **obj: Any) -> str:
    doc = copy.deepcopy(EB_CREATED)
    doc["detail"]["object"] = {"key": key, **obj}
    return json.dumps(doc)


def poison(text: str) -> str:
    with pytest.raises(PoisonMessage) as caught:
        decode(text)
    return str(caught.value)


# --- the shapes ---------------------------------------------------------------------------


def test_s3_put_from_the_documentation() -> None:
    assert decode(json.dumps(S3_PUT)) == Decoded((HAPPY_FACE,))


def test_event_time_is_aware_utc() -> None:
    (event,) = decode(body(record())).events
    assert event.event_time == datetime(2024, 5, 6, 7, 8, 9, 123000, tzinfo=UTC)
    assert event.event_time.utcoffset() is not None
    offset = record()
    offset["eventTime"] = "2024-05-06T09:08:09+02:00"
    (event,) = decode(body(offset)).events
    assert event.event_time == datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
    assert event.event_time.tzinfo is UTC
    naive = record()
    naive["eventTime"] = "2024-05-06T07:08:09"  # taken as UTC
    assert decode(body(naive)).events[0].event_time == datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)


def test_test_event() -> None:
    assert decode(json.dumps(TEST_EVENT)) == Decoded((), test_event=True)


def test_sns_wrapped() -> None:
    assert decode(json.dumps(sns(S3_PUT))) == Decoded((HAPPY_FACE,))


def test_sns_wrapped_test_event() -> None:
    assert decode(json.dumps(sns(TEST_EVENT))) == Decoded((), test_event=True)


def test_eventbridge_from_the_documentation() -> None:
    assert decode(json.dumps(EB_CREATED)) == Decoded(
        (
            ObjectEvent(
                bucket="amzn-s3-demo-bucket1",
                key="example-key",
                kind="created",
                name="Object Created",
                etag='"b1946ac92492d2347c6235b4d2611184"',
                size=5,
                version_id="IYV3p45BT0ac8hjHg1houSdS1a.Mro8e",
                sequencer="617f08299329d189",
                event_time=datetime(2021, 11, 12, tzinfo=UTC),
            ),
        )
    )


def test_eventbridge_deleted() -> None:
    (event,) = decode(json.dumps(EB_DELETED)).events
    assert (event.kind, event.name, event.size) == ("removed", "Object Deleted", None)
    assert event.version_id == "1QW9g1Z99LUNbvaaYVpW9xDlOLU.qxgF"


@pytest.mark.parametrize(
    ("detail_type", "kind"),
    [
        ("Object Created", "created"),
        ("Object Deleted", "removed"),
        ("Object Restore Completed", "other"),
        ("Object Tags Added", "other"),
        ("Object Storage Class Changed", "other"),
    ],
)
def test_eventbridge_kinds(detail_type: str, kind: str) -> None:
    doc = {**EB_CREATED, "detail-type": detail_type}
    assert decode(json.dumps(doc)).events[0].kind == kind


def test_eventbridge_through_sns() -> None:
    assert decode(json.dumps(sns(EB_CREATED))) == decode(json.dumps(EB_CREATED))


@pytest.mark.parametrize("key", ["a+b", "a%2Bb", "a b", "dir%2Ffile", "caf%C3%A9", "%25", "café"])
def test_eventbridge_keys_are_verbatim(key: str) -> None:
    # EventBridge does not URL-encode keys (see the module docstring for the sources).
    assert decode(eb(key)).events[0].key == key


def test_eventbridge_etag_as_moto_spells_it() -> None:
    assert decode(eb("k", eTag="abc")).events[0].etag == '"abc"'


# --- keys ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoded", "key"),
    [
        ("HappyFace.jpg", "HappyFace.jpg"),
        ("red+flower.jpg", "red flower.jpg"),  # the documentation's example
        ("a+b", "a b"),
        ("a%2Bb", "a+b"),
        ("a%2bb", "a+b"),  # lower-case hex
        ("dir%2Ffile", "dir/file"),  # '/' encoded (aws/aws-sdk-js#837 saw test%2F10%3A47...)
        ("dir/file", "dir/file"),  # '/' as is (what S3 sends today, minio/minio#11665)
        ("caf%C3%A9", "café"),
        ("%E2%82%AC+%F0%9F%98%80", "€ 😀"),
        ("%25", "%"),
        ("100%25+done", "100% done"),
        ("dt%3D2018-05-04%2F_SUCCESS", "dt=2018-05-04/_SUCCESS"),
        ("a%0Ab", "a\nb"),  # a newline is a valid key character
        ("+", " "),
        ("%2B", "+"),
    ],
)
def test_key_decoding(encoded: str, key: str) -> None:
    assert decode(body(record(encoded))).events[0].key == key


def test_invalid_utf8_escape_is_poison() -> None:
    # unquote_plus would give U+FFFD, silently naming another object: S3 never writes this.
    assert unquote_plus("%FF") == "\ufffd"
    assert "not UTF-8" in poison(body(record("a%FFb")))
    assert "not UTF-8" in poison(body(record("caf%C3")))  # a truncated sequence
    assert "not UTF-8" in poison(body(record("%ED%A0%80")))  # an encoded surrogate


@pytest.mark.parametrize("encoded", ["%", "a%", "a%2", "%G1", "100%+done", "%%41"])
def test_malformed_escape_is_poison(encoded: str) -> None:
    assert "2 hex digits" in poison(body(record(encoded)))


def test_nul_in_key_is_poison() -> None:
    assert "NUL" in poison(body(record("a%00b")))
    assert "NUL" in poison(body(record("a\x00b")))
    assert "NUL" in poison(eb("a\x00b"))


def test_lone_surrogate_in_key_is_poison() -> None:
    assert "not valid Unicode" in poison(eb("a\ud800b"))
    assert "not valid Unicode" in poison(body(record("a\udfffb")))


def test_key_length() -> None:
    assert decode(body(record("é" * 512))).events[0].key == "é" * 512  # 1024 bytes: S3's limit
    assert decode(body(record("%C3%A9" * 512))).events[0].key == "é" * 512
    assert "1026 bytes" in poison(body(record("é" * 513)))
    assert "1025 bytes" in poison(eb("x" * 1025))


def test_empty_key_is_poison() -> None:
    assert "key is empty" in poison(body(record("")))
    assert "key is empty" in poison(eb(""))


# --- records, kinds and fields ------------------------------------------------------------


def test_several_records_in_order() -> None:
    names = [
        ("ObjectCreated:Put", "created"),
        ("ObjectRemoved:Delete", "removed"),
        ("ObjectCreated:CompleteMultipartUpload", "created"),
        ("ObjectRemoved:DeleteMarkerCreated", "removed"),
        ("LifecycleExpiration:Delete", "removed"),
        ("ObjectRestore:Completed", "other"),
        ("ObjectTagging:Put", "other"),
        ("LifecycleTransition", "other"),
        ("s3:ObjectCreated:Copy", "created"),
        ("ReducedRedundancyLostObject", "other"),
    ]
    decoded = decode(body(*(record(f"k{i}", name) for i, (name, _) in enumerate(names))))
    assert [(e.key, e.name, e.kind) for e in decoded.events] == [
        (f"k{i}", name, kind) for i, (name, kind) in enumerate(names)
    ]
    assert not decoded.test_event


def test_removed_event_has_no_size_or_etag() -> None:
    (event,) = decode(
        body(record("k", "ObjectRemoved:Delete", sequencer="0055AED6DCD90281E6"))
    ).events
    assert (event.size, event.etag, event.version_id) == (None, None, None)
    assert event.sequencer == "0055AED6DCD90281E6"


@pytest.mark.parametrize(
    ("given_etag", "etag"),
    [
        ("d41d8cd98f00b204e9800998ecf8427e", '"d41d8cd98f00b204e9800998ecf8427e"'),
        ("4af981f98d22a0b9979da24b259e5e42-12", '"4af981f98d22a0b9979da24b259e5e42-12"'),
        ('"abc"', '"abc"'),  # already as botocore writes it: kept
        ("", None),
        (None, None),
    ],
)
def test_etag_is_quoted_like_botocore(given_etag: str | None, etag: str | None) -> None:
    assert decode(body(record(eTag=given_etag))).events[0].etag == etag


def test_null_or_empty_optional_fields() -> None:
    (event,) = decode(body(record(versionId=None, sequencer="", size=None))).events
    assert (event.version_id, event.sequencer, event.size) == (None, None, None)
    no_time = record()
    del no_time["eventTime"]
    assert decode(body(no_time)).events[0].event_time is None


def test_size_zero_and_large() -> None:
    assert decode(body(record(size=0))).events[0].size == 0
    assert decode(body(record(size=5 * 2**40))).events[0].size == 5 * 2**40


def test_the_dataclasses_are_frozen_with_slots() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        HAPPY_FACE.key = "other"  # type: ignore[misc]
    assert not hasattr(HAPPY_FACE, "__dict__")
    assert not hasattr(Decoded(()), "__dict__")
    assert issubclass(PoisonMessage, ValueError)


# --- poison ------------------------------------------------------------------------------


def _with(path: tuple[str, ...], value: Any) -> str:
    doc = copy.deepcopy(S3_PUT)
    target = doc["Records"][0]
    for name in path[:-1]:
        target = target[name]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return json.dumps(doc)


_DELETE = object()


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "not JSON"),
        ("not json", "not JSON"),
        ('{"Records": [', "not JSON"),
        ("[]", "is an array, not a JSON object"),
        ("5", "is 5, not a JSON object"),
        ("null", "is null, not a JSON object"),
        ('"Records"', "not a JSON object"),
        ("{}", "keys: none"),
        ('{"foo": 1, "bar": 2}', "keys: 'foo', 'bar'"),
        ('{"Records": []}', "Records is empty"),
        ('{"Records": {}}', "Records is an object, not an array"),
        ('{"Records": "x"}', "Records is 'x', not an array"),
        ('{"Records": [5]}', "Records[0] is 5, not an object"),
        ('{"Records": [null]}', "Records[0] is missing"),
        (_with(("eventSource",), _DELETE), "Records[0].eventSource is null"),
        (_with(("eventSource",), "aws:sqs"), "eventSource is 'aws:sqs'"),
        (_with(("eventSource",), "minio:s3"), "eventSource is 'minio:s3'"),
        (_with(("eventName",), _DELETE), "Records[0].eventName is missing"),
        (_with(("eventName",), ""), "Records[0].eventName is empty"),
        (_with(("eventName",), 7), "Records[0].eventName is 7, not a string"),
        (_with(("s3",), _DELETE), "Records[0].s3 is missing"),
        (_with(("s3", "bucket"), _DELETE), "Records[0].s3.bucket is missing"),
        (_with(("s3", "bucket", "name"), _DELETE), "s3.bucket.name is missing"),
        (_with(("s3", "bucket", "name"), "a/b"), "'a/b' is not a bucket name"),
        (_with(("s3", "bucket", "name"), "bad\nname"), "'bad\\nname' is not a bucket name"),
        (_with(("s3", "object"), []), "s3.object is an array, not an object"),
        (_with(("s3", "object", "key"), _DELETE), "s3.object.key is missing"),
        (_with(("s3", "object", "key"), 42), "s3.object.key is 42, not a string"),
        (_with(("s3", "object", "key"), ["a"]), "s3.object.key is an array, not a string"),
        (_with(("s3", "object", "size"), "1024"), "size is '1024', not a byte count"),
        (_with(("s3", "object", "size"), -1), "size is -1, not a byte count"),
        (_with(("s3", "object", "size"), 1.5), "size is 1.5, not a byte count"),
        (_with(("s3", "object", "size"), 1024.0), "size is 1024.0, not a byte count"),
        (_with(("s3", "object", "size"), True), "size is True, not a byte count"),
        (_with(("s3", "object", "size"), float("nan")), "size is nan, not a byte count"),
        (_with(("s3", "object", "size"), float("inf")), "size is inf, not a byte count"),
        (_with(("s3", "object", "eTag"), 5), "s3.object.eTag is 5, not a string"),
        (_with(("s3", "object", "versionId"), {}), "versionId is an object, not a string"),
        (_with(("s3", "object", "sequencer"), 1), "sequencer is 1, not a string"),
        (_with(("eventTime",), "yesterday"), "'yesterday' is not an ISO 8601 time"),
        (_with(("eventTime",), 0), "eventTime is 0, not a string"),
    ],
)
def test_poison(text: str, says: str) -> None:
    assert says in poison(text)


def test_one_bad_record_poisons_the_message() -> None:
    assert "Records[2].s3.object.key" in poison(body(record("a"), record("b"), record("%FF")))


@pytest.mark.parametrize(
    ("doc", "says"),
    [
        ({**EB_CREATED, "source": "aws.ec2"}, "EventBridge source is 'aws.ec2'"),
        ({k: v for k, v in EB_CREATED.items() if k != "source"}, "source is null"),
        ({**EB_CREATED, "detail-type": ""}, "detail-type is empty"),
        ({**EB_CREATED, "detail": None}, "detail is missing"),
        ({**EB_CREATED, "detail": "{}"}, "detail is '{}', not an object"),
        ({**EB_CREATED, "detail": {"bucket": {"name": "b"}}}, "detail.object is missing"),
        ({**EB_CREATED, "time": "soon"}, "time 'soon' is not an ISO 8601 time"),
    ],
)
def test_eventbridge_poison(doc: dict[str, Any], says: str) -> None:
    assert says in poison(json.dumps(doc))


def test_eventbridge_field_poison() -> None:
    assert "detail.object.key is missing" in poison(eb("k").replace('"key": "k"', '"x": 1'))
    assert "detail.object.size is '5'" in poison(eb("k", size="5"))
    assert "detail.object.version-id is 3" in poison(eb("k", **{"version-id": 3}))


@pytest.mark.parametrize(
    ("doc", "says"),
    [
        (sns(S3_PUT, "SubscriptionConfirmation"), "Type 'SubscriptionConfirmation'"),
        (sns(S3_PUT, "UnsubscribeConfirmation"), "not a Notification"),
        ({**sns(S3_PUT), "Message": None}, "SNS.Message is missing"),
        ({**sns(S3_PUT), "Message": {"Records": []}}, "SNS.Message is an object, not a string"),
        (sns("not json"), "SNS Message is not JSON"),
        (sns("[1]"), "SNS Message is an array, not a JSON object"),
        (sns(json.dumps(sns(S3_PUT))), "an SNS message inside an SNS message"),
        (sns({"Records": []}), "Records is empty"),
    ],
)
def test_sns_poison(doc: dict[str, Any], says: str) -> None:
    assert says in poison(json.dumps(doc))


# --- hostile input ------------------------------------------------------------------------


def test_deep_nesting_is_poison() -> None:
    assert "nested too deeply" in poison("[" * 100_000 + "]" * 100_000)
    assert "nested too deeply" in poison(body(record(eTag=None)).replace("null", "[" * 50_000))
    inner = json.dumps(sns("[" * 100_000))
    assert "SNS Message is JSON nested too deeply" in poison(inner)


def test_body_size_limit() -> None:
    valid = body(record())
    exact = valid + " " * (MAX_BODY_BYTES - len(valid))
    assert len(exact.encode()) == MAX_BODY_BYTES
    assert decode(exact).events[0].key == "k"
    message = poison(exact + " ")
    assert f"over {MAX_BODY_BYTES} bytes" in message
    assert len(message) < 200
    # Fewer characters than the limit, more bytes: UTF-8 is what SQS counts.
    wide = valid + " " * (MAX_BODY_BYTES - len(valid) - 10) + "é" * 10
    assert len(wide) == MAX_BODY_BYTES and len(wide.encode()) > MAX_BODY_BYTES
    assert "over" in poison(wide)
    assert "over" in poison("x" * (10 * MAX_BODY_BYTES))


def test_huge_integer_is_poison() -> None:
    assert "not JSON" in poison(body(record()).replace('"k"}', '"k", "size": ' + "9" * 5000 + "}"))


def test_poison_messages_are_short_and_escaped() -> None:
    long_junk = "\x1b[31m" + "A" * 100_000
    cases = [
        long_junk,  # not JSON
        body(record("%ZZ" + long_junk)),
        body(record("%FF" + "B" * 100_000)),
        json.dumps({long_junk: 1}),
        _with(("s3", "bucket", "name"), long_junk),
        _with(("eventSource",), long_junk),
        _with(("eventTime",), long_junk),
        _with(("s3", "object", "size"), long_junk),
        json.dumps(sns(long_junk)),
        json.dumps(sns(S3_PUT, long_junk)),
        json.dumps({**EB_CREATED, "source": long_junk}),
    ]
    for text in cases:
        message = poison(text)
        assert len(message) < 300, message
        assert (
            "\x1b" not in message and "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" not in message
        )


def test_json_nan_and_numbers_as_strings() -> None:
    assert "size is nan" in poison(body(record()).replace('"k"}', '"k", "size": NaN}'))
    assert "size is '1024'" in poison(body(record(size="1024")))


# --- properties ---------------------------------------------------------------------------

# Any text S3 could store as a key: no NUL (refused here), no lone surrogates (not UTF-8).
_KEYS = st.text(
    st.characters(codec="utf-8", exclude_characters="\x00"),
    min_size=1,
    max_size=200,
)


@settings(max_examples=300, deadline=None)
@given(key=_KEYS, safe=st.sampled_from(["/", ""]))
def test_form_encoded_keys_round_trip(key: str, safe: str) -> None:
    # S3 writes keys form-encoded (' ' as '+', '+' as %2B, UTF-8 escapes); '/' has been seen both
    # as is (today) and as %2F: either decodes back to the key.
    assert decode(body(record(quote_plus(key, safe=safe)))).events[0].key == key


@settings(max_examples=200, deadline=None)
@given(key=_KEYS)
def test_eventbridge_keys_round_trip_verbatim(key: str) -> None:
    assert decode(eb(key)).events[0].key == key
    assert decode(json.dumps(sns(json.loads(eb(key))))).events[0].key == key


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
_PATHS = [
    ("eventSource",),
    ("eventName",),
    ("eventTime",),
    ("s3",),
    ("s3", "bucket"),
    ("s3", "bucket", "name"),
    ("s3", "object"),
    ("s3", "object", "key"),
    ("s3", "object", "size"),
    ("s3", "object", "eTag"),
    ("s3", "object", "versionId"),
    ("s3", "object", "sequencer"),
]


@settings(max_examples=300, deadline=None)
@given(path=st.sampled_from(_PATHS), value=_JSON)
def test_any_field_value_decodes_or_is_poison(path: tuple[str, ...], value: Any) -> None:
    try:
        decoded = decode(_with(path, value))
    except PoisonMessage:
        return
    (event,) = decoded.events
    assert isinstance(event.key, str) and event.key
    assert event.size is None or (type(event.size) is int and event.size >= 0)


@settings(max_examples=300, deadline=None)
@given(
    text=st.one_of(st.text(), _JSON.map(json.dumps), st.binary().map(lambda b: b.decode("latin-1")))
)
def test_anything_decodes_or_is_poison(text: str) -> None:
    try:
        decoded = decode(text)
    except PoisonMessage as e:
        assert len(str(e)) < 300
    else:
        assert isinstance(decoded, Decoded)
