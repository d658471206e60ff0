"""scripts/bench_server.py, driven over HTTP by boto3, polars and raw requests."""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import polars as pl
import pytest
from botocore.client import Config
from botocore.exceptions import ClientError
from motoserver import untraced

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench_server.py"
MANY = [f"many/{i % 7}/{i:05d}.txt" for i in range(2500)]


class Server:
    """A bench_server subprocess on a free port, serving root."""

    def __init__(self, root: Path, *flags: str) -> None:
        self.root = root
        port_file = root.parent / f"{root.name}.port"
        args = [sys.executable, str(SCRIPT), "--root", str(root), "--port", "0"]
        args += ["--port-file", str(port_file), *flags]
        self.process = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, env=untraced(dict(os.environ))
        )
        deadline = time.monotonic() + 15
        while not port_file.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("bench_server did not start")
            time.sleep(0.02)
        self.port = int(port_file.read_text())
        self.endpoint = f"http://127.0.0.1:{self.port}"

    def client(self) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id="x",
            aws_secret_access_key="y",
            config=Config(s3={"addressing_style": "path"}, retries={"total_max_attempts": 1}),
        )

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.terminate()
        return self.process.wait(timeout=10)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("bench") / "root"
    for key in MANY:  # written straight into the root, as the benchmark does
        path = root / "listing" / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    running = Server(root)
    yield running
    assert running.stop() == 0  # SIGTERM shuts down cleanly


@pytest.fixture(scope="module")
def s3(server: Server) -> Iterator[Any]:
    client = server.client()
    client.create_bucket(Bucket="data")
    yield client
    client.close()


@pytest.fixture(scope="module")
def slow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("slow") / "root"
    (root / "b").mkdir(parents=True)
    (root / "b" / "small").write_bytes(b"abc")
    (root / "b" / "four").write_bytes(b"\0" * (4 << 20))
    running = Server(root, "--ttfb-ms", "50", "--conn-mibps", "20")
    yield running
    assert running.stop() == 0


def test_buckets(s3: Any) -> None:
    names = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert names == ["data", "listing"]
    head = s3.head_bucket(Bucket="data")
    assert head["ResponseMetadata"]["HTTPHeaders"]["x-amz-bucket-region"] == "us-east-1"
    assert s3.get_bucket_location(Bucket="data")["LocationConstraint"] is None
    with pytest.raises(ClientError) as caught:
        s3.head_bucket(Bucket="missing")
    assert caught.value.response["Error"]["Code"] == "404"
    with pytest.raises(s3.exceptions.NoSuchBucket):
        s3.get_object(Bucket="missing", Key="k")


def test_put_head_get(s3: Any) -> None:
    body = bytes(range(256)) * 40
    etag = s3.put_object(Bucket="data", Key="dir/a b+c é.bin", Body=body)["ETag"]
    head = s3.head_object(Bucket="data", Key="dir/a b+c é.bin")
    assert (head["ContentLength"], head["ETag"], head["AcceptRanges"]) == (len(body), etag, "bytes")
    assert head["LastModified"].year >= 2024
    assert s3.get_object(Bucket="data", Key="dir/a b+c é.bin")["Body"].read() == body


@pytest.mark.parametrize(
    ("range_", "start", "stop", "content_range"),
    [
        ("bytes=10-19", 10, 20, "bytes 10-19/10240"),
        ("bytes=10200-", 10200, 10240, "bytes 10200-10239/10240"),
        ("bytes=-5", 10235, 10240, "bytes 10235-10239/10240"),
        ("bytes=10230-99999", 10230, 10240, "bytes 10230-10239/10240"),
    ],
)
def test_ranges(s3: Any, range_: str, start: int, stop: int, content_range: str) -> None:
    body = bytes(range(256)) * 40
    s3.put_object(Bucket="data", Key="ranged", Body=body)
    got = s3.get_object(Bucket="data", Key="ranged", Range=range_)
    assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert got["ContentRange"] == content_range
    assert got["Body"].read() == body[start:stop]


def test_errors(s3: Any) -> None:
    etag = s3.put_object(Bucket="data", Key="cond", Body=b"v1")["ETag"]
    assert s3.get_object(Bucket="data", Key="cond", IfMatch=etag)["Body"].read() == b"v1"
    with pytest.raises(ClientError) as caught:
        s3.get_object(Bucket="data", Key="cond", IfMatch='"stale"')
    assert caught.value.response["Error"]["Code"] == "PreconditionFailed"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    with pytest.raises(ClientError) as caught:
        s3.get_object(Bucket="data", Key="cond", IfNoneMatch=etag)
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 304
    with pytest.raises(ClientError) as caught:
        s3.get_object(Bucket="data", Key="cond", Range="bytes=5-")
    assert caught.value.response["Error"]["Code"] == "InvalidRange"
    with pytest.raises(s3.exceptions.NoSuchKey):
        s3.get_object(Bucket="data", Key="missing")
    with pytest.raises(ClientError) as caught:
        s3.head_object(Bucket="data", Key="missing")
    assert caught.value.response["Error"]["Code"] == "404"
    s3.delete_object(Bucket="data", Key="cond")
    with pytest.raises(s3.exceptions.NoSuchKey):
        s3.get_object(Bucket="data", Key="cond")


def test_list_paginates_in_order(s3: Any) -> None:
    pages = list(s3.get_paginator("list_objects_v2").paginate(Bucket="listing"))
    assert len(pages) == 3
    keys = [o["Key"] for page in pages for o in page["Contents"]]
    assert keys == sorted(MANY)
    first = pages[0]["Contents"][0]
    assert (first["Size"], first["StorageClass"]) == (1, "STANDARD")
    assert first["ETag"].startswith('"')
    assert first["LastModified"].year >= 2024
    v1 = s3.get_paginator("list_objects").paginate(Bucket="listing", Prefix="many/3/")
    assert [o["Key"] for p in v1 for o in p["Contents"]] == sorted(k for k in MANY if "/3/" in k)


def test_list_with_delimiter(s3: Any) -> None:
    top = s3.list_objects_v2(Bucket="listing", Prefix="many/", Delimiter="/")
    expected = [f"many/{i}/" for i in range(7)]
    assert [p["Prefix"] for p in top["CommonPrefixes"]] == expected
    assert "Contents" not in top
    assert top["KeyCount"] == 7
    pages = s3.get_paginator("list_objects_v2").paginate(
        Bucket="listing", Delimiter="/", Prefix="many/", PaginationConfig={"PageSize": 2}
    )
    assert [p["Prefix"] for page in pages for p in page["CommonPrefixes"]] == expected
    s3.put_object(Bucket="data", Key="x/new", Body=b"")  # a PUT shows up in the next listing
    assert [p["Prefix"] for p in s3.list_objects(Bucket="data", Delimiter="/")["CommonPrefixes"]]
    assert "x/new" in [o["Key"] for o in s3.list_objects_v2(Bucket="data")["Contents"]]


def test_folder_markers_store_nothing(s3: Any) -> None:
    s3.put_object(Bucket="data", Key="marker/", Body=b"")
    with pytest.raises(ClientError) as caught:
        s3.head_object(Bucket="data", Key="marker/")
    assert caught.value.response["Error"]["Code"] == "404"
    s3.delete_object(Bucket="data", Key="marker/")


def test_aws_chunked_put(server: Server, s3: Any) -> None:
    framed = b"5;chunk-signature=ab\r\nhello\r\n6;chunk-signature=cd\r\n world\r\n"
    framed += b"0;chunk-signature=ef\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n"
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    headers = {"x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"}
    headers |= {"Content-Encoding": "aws-chunked", "x-amz-decoded-content-length": "11"}
    connection.request("PUT", "/data/chunked", body=framed, headers=headers)
    response = connection.getresponse()
    response.read()
    connection.close()
    assert response.status == 200
    assert s3.get_object(Bucket="data", Key="chunked")["Body"].read() == b"hello world"


def test_polars_reads_parquet(server: Server) -> None:
    frame = pl.DataFrame({"n": range(1000), "s": [str(i) for i in range(1000)]})
    frame.write_parquet(server.root / "listing" / "file.parquet")
    options = {
        "aws_endpoint_url": server.endpoint,
        "aws_allow_http": "true",
        "aws_access_key_id": "x",
        "aws_secret_access_key": "y",
        "aws_region": "us-east-1",
    }
    assert pl.read_parquet("s3://listing/file.parquet", storage_options=options).equals(frame)
    lazy = pl.scan_parquet("s3://listing/*.parquet", storage_options=options)
    assert lazy.select(pl.len()).collect().item() == 1000


def test_ttfb_delays_each_response(slow: Server) -> None:
    client = slow.client()
    started = time.perf_counter()
    assert client.get_object(Bucket="b", Key="small")["Body"].read() == b"abc"
    assert time.perf_counter() - started >= 0.05
    client.close()


def test_bandwidth_cap_paces_body(slow: Server) -> None:
    client = slow.client()
    started = time.perf_counter()
    assert len(client.get_object(Bucket="b", Key="four")["Body"].read()) == 4 << 20
    assert time.perf_counter() - started >= 0.15
    client.close()
