"""`load()` of many small objects: the grouped path of an ingest, with the result of parsing
each file alone, and the presigned GETs it makes signed without botocore once checked.

Real moto over HTTP; the expected frames are each object's bytes parsed alone
(`formats.read.read_bytes`) and concatenated as `load()` always concatenated them.
"""

from __future__ import annotations

import asyncio
import gzip
import io
import os
from typing import Any
from urllib.parse import urlsplit

import polars as pl
import pytest
from aiobotocore.config import AioConfig
from motoserver import MotoServer
from polars.testing import assert_frame_equal

import dreambolt.load
from dreambolt.errors import FormatError, S3NotFoundError
from dreambolt.fetch import Failed, Fetched
from dreambolt.formats.read import HEAD_BYTES, ParseLimits, detect_format, read_bytes
from dreambolt.ingest import Ingester
from dreambolt.s3.options import S3Options
from dreambolt.s3.presigned import EXPIRES, PresignedGets, _form, _Signer
from dreambolt.s3.session import new_session


def _options(moto: MotoServer) -> S3Options:
    return S3Options(endpoint_url=moto.endpoint_url, backoff_factor=0.01, max_backoff=0.05)


def _objects(count: int = 60) -> dict[str, bytes]:
    """Small CSVs of a few shapes: shared headers, other headers, quotes, types that differ
    by file (an all-integer `score`, an empty one), gzip, and a Parquet file between them."""
    objects: dict[str, bytes] = {}
    for i in range(count):
        rows = "".join(f"{i * 10 + r},n{r}-{i},{r * 0.5 + i}\n" for r in range(1 + i % 7))
        body = f"id,name,score\n{rows}"
        if i % 11 == 3:
            body = f'id,name,score\n{i},"quoted, {i}",1.5\n'
        elif i % 13 == 5:
            body = f"id,name,score\n{i},x,{i}\n"  # an integer score: Int64 alone
        elif i % 17 == 9:
            body = f"id,name,extra\n{i},y,true\n"
        elif i % 19 == 2:
            body = "id,name,score\n"  # no rows
        data = body.encode()
        key = f"p/{i:03d}.csv"
        if i % 23 == 4:
            data, key = gzip.compress(data), key + ".gz"
        objects[key] = data
    buffer = io.BytesIO()
    pl.DataFrame({"id": [999], "name": ["pq"], "score": [9.5]}).write_parquet(buffer)
    objects["p/030x.parquet"] = buffer.getvalue()
    return objects


def _put(s3: Any, bucket: str, objects: dict[str, bytes]) -> None:
    for key, body in objects.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body)


def _alone(bucket: str, objects: dict[str, bytes]) -> pl.DataFrame:
    """What load() gives by parsing each file alone, in key order."""
    frames = []
    for key in sorted(objects):
        data = objects[key]
        fmt = detect_format(key.rsplit("/", 1)[1], data[:HEAD_BYTES], None)
        frame = read_bytes(data, fmt, name=f"s3://{bucket}/{key}", limits=ParseLimits())
        if frame.width:
            frames.append(frame)
    return pl.concat(frames, how="diagonal_relaxed")


class _Groups:
    """Counts the groups `load()` parses together, and their sizes (a spy, not a stand-in)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.sizes: list[int] = []
        real = dreambolt.load.parse_deferred

        async def counted(batch: list[Fetched | Failed], limits: Any) -> list[Fetched | Failed]:
            self.sizes.append(len(batch))
            return await real(batch, limits)

        monkeypatch.setattr(dreambolt.load, "parse_deferred", counted)


@pytest.mark.parametrize(
    ("budget", "in_flight"), [(1 << 30, 128), (16 << 10, 8), (2 << 10, 1)], ids=str
)
async def test_many_small_objects_load_as_if_each_were_parsed_alone(
    moto: MotoServer,
    s3: Any,
    bucket: str,
    monkeypatch: pytest.MonkeyPatch,
    budget: int,
    in_flight: int,
) -> None:
    objects = _objects()
    _put(s3, bucket, objects)
    groups = _Groups(monkeypatch)
    async with Ingester(s3=_options(moto), memory_budget=budget, files_in_flight=in_flight) as ing:
        frame = await ing.load(f"s3://{bucket}/p/")
    expected = _alone(bucket, objects)
    assert_frame_equal(frame, expected)  # rows in the order of the sources, same types
    assert frame.columns == ["id", "name", "score", "extra"]
    assert sum(groups.sizes) == len(objects) - 1  # every CSV (gzip too), not the Parquet
    if budget == 1 << 30:
        assert len(groups.sizes) <= 2  # together, not one parser call per file
    else:
        assert len(groups.sizes) > 2  # the budget bounds a group: it is parsed sooner


async def test_a_bad_file_among_many_raises_naming_it(
    moto: MotoServer, s3: Any, bucket: str
) -> None:
    objects = {f"q/{i:02d}.csv": f"a,b\n{i},{i}\n".encode() for i in range(30)}
    objects["q/17.csv"] = b"a,b,c,d,e\n1,2,3,4,5\n"  # more columns than allowed
    _put(s3, bucket, objects)
    async with Ingester(s3=_options(moto), max_columns=3) as ing:
        with pytest.raises(FormatError, match=rf"s3://{bucket}/q/17\.csv"):
            await ing.load(f"s3://{bucket}/q/")
        with pytest.raises(S3NotFoundError):
            await ing.load(f"s3://{bucket}/nothing-here/")


async def test_an_object_gone_after_listing_fails_the_load_naming_it(
    moto: MotoServer, s3: Any, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    objects = {f"r/{i:02d}.csv": f"a\n{i}\n".encode() for i in range(12)}
    _put(s3, bucket, objects)
    real = dreambolt.load.load_frames

    async def delete_then_load(*args: Any, **kwargs: Any) -> list[pl.DataFrame]:
        await asyncio.to_thread(s3.delete_object, Bucket=bucket, Key="r/05.csv")
        return await real(*args, **kwargs)

    monkeypatch.setattr(dreambolt.load, "load_frames", delete_then_load)
    async with Ingester(s3=_options(moto)) as ing:
        with pytest.raises(S3NotFoundError, match=rf"s3://{bucket}/r/05\.csv"):
            await ing.load(f"s3://{bucket}/r/")


# --- signing without botocore -------------------------------------------------------------------


@pytest.mark.parametrize("token", [None, "session/token+=="])
@pytest.mark.parametrize(
    ("region", "endpoint"),
    [("eu-west-1", "http://127.0.0.1:9000"), ("eu-west-1", None), ("us-east-1", None)],
)
async def test_the_signer_makes_botocores_urls(
    monkeypatch: pytest.MonkeyPatch, region: str, endpoint: str | None, token: str | None
) -> None:
    if token:
        monkeypatch.setenv("AWS_SESSION_TOKEN", token)
    session = new_session()
    style = "path" if endpoint else "virtual"
    config = AioConfig(signature_version="s3v4", s3={"addressing_style": style})
    creds = await (await session.get_credentials()).get_frozen_credentials()
    keys = ["first.csv", "a b/ü+x=y~*'()!$&,;:@.csv", "/lead//double/", "日本/%41.csv"]
    shapes: list[dict[str, str]] = [
        {"ChecksumMode": "ENABLED"},
        {"ChecksumMode": "ENABLED", "IfMatch": '"abc  def"', "VersionId": "v1+/= x"},
    ]
    async with session.create_client(
        "s3", region_name=region, endpoint_url=endpoint, config=config
    ) as client:
        for extra in shapes:
            signer = None
            for key in keys:
                params = {"Bucket": "my-bucket", "Key": key, **extra}
                url = await client.generate_presigned_url(
                    "get_object", Params=params, ExpiresIn=900
                )
                if signer is None:
                    signer = _Signer.learn(url, params, creds)
                    assert signer is not None, url
                mine = signer.url(creds, params)
                assert _form(urlsplit(mine)) == _form(urlsplit(url))
                if _stamp(mine) == _stamp(url):  # signed in the same second: the same URL
                    assert _sorted(mine) == _sorted(url)


def _stamp(url: str) -> str:
    return url.split("X-Amz-Date=", 1)[1][:16]


def _sorted(url: str) -> tuple[str, list[str]]:
    base, _, query = url.partition("?")
    return base, sorted(query.split("&"))


async def test_a_url_botocore_forms_otherwise_is_never_learnt() -> None:
    creds = await (await new_session().get_credentials()).get_frozen_credentials()
    params = {"Bucket": "b", "Key": "k.csv"}
    right = _Signer("http://h:1/b/", "eu-west-1", "s3").url(creds, params)
    assert _Signer.learn(right, params, creds) is not None
    assert _Signer.learn(right + "&extra=1", params, creds) is None
    assert _Signer.learn(right, {**params, "Key": "other.csv"}, creds) is None
    signed_more = right.replace("X-Amz-SignedHeaders=host", "X-Amz-SignedHeaders=host%3Bif-match")
    assert _Signer.learn(signed_more, params, creds) is None
    expires = right.replace(f"X-Amz-Expires={EXPIRES}", "X-Amz-Expires=60")
    assert _Signer.learn(expires, params, creds) is None


async def test_small_gets_after_the_first_are_signed_here(
    moto: MotoServer, s3: Any, bucket: str
) -> None:
    _put(s3, bucket, {f"s/{i}.csv": f"a\n{i}\n".encode() for i in range(5)})
    session = new_session()
    gets = PresignedGets(session, concurrency=4, connect_timeout=2.0, read_timeout=5.0)
    config = AioConfig(signature_version="s3v4", s3={"addressing_style": "path"})
    presigned: list[str] = []
    async with session.create_client(
        "s3", region_name="us-east-1", endpoint_url=moto.endpoint_url, config=config
    ) as client:
        real = client.generate_presigned_url

        async def counted(*args: Any, **kwargs: Any) -> str:
            url: str = await real(*args, **kwargs)
            presigned.append(url)
            return url

        client.generate_presigned_url = counted
        try:
            bodies = [
                (await gets.get(client, {"Bucket": bucket, "Key": f"s/{i}.csv"}))[1]
                for i in range(5)
            ]
            pinned = {"Bucket": bucket, "Key": "s/1.csv", "IfMatch": '"nope"'}
            with pytest.raises(Exception, match=r"PreconditionFailed|412"):
                await gets.get(client, pinned)
            with pytest.raises(Exception, match=r"PreconditionFailed|412"):
                await gets.get(client, pinned)
        finally:
            await gets.close()
    assert bodies == [f"a\n{i}\n".encode() for i in range(5)]
    assert len(presigned) == 2  # one per form of request; the others signed here
    assert os.environ["AWS_ACCESS_KEY_ID"] in presigned[0]
