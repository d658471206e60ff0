"""`dreambolt watch` as a subprocess, with its HTTP endpoints, for the tests."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest

WAIT_S = 60.0
VERBOSE = os.environ.get("WATCH_TEST_VERBOSE", "").split()


class Service:
    """A `dreambolt watch` subprocess and its HTTP endpoints."""

    def __init__(self, args: list[str]) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dreambolt",
                *VERBOSE,
                "watch",
                *args,
                "--listen",
                "127.0.0.1:0",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=dict(os.environ),
        )
        self.stderr: list[str] = []
        first = self._line()
        found = re.search(r"http://127\.0\.0\.1:(\d+)", first)
        assert found, first + self._rest()
        self.base = f"http://127.0.0.1:{found.group(1)}"
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def _line(self) -> str:
        assert self.proc.stderr is not None
        line = self.proc.stderr.readline()
        self.stderr.append(line)
        return line

    def _drain(self) -> None:
        while self._line():
            pass

    def _rest(self) -> str:
        self.proc.kill()
        rest = self.proc.communicate(timeout=10)[1]
        return rest

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(self.base + path, timeout=10) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def metric(self, name: str) -> float:
        """A `dreambolt_watch_*` sample's value (0 if absent)."""
        _, text = self.get("/metrics")
        for line in text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[-1])
        return 0.0

    def wait_for(self, check: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + WAIT_S
        while not check():
            assert self.proc.poll() is None, "".join(self.stderr)
            assert time.monotonic() < deadline, f"{what}: {''.join(self.stderr)}"
            time.sleep(0.1)

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=WAIT_S)
        self.close()
        return code

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(timeout=10)
        if self.proc.stderr is not None:
            self.proc.stderr.close()


@pytest.fixture
def services() -> Iterator[list[Service]]:
    started: list[Service] = []
    yield started
    for service in started:
        service.close()


def put(s3: Any, bucket: str, key: str, ids: range) -> None:
    """A CSV object with one row per id."""
    body = "id,v\n" + "".join(f"{i},x\n" for i in ids)
    s3.put_object(Bucket=bucket, Key=key, Body=body.encode())
