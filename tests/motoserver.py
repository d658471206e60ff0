"""A real moto S3 server in a subprocess, for tests that talk HTTP to S3.

A subprocess rather than ``ThreadedMotoServer`` so the server does not share the GIL with the
code under test. Auth enforcement is global to the server; ``enable_auth()`` switches it on for a
``with`` block and restores the previous setting afterwards.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import boto3
from botocore.config import Config

REGION = "us-east-1"
READ_ACTIONS: tuple[str, ...] = ("s3:GetObject", "s3:ListBucket", "s3:GetBucketLocation")


def untraced(env: dict[str, str]) -> dict[str, str]:
    """`env` for a helper server that runs no dreambolt code: without the variables that make
    coverage measure every Python subprocess (pyproject's `patch = subprocess`), which would only
    slow the server down."""
    return {k: v for k, v in env.items() if not k.startswith("COVERAGE_PROCESS_")}


def free_port(host: str = "127.0.0.1") -> int:
    """Return a loopback port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class IamUser:
    """An IAM user created in moto, with one access key."""

    name: str
    access_key_id: str
    secret_access_key: str


class MotoServer:
    """``moto_server`` running as a subprocess on a free loopback port."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        log_dir: Path | None = None,
        extra_env: Mapping[str, str] | None = None,
        startup_timeout: float = 30.0,
    ) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.endpoint_url = f"http://{host}:{self.port}"
        self._own_tmp: tempfile.TemporaryDirectory[str] | None = None
        if log_dir is None:
            self._own_tmp = tempfile.TemporaryDirectory(prefix="motoserver-")
            log_dir = Path(self._own_tmp.name)
        self.log_path = log_dir / f"moto-{self.port}.log"
        self._extra_env = dict(extra_env or {})
        self._startup_timeout = startup_timeout
        self._proc: subprocess.Popen[bytes] | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start the server and wait until ``GET /moto-api/`` answers."""
        if self._proc is not None:
            return
        exe = Path(sys.executable).parent / "moto_server"
        env = untraced(dict(os.environ))
        # Custom endpoints make moto treat the request host as a virtual-hosted bucket name.
        env.pop("MOTO_S3_CUSTOM_ENDPOINTS", None)
        env.update(self._extra_env)
        with self.log_path.open("wb") as log:
            self._proc = subprocess.Popen(
                [str(exe), "-H", self.host, "-p", str(self.port)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        deadline = time.monotonic() + self._startup_timeout
        while True:
            code = self._proc.poll()
            if code is not None:
                tail = self.log_tail()
                self.stop()
                raise RuntimeError(
                    f"moto_server exited with code {code} during startup; log tail:\n{tail}"
                )
            try:
                with urllib.request.urlopen(f"{self.endpoint_url}/moto-api/", timeout=1) as r:
                    r.read()
                return
            except (OSError, urllib.error.URLError):
                pass
            if time.monotonic() > deadline:
                tail = self.log_tail()
                self.stop()
                raise RuntimeError(
                    f"moto_server did not answer within {self._startup_timeout:.0f} s; "
                    f"log tail:\n{tail}"
                )
            time.sleep(0.1)

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 5 s) and reap it."""
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        if self._own_tmp is not None:
            self._own_tmp.cleanup()
            self._own_tmp = None

    def __enter__(self) -> MotoServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    # -- moto control API --------------------------------------------------------------------

    def _post(self, path: str, body: bytes = b"", content_type: str = "text/plain") -> Any:
        req = urllib.request.Request(
            f"{self.endpoint_url}{path}",
            data=body,
            method="POST",
            headers={"Content-Type": content_type},
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read() or b"null")

    def reset(self) -> None:
        """Drop every bucket, object, IAM user etc. (``POST /moto-api/reset``).

        Does not touch the auth setting.
        """
        self._post("/moto-api/reset")

    def set_auth_threshold(self, count: float) -> float:
        """Enforce auth after ``count`` more requests (``inf``: never); returns the old value.

        moto keeps ``INITIAL_NO_AUTH_ACTION_COUNT`` and a request counter; ``reset-auth`` sets
        the former from the body (parsed with ``float``, so ``inf`` works) and zeroes the latter.
        """
        # A form content type makes moto try to parse the body as a form and fail with 500.
        answer = self._post("/moto-api/reset-auth", str(count).encode(), "text/plain")
        return float(answer["PREVIOUS_INITIAL_NO_AUTH_ACTION_COUNT"])

    @contextmanager
    def enable_auth(self) -> Iterator[None]:
        """Enforce SigV4 signatures and IAM policies inside the block, for every client.

        The default fake credentials are unknown to moto's IAM, so inside the block they get
        ``InvalidAccessKeyId``; use ``create_user`` (before entering) for working keys.
        """
        previous = self.set_auth_threshold(0)
        try:
            yield
        finally:
            self.set_auth_threshold(previous)

    def client(self, service: str, **kwargs: Any) -> Any:
        """A sync boto3 client against this server (path-style, us-east-1). Close it."""
        kwargs.setdefault("region_name", REGION)
        kwargs.setdefault("config", Config(s3={"addressing_style": "path"}))
        return boto3.client(service, endpoint_url=self.endpoint_url, **kwargs)

    def create_user(
        self,
        bucket: str,
        *,
        can_read: bool = True,
        actions: Sequence[str] | None = None,
    ) -> IamUser:
        """Create an IAM user with an access key and a policy on ``bucket``.

        ``can_read=True`` allows ``READ_ACTIONS``; ``False`` allows only ``s3:ListBucket`` so
        listing works but GetObject/HeadObject get ``AccessDenied``. ``actions`` overrides both.
        Call it while auth is not enforced (the default keys are not IAM users).
        """
        if actions is None:
            actions = READ_ACTIONS if can_read else ("s3:ListBucket",)
        name = f"u-{uuid.uuid4().hex[:8]}"
        policy = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": list(actions),
                    "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
                }
            ],
        }
        iam = self.client("iam")
        try:
            iam.create_user(UserName=name)
            iam.put_user_policy(
                UserName=name, PolicyName="bucket-access", PolicyDocument=json.dumps(policy)
            )
            key = iam.create_access_key(UserName=name)["AccessKey"]
        finally:
            iam.close()
        return IamUser(name, key["AccessKeyId"], key["SecretAccessKey"])


if __name__ == "__main__":
    with MotoServer(port=int(sys.argv[1]) if len(sys.argv) > 1 else None) as server:
        print(server.endpoint_url, flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
