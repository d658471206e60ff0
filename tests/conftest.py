"""Shared fixtures: one real moto server and one fault proxy per session, fake credentials."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from faultproxy import FaultProxy
from motoserver import REGION, MotoServer
from watchservice import services  # noqa: F401 (the fixture of `dreambolt watch` subprocesses)

FAKE_ACCESS_KEY_ID = "testing-key-id"
# 40 characters like a real secret, with the '/' and '+' real ones have, so redaction tests
# see the awkward characters; distinctive enough to grep for in logs and output.
FAKE_SECRET_ACCESS_KEY = "dreamboltFAKEsecret/DoNotLeak+0123456789"
assert len(FAKE_SECRET_ACCESS_KEY) == 40


@pytest.fixture(scope="session", autouse=True)
def aws_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Fake credentials for the whole session; nothing from the host's AWS setup leaks in."""
    aws_dir = tmp_path_factory.mktemp("aws")
    with pytest.MonkeyPatch.context() as mp:
        for name in list(os.environ):
            if name.startswith("AWS_"):
                mp.delenv(name)
        mp.delenv("MOTO_S3_CUSTOM_ENDPOINTS", raising=False)
        mp.setenv("AWS_ACCESS_KEY_ID", FAKE_ACCESS_KEY_ID)
        mp.setenv("AWS_SECRET_ACCESS_KEY", FAKE_SECRET_ACCESS_KEY)
        mp.setenv("AWS_DEFAULT_REGION", REGION)
        mp.setenv("AWS_REGION", REGION)
        mp.setenv("AWS_CONFIG_FILE", str(aws_dir / "no-such-config"))
        mp.setenv("AWS_SHARED_CREDENTIALS_FILE", str(aws_dir / "no-such-credentials"))
        mp.setenv("AWS_EC2_METADATA_DISABLED", "true")
        yield


@pytest.fixture(scope="session")
def moto(aws_env: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """The session's moto server (a subprocess); its log is in pytest's temp dir."""
    with MotoServer(log_dir=tmp_path_factory.mktemp("moto")) as server:
        yield server


@pytest.fixture(scope="session")
def proxy(moto: MotoServer) -> Iterator[FaultProxy]:
    """The session's fault proxy in front of ``moto``; rules and records reset after each test."""
    with FaultProxy(moto.endpoint_url) as fault_proxy:
        yield fault_proxy


@pytest.fixture(autouse=True)
def _reset_proxy(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    # Only if some test in the session already started it: don't start moto for pure tests.
    if "proxy" in request.fixturenames:
        request.getfixturevalue("proxy").reset()


@pytest.fixture
def fake_secret() -> str:
    """The fake AWS secret access key set for the session."""
    return FAKE_SECRET_ACCESS_KEY


@pytest.fixture
def s3(moto: MotoServer) -> Iterator[Any]:
    """A sync boto3 S3 client straight to moto (not through the proxy), to arrange data."""
    client = moto.client("s3")
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def bucket(s3: Any) -> Iterator[str]:
    """A fresh, empty bucket for this test; emptied and deleted afterwards."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=name)
    yield name
    try:
        paginator = s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=name):
            keys = [{"Key": obj["Key"]} for obj in page.get("Contents", [])]
            if keys:
                s3.delete_objects(Bucket=name, Delete={"Objects": keys})
        s3.delete_bucket(Bucket=name)
    except Exception:  # best effort: uniquely named buckets never collide
        pass
