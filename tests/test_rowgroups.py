"""Parquet read row group by row group while it downloads: against the moto server (through
the fault proxy), checked against what pyarrow reads from the whole file."""

from __future__ import annotations

import asyncio
import io
import itertools
import random
import re
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from faultproxy import FaultProxy
from motoserver import MotoServer

from dreambolt import Ingester, S3Options
from dreambolt.errors import FormatError, S3IntegrityError, S3ObjectChangedError
from dreambolt.formats.columnar import read_arrow
from dreambolt.formats.limits import DEFAULT_LIMITS
from dreambolt.rowgroups import TAIL_BYTES, open_parquet, plan_units
from dreambolt.s3.client import S3Client
from dreambolt.s3.objects import ObjectInfo

PART = 64 << 10  # small parts, so a file of a few MiB is many ranges and row groups


def _table(rows: int, seed: int = 0) -> pa.Table:
    ids = pa.array(range(seed, seed + rows), pa.int64())
    return pa.table(
        {
            "id": ids,
            "name": pa.array([f"name-{i % 977}-{i * 7919 % 100003}" for i in range(rows)]),
            "score": pa.array([i / 7 for i in range(rows)], pa.float64()),
            "tags": pa.array([[f"t{i % 5}"] * (i % 3) for i in range(rows)]),
            "flag": pa.array([i % 3 == 0 if i % 11 else None for i in range(rows)]),
        }
    )


def _parquet(table: pa.Table, **options: Any) -> bytes:
    out = io.BytesIO()
    pq.write_table(table, out, **options)
    return out.getvalue()


def _options(endpoint: str) -> S3Options:
    return S3Options(endpoint_url=endpoint, part_size=PART, max_retries=3, backoff_factor=0.01)


def _ranged_gets(proxy: FaultProxy, key: str) -> list[str]:
    return [
        next(v for k, v in r.headers.items() if k.lower() == "range")
        for r in proxy.requests
        if r.method == "GET" and r.path.endswith(key) and r.has_range
    ]


# --- the plan ------------------------------------------------------------------------------


def test_plan_covers_every_byte_once_with_all_columns() -> None:
    data = _parquet(_table(50_000), row_group_size=5_000)
    meta = pq.read_metadata(pa.BufferReader(data))
    held_from = len(data) - 20_000
    units = plan_units(meta, None, held_from=held_from, part=PART)
    spans = sorted(span for unit in units for span in unit.spans)
    assert spans[0][0] == 0 and spans[-1][1] == held_from - 1
    assert len(spans) == 10  # a block per row group
    assert all(b[0] == a[1] + 1 for a, b in itertools.pairwise(spans))
    assert sorted(g for unit in units for g in unit.groups) == list(range(10))


def test_plan_with_columns_fetches_only_their_chunks() -> None:
    data = _parquet(_table(50_000), row_group_size=25_000)
    meta = pq.read_metadata(pa.BufferReader(data))
    units = plan_units(meta, ["score"], held_from=len(data), part=1 << 30)
    fetched = sum(unit.cost for unit in units)
    chunks = sum(
        meta.row_group(g).column(2).total_compressed_size for g in range(meta.num_row_groups)
    )
    assert fetched == chunks < len(data) // 3


def test_small_row_groups_are_fetched_together() -> None:
    data = _parquet(_table(20_000), row_group_size=100)  # 200 row groups of a few KB
    meta = pq.read_metadata(pa.BufferReader(data))
    units = plan_units(meta, None, held_from=len(data), part=PART)
    assert len(units) < meta.num_row_groups // 4
    assert [g for unit in units for g in unit.groups] == list(range(meta.num_row_groups))


# --- through a real S3 ---------------------------------------------------------------------


async def _load(endpoint: str, uri: str, **kwargs: Any) -> pl.DataFrame:
    async with Ingester(s3=_options(endpoint)) as ing:
        return await ing.load(uri, **kwargs)


@pytest.mark.parametrize("compression", ["snappy", "zstd", "none"])
def test_load_streams_row_groups_and_reads_what_pyarrow_reads(
    s3: Any, bucket: str, proxy: FaultProxy, compression: str
) -> None:
    table = _table(120_000)
    data = _parquet(table, row_group_size=13_000, compression=compression)
    assert len(data) > TAIL_BYTES * 2
    s3.put_object(Bucket=bucket, Key="t.parquet", Body=data)
    frame = asyncio.run(_load(proxy.endpoint_url, f"s3://{bucket}/t.parquet"))
    assert frame.equals(pl.from_arrow(table))
    ranges = _ranged_gets(proxy, "t.parquet")
    assert ranges[0] == f"bytes={len(data) - TAIL_BYTES}-{len(data) - 1}"
    assert len(ranges) > 5  # the row groups came as ranges, not one GET


def test_columns_fetch_less_and_keep_the_order_asked(
    s3: Any, bucket: str, proxy: FaultProxy
) -> None:
    table = _table(200_000)
    data = _parquet(table, row_group_size=20_000)
    assert len(data) > TAIL_BYTES * 2
    s3.put_object(Bucket=bucket, Key="c.parquet", Body=data)
    uri = f"s3://{bucket}/c.parquet"
    frame = asyncio.run(_load(proxy.endpoint_url, uri, columns=["score", "id"]))
    assert frame.columns == ["score", "id"]
    assert frame.equals(pl.from_arrow(table.select(["score", "id"])))
    sizes = [
        int(span.split("-")[1]) - int(span.split("=")[1].split("-")[0]) + 1
        for span in _ranged_gets(proxy, "c.parquet")
    ]
    assert sum(sizes) < len(data) * 3 // 4


def test_missing_column_names_the_file_and_the_columns(
    s3: Any, bucket: str, proxy: FaultProxy
) -> None:
    data = _parquet(_table(100_000), row_group_size=10_000)
    s3.put_object(Bucket=bucket, Key="m.parquet", Body=data)
    with pytest.raises(FormatError, match=r"m\.parquet.*no column 'nope'.*'id'"):
        asyncio.run(_load(proxy.endpoint_url, f"s3://{bucket}/m.parquet", columns=["nope"]))


def test_a_footer_bigger_than_the_first_guess_is_fetched_whole(
    s3: Any, bucket: str, proxy: FaultProxy
) -> None:
    table = _table(30_000).replace_schema_metadata({"big": "x" * (TAIL_BYTES + 12345)})
    data = _parquet(table, row_group_size=3_000)
    s3.put_object(Bucket=bucket, Key="f.parquet", Body=data)
    frame = asyncio.run(_load(proxy.endpoint_url, f"s3://{bucket}/f.parquet"))
    assert frame.equals(pl.from_arrow(table))


def test_cut_ranges_are_fetched_again(s3: Any, bucket: str, proxy: FaultProxy) -> None:
    table = _table(80_000)
    data = _parquet(table, row_group_size=8_000)
    s3.put_object(Bucket=bucket, Key="r.parquet", Body=data)
    rule = proxy.add_rule("cut", method="GET", path=r"/r\.parquet$", has_range=True, times=3)
    rule.cut_after = 1000
    frame = asyncio.run(_load(proxy.endpoint_url, f"s3://{bucket}/r.parquet"))
    assert rule.fired == 3
    assert frame.equals(pl.from_arrow(table))


def test_an_overwrite_while_reading_is_an_error_not_a_mix(
    s3: Any, bucket: str, proxy: FaultProxy
) -> None:
    data = _parquet(_table(80_000), row_group_size=8_000)
    s3.put_object(Bucket=bucket, Key="o.parquet", Body=data)
    other = _parquet(_table(80_000, seed=1), row_group_size=8_000)
    seen: list[str] = []

    def overwrite(request: Any) -> None:
        seen.append(request.path)
        if len(seen) == 1:  # after the tail: the object changes under the reader
            s3.put_object(Bucket=bucket, Key="o.parquet", Body=other)

    proxy.add_rule("call", method="GET", path=r"/o\.parquet$", has_range=True, fn=overwrite)
    with pytest.raises(S3ObjectChangedError, match=r"o\.parquet"):
        asyncio.run(_load(proxy.endpoint_url, f"s3://{bucket}/o.parquet"))


def test_a_wrong_full_checksum_is_an_integrity_error(
    moto: MotoServer, s3: Any, bucket: str
) -> None:
    data = _parquet(_table(60_000), row_group_size=6_000)
    s3.put_object(Bucket=bucket, Key="k.parquet", Body=data, ChecksumAlgorithm="CRC32")
    head = s3.head_object(Bucket=bucket, Key="k.parquet", ChecksumMode="ENABLED")

    uri = f"s3://{bucket}/k.parquet"

    def read(checksum: tuple[str, str]) -> list[pl.DataFrame]:
        return asyncio.run(
            _stream_frames(moto.endpoint_url, uri, readahead=1 << 20, checksum=checksum)
        )

    assert head["ChecksumCRC32"]
    frames = read(("CRC32", head["ChecksumCRC32"]))
    assert pl.concat(frames).height == 60_000
    with pytest.raises(S3IntegrityError, match="CRC32"):
        read(("CRC32", "AAAAAA=="))


def test_a_corrupt_footer_is_a_format_error(s3: Any, bucket: str, proxy: FaultProxy) -> None:
    data = bytearray(_parquet(_table(50_000), row_group_size=5_000))
    footer = int.from_bytes(data[-8:-4], "little")
    data[-8 - footer : -8 - footer + 40] = b"\xff" * 40
    s3.put_object(Bucket=bucket, Key="bad.parquet", Body=bytes(data))
    with pytest.raises(FormatError, match=r"bad\.parquet"):
        asyncio.run(_load(proxy.endpoint_url, f"s3://{bucket}/bad.parquet"))


def test_not_parquet_inside_is_read_as_what_it_is(s3: Any, bucket: str, proxy: FaultProxy) -> None:
    text = "a,b\n" + "".join(f"{i},{i * 2}\n" for i in range(40_000))
    s3.put_object(Bucket=bucket, Key="lies.parquet", Body=text.encode())
    with pytest.raises(FormatError, match=r"lies\.parquet"):
        asyncio.run(_load(proxy.endpoint_url, f"s3://{bucket}/lies.parquet"))


def test_ingest_streams_into_duckdb_and_a_failed_range_lands_nothing(
    s3: Any, bucket: str, proxy: FaultProxy, tmp_path: Path
) -> None:
    good = _table(90_000)
    s3.put_object(Bucket=bucket, Key="in/a.parquet", Body=_parquet(good, row_group_size=9_000))
    s3.put_object(
        Bucket=bucket, Key="in/b.parquet", Body=_parquet(_table(90_000), row_group_size=9_000)
    )
    # b's ranges past the first few fail for good: after some of its row groups were decoded
    calls: list[int] = []

    def count(_: Any) -> None:
        calls.append(1)

    proxy.add_rule("call", method="GET", path=r"/in/b\.parquet$", has_range=True, fn=count, times=6)
    proxy.add_rule(
        "error", method="GET", path=r"/in/b\.parquet$", has_range=True, code="AccessDenied"
    )
    db = tmp_path / "t.duckdb"

    async def run() -> Any:
        async with Ingester(db=str(db), s3=_options(proxy.endpoint_url)) as ing:
            return await ing.ingest([f"s3://{bucket}/in/"], table="t")

    report = asyncio.run(run())
    status = {Path(f.uri).name: f.status for f in report.files}
    assert status == {"a.parquet": "loaded", "b.parquet": "skipped"}
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute("SELECT count(*), count(DISTINCT _source_uri) FROM t").fetchone()
        ids = [row[0] for row in con.execute("SELECT id FROM t ORDER BY id").fetchall()]
    assert rows == (90_000, 1)
    assert ids == good["id"].to_pylist()
    assert len(calls) == 6  # b's tail and first ranges came through, then every range failed


async def _stream_frames(
    endpoint: str, uri: str, *, readahead: int, checksum: tuple[str, str] | None = None
) -> list[pl.DataFrame]:
    async with S3Client(endpoint_url=endpoint, part_size=PART) as client:
        info = await client.head(uri)
        if checksum is not None:
            info = ObjectInfo(info.uri, info.size, info.etag, checksum=checksum)
        stream = await open_parquet(
            client.calls, info, columns=None, readahead=readahead, progress=lambda n: None
        )
        assert stream is not None
        return await asyncio.to_thread(lambda: list(stream.frames(DEFAULT_LIMITS)))


def test_many_small_row_groups_through_a_small_window(
    moto: MotoServer, s3: Any, bucket: str
) -> None:
    table = _table(100_000)
    data = _parquet(table, row_group_size=400)  # 250 row groups, fetched a few at a time
    s3.put_object(Bucket=bucket, Key="s.parquet", Body=data, ChecksumAlgorithm="CRC32")
    frames = asyncio.run(
        _stream_frames(moto.endpoint_url, f"s3://{bucket}/s.parquet", readahead=PART)
    )
    assert pl.concat(frames).equals(pl.from_arrow(table))


def test_no_row_groups_behind_a_big_footer_is_one_empty_frame(
    moto: MotoServer, s3: Any, bucket: str
) -> None:
    table = _table(0).replace_schema_metadata({"big": "y" * (3 * TAIL_BYTES)})
    data = _parquet(table)
    s3.put_object(Bucket=bucket, Key="e.parquet", Body=data, ChecksumAlgorithm="CRC32")
    head = s3.head_object(Bucket=bucket, Key="e.parquet", ChecksumMode="ENABLED")
    uri = f"s3://{bucket}/e.parquet"
    checksum = ("CRC32", head["ChecksumCRC32"])
    frames = asyncio.run(_stream_frames(moto.endpoint_url, uri, readahead=PART, checksum=checksum))
    assert [f.height for f in frames] == [0] and frames[0].columns == table.column_names


def _mutants(data: bytes, count: int) -> list[bytes]:
    """Deterministic corruptions: bytes flipped in the pages and in the footer, lengths and
    offsets made wrong."""
    rng = random.Random(1234)
    footer = int.from_bytes(data[-8:-4], "little")
    out = []
    for n in range(count):
        mutant = bytearray(data)
        lo = len(data) - 8 - footer if n % 2 else 4
        hi = len(data) - 8 if n % 2 else len(data) - 8 - footer
        for _ in range(1 + n % 4):
            mutant[rng.randrange(lo, hi)] = rng.randrange(256)
        out.append(bytes(mutant))
    return out


def test_corrupt_files_are_read_as_a_whole_read_reads_them_or_refused(
    moto: MotoServer, s3: Any, bucket: str
) -> None:
    """Each mutant streamed gives what reading it whole gives, or a FormatError where that
    fails: never a hang, a crash or another error."""
    data = _parquet(_table(60_000), row_group_size=6_000, compression="snappy")
    mutants = _mutants(data, 30)
    for n, mutant in enumerate(mutants):
        s3.put_object(Bucket=bucket, Key=f"mut/{n}.parquet", Body=mutant)

    async def stream(client: S3Client, key: str) -> pl.DataFrame:
        info = await client.head(f"s3://{bucket}/{key}")
        opened = await open_parquet(
            client.calls, info, columns=None, readahead=PART, progress=lambda n: None
        )
        assert opened is not None
        return pl.concat(await asyncio.to_thread(lambda: list(opened.frames(DEFAULT_LIMITS))))

    async def check_all() -> None:
        async with S3Client(endpoint_url=moto.endpoint_url, part_size=4 * PART) as client:
            for n, mutant in enumerate(mutants):
                key = f"mut/{n}.parquet"
                try:
                    expected: pl.DataFrame | None = read_arrow(mutant, "parquet", DEFAULT_LIMITS)
                except Exception:
                    expected = None
                if expected is None:
                    with pytest.raises(FormatError, match=re.escape(key)):
                        await stream(client, key)
                else:
                    assert (await stream(client, key)).equals(expected), key

    asyncio.run(check_all())
