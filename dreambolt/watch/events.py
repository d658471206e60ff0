"""Decode an SQS message body into the S3 object events it carries (pure: no I/O, no boto).

Shapes: S3 → SQS (`{"Records": [...]}`, also SNS raw delivery); that in an SNS Notification's
`Message`; EventBridge (directly or through SNS); `s3:TestEvent` → `Decoded((), test_event=True)`.

Keys come back as S3 stores them. S3 → SQS/SNS keys are form-encoded ("red flower.jpg" arrives
as "red+flower.jpg", '+' as %2B, UTF-8 as escapes, '/' mostly as is; AWS docs: userguide/
notification-content-structure.html). EventBridge keys are NOT encoded and are taken verbatim:
AWS's sample aws-solutions-library-samples/guidance-for-medialake-on-aws (PR #21, tested through
EventBridge with keys such as "%2B%20%%%.png", "test+b.png": "EventBridge delivers the object
key un-encoded") and other consumers say so; userguide/ev-events.html only shows "example-key".
(Powertools' S3EventBridgeNotificationObject.key applies unquote_plus: the dissenting source.)

ETags come back quoted like botocore's HeadObject/ListObjectsV2 `ETag` ('"abc"') for the caller
to compare; events carry them bare, so quotes are added (a quoted one is kept). An empty ETag,
version id or sequencer is None. Removals, restores, tagging… parse as "removed"/"other".
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import unquote_plus

__all__ = ["MAX_BODY_BYTES", "Decoded", "Kind", "ObjectEvent", "PoisonMessage", "decode"]

# S3's notifications are a few KiB; 256 KiB was SQS's limit until 2026 (1 MiB now): refused.
MAX_BODY_BYTES = 256 * 1024

Kind = Literal["created", "removed", "other"]
# eventName's part before ':' (after the "s3:" configurations write), or EventBridge detail-type.
_KINDS: dict[str, Kind] = {"ObjectCreated": "created", "Object Created": "created"}
_KINDS |= dict.fromkeys(("ObjectRemoved", "LifecycleExpiration", "Object Deleted"), "removed")
_BUCKET = re.compile(r"[A-Za-z0-9._-]{1,255}")  # legacy us-east-1 names allow '_' and capitals
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_NAMES = {dict: "an object", list: "an array", type(None): "null"}


@dataclass(frozen=True, slots=True)
class ObjectEvent:
    """One object event: which object, what happened, and what the event says it was."""

    bucket: str
    key: str  # decoded, as S3 stores it
    kind: Kind
    name: str  # the event's own name, e.g. "ObjectCreated:Put", "Object Created"
    etag: str | None = None  # quoted, as botocore returns ETag: '"d41d8cd98f00b204e98..."'
    size: int | None = None
    version_id: str | None = None
    sequencer: str | None = None
    event_time: datetime | None = None  # timezone-aware UTC


@dataclass(frozen=True, slots=True)
class Decoded:
    """The events of one message, in order; `test_event` for S3's s3:TestEvent (no events)."""

    events: tuple[ObjectEvent, ...]
    test_event: bool = False


class PoisonMessage(ValueError):
    """A message that can never be parsed (goes to the dead-letter queue)."""


def decode(body: str) -> Decoded:
    """The object events in an SQS message body, or `PoisonMessage` if it can never be parsed:
    over `MAX_BODY_BYTES`, not JSON, too deep, not an object; `Records` empty or not a list; an
    eventSource not aws:s3 (EventBridge: source not aws.s3); a missing or mistyped bucket, key,
    name or field (size: a JSON integer ≥ 0, not "1024"); a key with a bad escape, non-UTF-8
    escapes ("%FF"), a NUL or over 1024 bytes; an SNS message that is not a Notification (e.g.
    SubscriptionConfirmation). One bad record poisons the whole message."""
    if len(body) > MAX_BODY_BYTES or len(body.encode("utf-8", "surrogatepass")) > MAX_BODY_BYTES:
        raise PoisonMessage(f"body is over {MAX_BODY_BYTES} bytes; starts {_excerpt(body)}")
    return _document(_load(body, "body"), wrapped=False)


def _load(text: str, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(text)
    except RecursionError:
        raise PoisonMessage(f"{what} is JSON nested too deeply") from None
    except ValueError as e:  # JSONDecodeError, or an integer too long to convert
        raise PoisonMessage(f"{what} is not JSON ({str(e)[:60]}): {_excerpt(text)}") from None
    if not isinstance(doc, dict):
        raise PoisonMessage(f"{what} is {_describe(doc)}, not a JSON object")
    return doc


def _document(doc: dict[str, Any], *, wrapped: bool) -> Decoded:
    if "Records" in doc:
        return Decoded(_s3_records(doc["Records"]))
    if doc.get("Event") == "s3:TestEvent":
        return Decoded((), test_event=True)
    if "TopicArn" in doc and "Type" in doc:
        if wrapped:
            raise PoisonMessage("an SNS message inside an SNS message")
        return _document(_sns_message(doc), wrapped=True)
    if "detail-type" in doc:
        return Decoded((_eventbridge(doc),))
    keys = ", ".join(_excerpt(k, 20) for k in list(doc)[:5]) or "none"
    raise PoisonMessage(f"not an S3, SNS or EventBridge S3 event (keys: {keys})")


def _sns_message(doc: dict[str, Any]) -> dict[str, Any]:
    if doc["Type"] != "Notification":  # e.g. a SubscriptionConfirmation nobody confirmed
        raise PoisonMessage(f"SNS message of Type {_excerpt(doc['Type'])}, not a Notification")
    return _load(_need(doc, "Message", "SNS"), "SNS Message")


def _s3_records(records: object) -> tuple[ObjectEvent, ...]:
    if not isinstance(records, list):
        raise PoisonMessage(f"Records is {_describe(records)}, not an array")
    if not records:
        raise PoisonMessage("Records is empty")
    return tuple(_s3_record(record, f"Records[{i}]") for i, record in enumerate(records))


def _s3_record(value: object, where: str) -> ObjectEvent:
    record = _object(value, where)
    if record.get("eventSource") != "aws:s3":
        raise PoisonMessage(f"{where}.eventSource is {_describe(record.get('eventSource'))}")
    name = _need(record, "eventName", where)
    s3 = _object(record.get("s3"), f"{where}.s3")
    at = f"{where}.s3.object"
    obj = _object(s3.get("object"), at)
    return ObjectEvent(
        bucket=_bucket(s3.get("bucket"), f"{where}.s3.bucket"),
        key=_form_decoded(_need(obj, "key", at), f"{at}.key"),
        kind=_KINDS.get(name.removeprefix("s3:").partition(":")[0], "other"),
        name=name,
        etag=_etag(_str(obj, "eTag", at)),
        size=_size(obj.get("size"), f"{at}.size"),
        version_id=_str(obj, "versionId", at),
        sequencer=_str(obj, "sequencer", at),
        event_time=_time(_str(record, "eventTime", where), f"{where}.eventTime"),
    )


def _eventbridge(doc: dict[str, Any]) -> ObjectEvent:
    if doc.get("source") != "aws.s3":
        raise PoisonMessage(f"EventBridge source is {_describe(doc.get('source'))}, not 'aws.s3'")
    name = _need(doc, "detail-type", "EventBridge")
    detail = _object(doc.get("detail"), "detail")
    obj = _object(detail.get("object"), "detail.object")
    return ObjectEvent(
        bucket=_bucket(detail.get("bucket"), "detail.bucket"),
        key=_checked_key(_need(obj, "key", "detail.object"), "detail.object.key"),
        kind=_KINDS.get(name, "other"),
        name=name,
        etag=_etag(_str(obj, "etag" if "etag" in obj else "eTag", "detail.object")),  # moto: eTag
        size=_size(obj.get("size"), "detail.object.size"),
        version_id=_str(obj, "version-id", "detail.object"),
        sequencer=_str(obj, "sequencer", "detail.object"),
        event_time=_time(_str(doc, "time", "EventBridge"), "time"),
    )


def _bucket(value: object, where: str) -> str:
    name = _need(_object(value, where), "name", where)
    if not _BUCKET.fullmatch(name):
        raise PoisonMessage(f"{where}.name {_excerpt(name)} is not a bucket name")
    return name


def _form_decoded(raw: str, where: str) -> str:
    """A key as S3 writes it in SQS/SNS events (form encoding) → the key S3 stores."""
    if _BAD_ESCAPE.search(raw):
        raise PoisonMessage(f"{where} {_excerpt(raw)} has a '%' not followed by 2 hex digits")
    try:
        key = unquote_plus(raw, errors="strict")
    except UnicodeDecodeError:
        raise PoisonMessage(f"{where} {_excerpt(raw)} has escapes that are not UTF-8") from None
    return _checked_key(key, where)


def _checked_key(key: str, where: str) -> str:
    if "\x00" in key:
        raise PoisonMessage(f"{where} {_excerpt(key)} has a NUL character")
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:
        raise PoisonMessage(f"{where} {_excerpt(key)} is not valid Unicode") from None
    if size > 1024:  # S3's limit on a key's UTF-8 length
        raise PoisonMessage(f"{where} is {size} bytes, over S3's limit of 1024")
    return key


def _etag(value: str | None) -> str | None:
    if value is None or (len(value) >= 2 and value[0] == value[-1] == '"'):
        return value
    return f'"{value}"'


def _size(value: object, where: str) -> int | None:
    if value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
        return value
    raise PoisonMessage(f"{where} is {_describe(value)}, not a byte count")


def _time(value: str | None, where: str) -> datetime | None:
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise PoisonMessage(f"{where} {_excerpt(value)} is not an ISO 8601 time") from None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(UTC)


def _object(value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        what = "missing" if value is None else f"{_describe(value)}, not an object"
        raise PoisonMessage(f"{where} is {what}")
    return value


def _str(obj: dict[str, Any], name: str, where: str) -> str | None:
    """`obj[name]` if a string; absent, null or "" is None."""
    value = obj.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise PoisonMessage(f"{where}.{name} is {_describe(value)}, not a string")
    return value


def _need(obj: dict[str, Any], name: str, where: str) -> str:
    """`obj[name]`, a string that must be there and not empty."""
    value = _str(obj, name, where)
    if value is None:
        raise PoisonMessage(f"{where}.{name} is {'empty' if obj.get(name) == '' else 'missing'}")
    return value


def _describe(value: object) -> str:
    """What a field holds: 'an object', 'an array', 'null' or an excerpt ('1024', 5, True)."""
    return _NAMES.get(type(value)) or _excerpt(value)


def _excerpt(value: object, limit: int = 40) -> str:
    """A short, escaped excerpt (repr) of a value: never the whole of a long string."""
    if isinstance(value, str):
        return repr(value[:limit]) + ("…" if len(value) > limit else "")
    text = repr(value)
    return text[:limit] + ("…" if len(text) > limit else "")
