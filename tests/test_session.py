"""Pure units: the botocore session setup (default region, model loader, timestamps)."""

from __future__ import annotations

import gzip
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from botocore.loaders import create_loader

from dreambolt.s3.client import S3Client
from dreambolt.s3.session import PlainJSONFileLoader, new_session, parse_timestamp


def test_models_load_the_same_as_botocores_own_loader() -> None:
    ours = new_session().get_component("data_loader")
    theirs = create_loader()
    for kind in ("service-2", "endpoint-rule-set-1", "paginators-1"):
        mine = ours.load_service_model("s3", kind)
        assert mine == theirs.load_service_model("s3", kind)
        assert type(mine) is dict  # plain dicts: the point of the loader
    assert ours.load_data("endpoints") == theirs.load_data("endpoints")
    assert isinstance(ours.file_loader, PlainJSONFileLoader)


def test_file_loader_reads_plain_and_gzipped_models(tmp_path: Path) -> None:
    (tmp_path / "plain.json").write_text('{"b": 1, "a": [2]}')
    with gzip.open(tmp_path / "packed.json.gz", "wt") as fp:
        fp.write('{"z": {"y": null}}')
    loader = PlainJSONFileLoader()
    assert loader.exists(str(tmp_path / "plain")) and loader.exists(str(tmp_path / "packed"))
    assert not loader.exists(str(tmp_path / "absent"))
    plain = loader.load_file(str(tmp_path / "plain"))
    assert plain == {"b": 1, "a": [2]} and list(plain) == ["b", "a"]
    assert loader.load_file(str(tmp_path / "packed")) == {"z": {"y": None}}
    assert loader.load_file(str(tmp_path / "absent")) is None


def test_timestamps_in_both_s3_forms() -> None:
    when = datetime(2024, 3, 19, 21, 39, 31, tzinfo=UTC)
    assert parse_timestamp("Tue, 19 Mar 2024 21:39:31 GMT") == when
    assert parse_timestamp("2024-03-19T21:39:31.000Z") == when
    assert parse_timestamp("2024-03-19T21:39:31") == when  # unzoned: UTC


# --- the default region, as aws-cli v2 finds it -------------------------------------------------


@pytest.fixture
def profiles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An AWS config file whose default profile is in sa-east-1 and profile `other` in
    ca-central-1; no region variables set."""
    config = tmp_path / "config"
    config.write_text("[default]\nregion = sa-east-1\n\n[profile other]\nregion = ca-central-1\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)


@pytest.mark.parametrize(
    ("aws_region", "aws_default_region", "profile", "expected"),
    [
        (None, None, None, "sa-east-1"),  # the profile's region
        (None, None, "other", "ca-central-1"),
        (None, "eu-north-1", "other", "eu-north-1"),  # AWS_DEFAULT_REGION beats the profile
        ("ap-south-1", None, "other", "ap-south-1"),  # so does AWS_REGION
        ("ap-south-1", "eu-north-1", None, "ap-south-1"),  # and AWS_REGION goes first
        ("", "eu-north-1", None, "eu-north-1"),  # an empty variable is no setting
    ],
)
def test_region_from_aws_region_then_aws_default_region_then_profile(
    profiles: None,
    monkeypatch: pytest.MonkeyPatch,
    aws_region: str | None,
    aws_default_region: str | None,
    profile: str | None,
    expected: str,
) -> None:
    if aws_region is not None:
        monkeypatch.setenv("AWS_REGION", aws_region)
    if aws_default_region is not None:
        monkeypatch.setenv("AWS_DEFAULT_REGION", aws_default_region)
    environ = dict(os.environ)
    assert new_session(profile).get_config_variable("region") == expected
    assert dict(os.environ) == environ  # read, never written


async def test_s3_client_default_region_and_an_explicit_region_wins(
    profiles: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_REGION", "ap-south-1")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-north-1")
    async with S3Client() as s3:
        assert s3.default_region == "ap-south-1"
    async with S3Client(region="us-west-2") as s3:
        assert s3.default_region == "us-west-2"
    monkeypatch.delenv("AWS_REGION")
    async with S3Client(profile="other") as s3:
        assert s3.default_region == "eu-north-1"
