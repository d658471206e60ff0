"""Listing big prefixes in parallel (`dreambolt.s3.listing`), against moto through the fault
proxy, which counts the LIST requests and how many were in flight at once."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from faultproxy import FaultProxy, RecordedRequest

from dreambolt import S3Client
from dreambolt.s3 import listing

BIG = 1100  # more than one page (1,000 keys)


def put_all(s3: Any, bucket: str, keys: list[str]) -> None:
    def put(key: str) -> None:
        s3.put_object(Bucket=bucket, Key=key, Body=b"" if key.endswith("/") else b"x")

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(put, keys))


@pytest.fixture(scope="module")
def tree(moto: Any) -> Iterator[tuple[str, list[str]]]:
    """A bucket with a big folder, small nested ones, keys at the top and a folder marker."""
    s3 = moto.client("s3")
    bucket = "listing-tree"
    s3.create_bucket(Bucket=bucket)
    keys = [f"big/a/{i:04}.csv" for i in range(BIG)]
    keys += [f"big/b/{sub}/{i}.csv" for sub in "xy" for i in range(10)]
    keys += [f"big/top-{i}.csv" for i in range(3)]
    keys += [f"flat/{i:04}.csv" for i in range(BIG)]
    put_all(s3, bucket, [*keys, "big/c/"])  # big/c/: an empty folder marker, not data
    yield bucket, sorted(keys)
    s3.close()


class InFlight:
    """Counts the LIST requests in flight at the proxy (each held 0.2 s)."""

    def __init__(self) -> None:
        self.now = self.most = 0
        self.lock = threading.Lock()

    def __call__(self, _: RecordedRequest) -> None:
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)
        time.sleep(0.2)
        with self.lock:
            self.now -= 1


def lists(proxy: FaultProxy) -> list[str]:
    """The query strings of the LIST requests the proxy saw."""
    return [r.query for r in proxy.requests if r.method == "GET" and "list-type=2" in r.query]


async def keys_of(proxy: FaultProxy, uri: str) -> list[str]:
    async with S3Client(endpoint_url=proxy.endpoint_url) as client:
        return [info.uri.key async for info in client.list(uri)]


async def test_a_big_prefix_is_split_into_its_folders_listed_at_once(
    proxy: FaultProxy, tree: tuple[str, list[str]]
) -> None:
    bucket, keys = tree
    held = InFlight()
    proxy.add_rule("call", method="GET", query=r"list-type=2", fn=held)
    got = await keys_of(proxy, f"s3://{bucket}/big/")
    assert got == [k for k in keys if k.startswith("big/")]  # sorted, each once, no marker
    queries = lists(proxy)
    delimited = [q for q in queries if "delimiter=" in q]
    # the first page of big/, then big/ by folder; a/ is big too (its first page, then split:
    # no sub-folders, 2 pages); b/ and c/ one page each
    assert len(queries) == 7 and len(delimited) == 3, queries
    assert held.most >= 3  # a/, b/ and c/ were listed at the same time


async def test_a_small_prefix_is_one_request_and_a_flat_big_one_pages_through(
    proxy: FaultProxy, tree: tuple[str, list[str]]
) -> None:
    bucket, keys = tree
    assert await keys_of(proxy, f"s3://{bucket}/big/b/") == [k for k in keys if "/b/" in k]
    assert len(lists(proxy)) == 1
    proxy.reset()
    assert await keys_of(proxy, f"s3://{bucket}/flat/") == [k for k in keys if k[:5] == "flat/"]
    assert len(lists(proxy)) == 3  # one page, then a delimited listing of 2 pages: no folders


async def test_globs_and_plain_keys_keep_their_meaning_when_split(
    proxy: FaultProxy, tree: tuple[str, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket, keys = tree
    expected = [k for k in keys if k.startswith("big/") and k.endswith("1.csv")]
    assert await keys_of(proxy, f"s3://{bucket}/big/**1.csv") == expected
    assert any("delimiter=" in q for q in lists(proxy))
    # a plain key means itself and what is under it as a folder: `big` lists big/…, not bigger
    assert await keys_of(proxy, f"s3://{bucket}/big") == [k for k in keys if k[:4] == "big/"]
    monkeypatch.setattr(listing, "SPLIT_DEPTH", 0)  # never split: the same keys, page by page
    proxy.reset()
    assert await keys_of(proxy, f"s3://{bucket}/big/") == [k for k in keys if k[:4] == "big/"]
    assert not any("delimiter=" in q for q in lists(proxy))
