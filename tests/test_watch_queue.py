"""`dreambolt watch --queue`: S3 event notifications that moto sends to SQS, read by the service
as a subprocess: every row once, messages deleted only after their commit, poison messages to
the dead-letter queue, a slow object not handed out twice, a crash after commit."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
from faultproxy import FaultProxy, RecordedRequest
from motoserver import MotoServer
from watchservice import WAIT_S, Service, put

ACCOUNT = "123456789012"
LOADED = 'dreambolt_watch_files_total{status="loaded"}'
UNCHANGED = 'dreambolt_watch_files_total{status="unchanged"}'
DELETED = "dreambolt_watch_messages_deleted_total"


class Queues:
    def __init__(self, sqs: Any, name: str, *, visibility: int = 30, dlq: bool = True) -> None:
        self.sqs = sqs
        attributes = {"VisibilityTimeout": str(visibility)}
        self.dlq_url: str | None = None
        if dlq:
            self.dlq_url = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
            arn = f"arn:aws:sqs:us-east-1:{ACCOUNT}:{name}-dlq"
            policy = {"deadLetterTargetArn": arn, "maxReceiveCount": "5"}
            attributes["RedrivePolicy"] = json.dumps(policy)
        self.url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        self.arn = f"arn:aws:sqs:us-east-1:{ACCOUNT}:{name}"

    def count(self, url: str | None = None) -> int:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=url or self.url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return sum(int(v) for v in attributes.values())


def notify(s3: Any, bucket: str, queues: Queues) -> None:
    """Send the bucket's object-created events to the queue; drop the s3:TestEvent S3 sends
    when notifications are set up (the tests count messages)."""
    s3.put_bucket_notification_configuration(
        Bucket=bucket,
        NotificationConfiguration={
            "QueueConfigurations": [{"QueueArn": queues.arn, "Events": ["s3:ObjectCreated:*"]}]
        },
    )
    queues.sqs.purge_queue(QueueUrl=queues.url)


@pytest.fixture
def queues(moto: MotoServer, s3: Any, bucket: str) -> Iterator[Queues]:
    sqs = moto.client("sqs")
    found = Queues(sqs, f"q-{bucket}")
    notify(s3, bucket, found)
    yield found
    sqs.close()


def started(service: Service) -> bool:
    """Ready, and the listing at start is done (so that what follows arrives as events)."""
    ready = service.get("/readyz")[0] == 200
    return ready and service.metric("dreambolt_watch_polls_total") >= 1


def watch_args(db: Path, bucket: str, queue: str, endpoint: str) -> list[str]:
    return [
        f"s3://{bucket}/in/",
        "--db",
        str(db),
        "--table",
        "t",
        "--queue",
        queue,
        "--endpoint-url",
        endpoint,
        "--include",
        "*.csv",
    ]


def start(services: list[Service], args: list[str]) -> Service:
    """A `dreambolt watch` service, ready and past its first listing."""
    service = Service(args)
    services.append(service)
    service.wait_for(lambda: started(service), "ready, the first listing done")
    return service


def via_proxy(
    moto: MotoServer, proxy: FaultProxy, queues: Queues, db: Path, bucket: str
) -> list[str]:
    """The watch arguments with S3 and SQS both reached through the fault proxy."""
    queue_url = queues.url.replace(moto.endpoint_url, proxy.endpoint_url)
    return watch_args(db, bucket, queue_url, proxy.endpoint_url)


def rows(db: Path) -> list[tuple[int, str]]:
    with duckdb.connect(str(db), read_only=True) as con:
        found = con.execute("SELECT id, _source_uri FROM t ORDER BY id").fetchall()
    return [(int(i), str(u)) for i, u in found]


def test_put_overwrite_duplicates_and_multipart_load_every_row_once(
    moto: MotoServer,
    s3: Any,
    bucket: str,
    queues: Queues,
    tmp_path: Path,
    services: list[Service],
) -> None:
    db = tmp_path / "w.duckdb"
    service = start(services, watch_args(db, bucket, queues.url, moto.endpoint_url))
    put(s3, bucket, "in/a.csv", range(0, 3))
    put(s3, bucket, "in/b.csv", range(10, 13))
    put(s3, bucket, "in/skip.txt", range(1))  # filtered out by --include: deleted, not loaded
    service.wait_for(lambda: service.metric(LOADED) == 2, "a and b")
    put(s3, bucket, "in/a.csv", range(100, 102))  # overwrite: replaces a's rows
    put(s3, bucket, "in/b.csv", range(10, 13))  # identical overwrite: unchanged
    # a duplicated message (S3 delivers at least once) and an old one after the newer
    first = {"Records": [_record(bucket, "in/a.csv")]}
    queues.sqs.send_message(QueueUrl=queues.url, MessageBody=json.dumps(first))
    test_event = {"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": bucket}
    queues.sqs.send_message(QueueUrl=queues.url, MessageBody=json.dumps(test_event))
    _multipart(s3, bucket, "in/c.csv", range(20, 23))
    service.wait_for(lambda: service.metric(LOADED) == 4, "the overwrite and c")
    service.wait_for(lambda: queues.count() == 0, "every message deleted")
    assert service.metric(UNCHANGED) >= 2
    assert service.metric("dreambolt_watch_messages_received_total") >= 7
    assert service.metric(DELETED) == service.metric("dreambolt_watch_messages_received_total")
    assert service.stop() == 0
    assert [i for i, _ in rows(db)] == [10, 11, 12, 20, 21, 22, 100, 101]


def _record(bucket: str, key: str) -> dict[str, Any]:
    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "eventName": "ObjectCreated:Put",
        "eventTime": "2020-01-01T00:00:00.000Z",
        "s3": {"bucket": {"name": bucket}, "object": {"key": key, "size": 1, "eTag": "00"}},
    }


def _multipart(s3: Any, bucket: str, key: str, ids: range) -> None:
    body = ("id,v\n" + "".join(f"{i},x\n" for i in ids)).encode()
    upload = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    part = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload, PartNumber=1, Body=body)
    s3.complete_multipart_upload(
        Bucket=bucket,
        Key=key,
        UploadId=upload,
        MultipartUpload={"Parts": [{"ETag": part["ETag"], "PartNumber": 1}]},
    )


def test_poison_to_the_dead_letter_queue_and_an_unreadable_object_is_failed_and_deleted(
    moto: MotoServer,
    s3: Any,
    bucket: str,
    queues: Queues,
    tmp_path: Path,
    services: list[Service],
) -> None:
    db = tmp_path / "w.duckdb"
    service = start(services, watch_args(db, bucket, queues.url, moto.endpoint_url))
    queues.sqs.send_message(QueueUrl=queues.url, MessageBody="{not json")
    s3.put_object(Bucket=bucket, Key="in/bad.csv", Body=b"id,v\n1,2,3,4\n\x00\xff")
    put(s3, bucket, "in/good.csv", range(3))
    service.wait_for(lambda: service.metric(LOADED) == 1, "good")
    service.wait_for(lambda: queues.count() == 0, "the queue emptied")
    assert queues.dlq_url is not None and queues.count(queues.dlq_url) == 1
    dead = queues.sqs.receive_message(QueueUrl=queues.dlq_url)["Messages"][0]
    assert dead["Body"] == "{not json"
    assert service.metric("dreambolt_watch_messages_dead_lettered_total") == 1
    assert service.metric('dreambolt_watch_files_total{status="skipped"}') == 1
    assert service.stop() == 0
    with duckdb.connect(str(db), read_only=True) as con:
        ledger = con.execute(
            "SELECT uri, status FROM _dreambolt_loads WHERE uri LIKE '%bad.csv'"
        ).fetchall()
    assert ledger == [(f"s3://{bucket}/in/bad.csv", "skipped")]


def test_a_slow_object_is_not_received_twice(
    moto: MotoServer,
    proxy: FaultProxy,
    s3: Any,
    bucket: str,
    tmp_path: Path,
    services: list[Service],
) -> None:
    sqs = moto.client("sqs")
    queues = Queues(sqs, f"slow-{bucket}", visibility=3)
    notify(s3, bucket, queues)
    proxy.add_rule("delay", method="GET", path=r"/in/slow\.csv$", delay=8)  # > visibility
    db = tmp_path / "w.duckdb"
    service = start(services, via_proxy(moto, proxy, queues, db, bucket))
    put(s3, bucket, "in/slow.csv", range(5))
    service.wait_for(lambda: service.metric(LOADED) == 1, "the slow object")
    service.wait_for(lambda: queues.count() == 0, "its message deleted")
    assert service.metric("dreambolt_watch_messages_received_total") == 1  # not twice
    assert service.metric(DELETED) == 1
    assert service.metric("dreambolt_watch_visibility_extensions_total") >= 1
    assert service.stop() == 0
    sqs.close()


def test_a_crash_after_commit_before_delete_ends_unchanged_and_deleted(
    moto: MotoServer,
    proxy: FaultProxy,
    s3: Any,
    bucket: str,
    queues: Queues,
    tmp_path: Path,
    services: list[Service],
) -> None:
    queues.sqs.set_queue_attributes(QueueUrl=queues.url, Attributes={"VisibilityTimeout": "2"})

    def hang_deletes(request: RecordedRequest) -> None:  # SQS's JSON protocol names the call
        target = {k.lower(): v for k, v in request.headers.items()}.get("x-amz-target", "")
        if target.endswith(".DeleteMessage"):
            time.sleep(30)  # the process is killed meanwhile: the message is never deleted

    proxy.add_rule("call", method="POST", fn=hang_deletes)
    db = tmp_path / "w.duckdb"
    first = start(services, via_proxy(moto, proxy, queues, db, bucket))
    put(s3, bucket, "in/a.csv", range(3))
    first.wait_for(lambda: first.metric(LOADED) == 1, "loaded (its delete now hangs)")
    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait(timeout=WAIT_S)
    proxy.reset()
    second = Service(watch_args(db, bucket, queues.url, moto.endpoint_url))
    services.append(second)
    second.wait_for(lambda: second.metric(UNCHANGED) >= 1, "the redelivered message")
    second.wait_for(lambda: queues.count() == 0, "deleted")
    assert second.metric(LOADED) == 0
    assert second.stop() == 0
    assert [i for i, _ in rows(db)] == [0, 1, 2]


def test_keys_that_look_like_globs_and_objects_gone_since_their_event(
    moto: MotoServer,
    s3: Any,
    bucket: str,
    queues: Queues,
    tmp_path: Path,
    services: list[Service],
) -> None:
    db = tmp_path / "w.duckdb"
    service = start(services, watch_args(db, bucket, queues.url, moto.endpoint_url))
    put(s3, bucket, "in/data1.csv", range(3))  # what the glob `data[1].csv` would match
    service.wait_for(lambda: service.metric(LOADED) == 1, "data1")
    put(s3, bucket, "in/data[1] + more.csv", range(10, 12))  # the key itself, encoded in events
    put(s3, bucket, "in/what?#x%41.csv", range(30, 32))  # URI-looking characters, kept as is
    gone = {"Records": [_record(bucket, "in/gone.csv")]}  # an object deleted since its event
    queues.sqs.send_message(QueueUrl=queues.url, MessageBody=json.dumps(gone))
    service.wait_for(lambda: queues.count() == 0, "every message deleted")
    assert service.metric('dreambolt_watch_files_total{status="skipped"}') == 0
    assert service.stop() == 0
    names = {u.rsplit("/", 1)[1] for _, u in rows(db)}
    assert names == {"data1.csv", "data[1] + more.csv", "what?#x%41.csv"}
    assert [i for i, u in rows(db) if u.endswith("more.csv")] == [10, 11]
    assert [i for i, u in rows(db) if u.endswith("data1.csv")] == [0, 1, 2]  # not reloaded


def test_a_transient_failure_gives_the_message_back_and_it_loads_later(
    moto: MotoServer,
    proxy: FaultProxy,
    s3: Any,
    bucket: str,
    queues: Queues,
    tmp_path: Path,
    services: list[Service],
) -> None:
    db = tmp_path / "w.duckdb"
    args = via_proxy(moto, proxy, queues, db, bucket)
    service = start(services, [*args, "--max-retries", "0"])
    proxy.add_rule("slowdown", method="GET", path=r"/in/a\.csv$", times=1)  # S3 throttles once
    put(s3, bucket, "in/a.csv", range(3))
    service.wait_for(lambda: service.metric("dreambolt_watch_messages_returned_total") == 1, "back")
    service.wait_for(lambda: service.metric(LOADED) == 1, "loaded on the next delivery")
    service.wait_for(lambda: queues.count() == 0, "deleted")
    assert service.metric('dreambolt_watch_files_total{status="failed"}') == 1
    assert service.stop() == 0
    assert [i for i, _ in rows(db)] == [0, 1, 2]


def test_sigterm_mid_load_gives_the_message_back_at_once(
    moto: MotoServer,
    proxy: FaultProxy,
    s3: Any,
    bucket: str,
    queues: Queues,
    tmp_path: Path,
    services: list[Service],
) -> None:
    db = tmp_path / "w.duckdb"
    args = via_proxy(moto, proxy, queues, db, bucket)
    first = start(services, [*args, "--drain-timeout", "0.5s"])
    proxy.add_rule("delay", method="GET", path=r"/in/a\.csv$", delay=20, times=1)
    put(s3, bucket, "in/a.csv", range(3))
    first.wait_for(lambda: proxy.count("GET", path=r"/in/a\.csv$") >= 1, "the load begins")
    assert first.stop() == 130  # the drain ran out: the message went back, not deleted
    second = Service(watch_args(db, bucket, queues.url, moto.endpoint_url))
    services.append(second)
    second.wait_for(lambda: second.metric(LOADED) == 1, "received again, and loaded")
    second.wait_for(lambda: queues.count() == 0, "deleted")
    assert second.stop() == 0
    assert [i for i, _ in rows(db)] == [0, 1, 2]


def test_without_a_dead_letter_queue_a_warning_at_start_and_poison_is_logged_and_deleted(
    moto: MotoServer, s3: Any, bucket: str, tmp_path: Path, services: list[Service]
) -> None:
    sqs = moto.client("sqs")
    queues = Queues(sqs, f"nodlq-{bucket}", dlq=False)
    notify(s3, bucket, queues)
    service = start(
        services, watch_args(tmp_path / "w.duckdb", bucket, queues.url, moto.endpoint_url)
    )
    sqs.send_message(QueueUrl=queues.url, MessageBody='{"Records": [{"eventSource": "x"}]}')
    service.wait_for(lambda: queues.count() == 0, "the poison message deleted")
    assert service.metric("dreambolt_watch_messages_dead_lettered_total") == 1
    assert service.stop() == 0
    log = "".join(service.stderr)
    assert "has no redrive policy" in log
    assert "can never be parsed, deleted (no dead-letter queue)" in log
    sqs.close()


def test_a_queue_that_cannot_be_used_stops_the_service_with_exit_3(
    moto: MotoServer, bucket: str, tmp_path: Path
) -> None:
    missing = f"{moto.endpoint_url}/{ACCOUNT}/no-such-queue"
    args = watch_args(tmp_path / "w.duckdb", bucket, missing, moto.endpoint_url)
    done = subprocess.run(
        [sys.executable, "-m", "dreambolt", "watch", *args, "--max-retries", "0"],
        capture_output=True,
        text=True,
        timeout=WAIT_S,
        check=False,
    )
    assert done.returncode == 3, done.stderr
    assert f"cannot use the SQS queue {missing}" in done.stderr
    assert "Traceback" not in done.stderr
