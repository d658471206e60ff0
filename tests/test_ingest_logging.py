"""Each file's outcome is one log record on `dreambolt.ingest`: loaded and unchanged at INFO,
skipped and failed at WARNING with the error's type and message; never a secret."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from dreambolt import Ingester
from dreambolt.outcome import log_outcome
from dreambolt.report import ErrorInfo, FileResult


def outcomes(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "dreambolt.ingest"]


async def test_every_files_outcome_is_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="dreambolt.ingest")
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.csv").write_text("id\n1\n2\n")
    (folder / "b.csv").write_text("id\n3\n")
    (folder / "clash.csv").write_text("id,_source_uri\n1,x\n")
    (folder / "bad.parquet").write_bytes(b"not parquet")
    uri = {p.name: p.resolve().as_uri() for p in folder.iterdir()}
    async with Ingester(db=tmp_path / "t.duckdb") as ing:
        await ing.ingest(str(folder), table="t")
        first = outcomes(caplog)
        caplog.clear()
        await ing.ingest(str(folder / "a.csv"), table="t")
        again = outcomes(caplog)
    assert len(first) == 4  # one record per file
    info = {m.split()[1].rstrip(":"): m for level, m in first if level == logging.INFO}
    warned = {m.split()[1].rstrip(":"): m for level, m in first if level == logging.WARNING}
    size = (folder / "a.csv").stat().st_size
    assert re.fullmatch(
        rf"loaded {re.escape(uri['a.csv'])}: 2 rows, {size} bytes, \d+\.\d{{3}}s",
        info[uri["a.csv"]],
    )
    assert info[uri["b.csv"]].startswith(f"loaded {uri['b.csv']}: 1 rows, ")
    assert warned[uri["clash.csv"]].startswith(f"failed {uri['clash.csv']}: SinkError: ")
    assert "_source_uri" in warned[uri["clash.csv"]]
    assert warned[uri["bad.parquet"]].startswith(f"skipped {uri['bad.parquet']}: FormatError")
    assert [m.split(": ")[0] for _, m in again] == [f"unchanged {uri['a.csv']}"]
    assert again[0][0] == logging.INFO


def test_a_secret_in_an_error_message_is_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="dreambolt.ingest")
    secret = "wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY"
    log_outcome(
        FileResult(
            "s3://b/k.csv",
            "skipped",
            bytes=5,
            error=ErrorInfo(
                "S3AuthError", "AccessDenied", f"denied: aws_secret_access_key={secret}"
            ),
        )
    )
    ((level, message),) = outcomes(caplog)
    assert level == logging.WARNING
    assert message.startswith("skipped s3://b/k.csv: S3AuthError [AccessDenied]: denied: ")
    assert secret not in message and "***" in message
