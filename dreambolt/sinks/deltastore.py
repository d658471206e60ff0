"""Where a Delta Lake destination lives: its root, its tables' URIs, and how to reach S3.

`--db delta:ROOT` names a folder of Delta tables: table `T` is `ROOT/T`, the ledger is
`ROOT/_dreambolt_loads`. ROOT is `s3://bucket/prefix`, a local path (`./lake`, `/abs/lake`,
`~/lake`) or `file:///abs/lake`.

S3 is reached with the settings of the S3 source (`S3Options`: `--endpoint-url`, `--region`,
`--profile`) and the same AWS chain: botocore resolves the credentials (environment, profile,
SSO, instance role...) and they are handed to delta-rs as storage options, so there is no second
configuration. The secret key and token are registered with `dreambolt.errors.register_secret`,
so no message shows them. delta-rs commits with S3 conditional writes (`If-None-Match`); AWS S3,
MinIO, R2 and moto honour them. A store that ignores them cannot be written safely by two writers
at once (see the README's Lakehouse section).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from dreambolt.errors import SinkError, register_secret
from dreambolt.sinks.names import DELTA_PREFIX

if TYPE_CHECKING:
    from dreambolt.s3.options import S3Options

__all__ = ["Credentials", "DeltaRoot", "open_root", "parse_root", "storage_options"]

_EXAMPLE = "e.g. --db delta:s3://lake/analytics or --db delta:./lake"


@dataclass
class Credentials:
    """The AWS credentials a root's storage options carry: botocore's, read again at each
    use (cheap; botocore refreshes temporary ones before they expire)."""

    source: Any  # botocore Credentials (RefreshableCredentials for roles, SSO, IRSA)
    changes: int = 0

    def refresh(self, storage: dict[str, str]) -> int:
        frozen = self.source.get_frozen_credentials()
        fresh = {
            "AWS_ACCESS_KEY_ID": frozen.access_key or "",
            "AWS_SECRET_ACCESS_KEY": frozen.secret_key or "",
        }
        if frozen.token:
            fresh["AWS_SESSION_TOKEN"] = frozen.token
        if any(storage.get(k) != v for k, v in fresh.items()):
            register_secret(frozen.secret_key)
            register_secret(frozen.token)
            storage.pop("AWS_SESSION_TOKEN", None)
            storage.update(fresh)
            self.changes += 1
        return self.changes


@dataclass(frozen=True)
class DeltaRoot:
    """A folder of Delta tables: `uri` is `s3://bucket/prefix` or an absolute local path."""

    db: str  # as the user wrote it (for messages)
    uri: str
    storage: dict[str, str] | None = field(default=None, repr=False, compare=False)
    probe: Callable[[], None] | None = field(default=None, repr=False, compare=False)
    credentials: Credentials | None = field(default=None, repr=False, compare=False)

    def refreshed(self) -> int:
        """Bring the storage options' credentials up to date (temporary ones, from a role, SSO
        or a web identity, are renewed by botocore as they near expiry); the number of times
        they changed, so that tables opened with older ones are opened again."""
        if self.credentials is None or self.storage is None:
            return 0
        return self.credentials.refresh(self.storage)

    @property
    def local(self) -> bool:
        return not self.uri.startswith("s3://")

    def check_writable(self) -> None:
        """Before a write: refuse (fatal SinkError) an S3 store that ignores conditional
        writes (`deltaprobe.probe`, once per process)."""
        if self.probe is not None:
            self.probe()

    def table_uri(self, table: str) -> str:
        """Where table `table` lives."""
        return f"{self.uri.rstrip('/')}/{table}"

    def owns(self, uri: str) -> bool:
        """Whether a source URI (canonical: `s3://b/k` or `file:///abs`) is under the root."""
        if self.local:
            own = Path(self.uri).as_uri().rstrip("/") + "/"
        else:
            own = self.uri.rstrip("/") + "/"
        return uri.startswith(own)


def parse_root(db: str) -> str:
    """The root `delta:ROOT` names: `s3://bucket/prefix` or an absolute local path.

    Raises a fatal SinkError (code InvalidPath) for anything else.
    """
    text = db[len(DELTA_PREFIX) :] if db.lower().startswith(DELTA_PREFIX) else db
    text = text.strip()
    if not text or "\0" in text:
        raise _invalid(db, "it names no folder")
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme == "s3":
        bucket, prefix = parts.netloc, parts.path.strip("/")
        if not bucket or parts.query or parts.fragment:
            raise _invalid(db, "an S3 root is s3://BUCKET/PREFIX")
        return f"s3://{bucket}/{prefix}".rstrip("/")
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise _invalid(db, "a file: URI names a local path (file:///abs/lake)")
        return os.path.realpath(unquote(parts.path))
    if len(scheme) > 1:  # another URL scheme (a Windows drive letter is one letter)
        raise _invalid(db, f"{scheme}:// is not supported (S3 or a local folder)")
    return os.path.realpath(os.path.expanduser(text))


def open_root(db: str, s3: S3Options | None = None) -> DeltaRoot:
    """Check the root `db` names and return it with the storage options to reach it.

    A local root's parent folder must exist (a typo must not start a new lake) and the root
    must be a folder (made by the first write) or missing, not a file nor a Delta table. An
    S3 root's bucket must be reachable (`deltaprobe.reach`); that the store honours
    conditional writes is checked before the first write (`DeltaRoot.check_writable`).
    Fatal SinkError otherwise (exit 3).
    """
    uri = parse_root(db)
    if not uri.startswith("s3://"):
        _check_local(db, uri)
        return DeltaRoot(db, uri)
    from botocore.session import Session  # botocore comes with aiobotocore

    from dreambolt.sinks.deltaprobe import probe, reach

    session = Session(profile=s3.profile if s3 else None)
    storage = storage_options(
        session,
        endpoint_url=s3.endpoint_url if s3 else None,
        region=s3.region if s3 else None,
    )
    if reach(session, storage, uri, db):
        raise _is_a_table(db)
    creds = session.get_credentials()  # the same object: botocore caches it per session
    held = Credentials(creds) if creds is not None else None
    return DeltaRoot(db, uri, storage, lambda: probe(session, storage, uri, db), held)


def storage_options(
    session: Any, *, endpoint_url: str | None, region: str | None
) -> dict[str, str]:
    """delta-rs's S3 settings from the S3 source's options (`S3Options`: endpoint, region;
    the profile is the botocore `session`'s) and the AWS credential chain."""
    try:
        creds = session.get_credentials()
    except Exception as exc:  # botocore raises its own types for a broken profile
        raise SinkError(
            f"cannot read AWS credentials for the Delta destination: {exc}; check --profile "
            "and the AWS configuration",
            code="AuthError",
            fatal=True,
        ) from exc
    options: dict[str, str] = {}
    if creds is not None:
        frozen = creds.get_frozen_credentials()
        register_secret(frozen.secret_key)
        register_secret(frozen.token)
        options["AWS_ACCESS_KEY_ID"] = frozen.access_key or ""
        options["AWS_SECRET_ACCESS_KEY"] = frozen.secret_key or ""
        if frozen.token:
            options["AWS_SESSION_TOKEN"] = frozen.token
    region = (
        region
        or os.environ.get("AWS_REGION")
        or session.get_config_variable("region")
        or "us-east-1"
    )
    options["AWS_REGION"] = str(region)
    endpoint = (
        endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    )
    if endpoint:
        options["AWS_ENDPOINT_URL"] = endpoint
        if endpoint.lower().startswith("http://"):
            options["AWS_ALLOW_HTTP"] = "true"
    return options


def _check_local(db: str, root: str) -> None:
    parent = os.path.dirname(root)
    if not os.path.isdir(parent):
        raise SinkError(
            f"cannot open Delta root {db!r}: the folder {parent!r} does not exist; create it "
            "first (DreamBolt does not create parent folders, so that a mistyped path does not "
            "start a new lake) or correct --db",
            code="NoSuchDirectory",
            fatal=True,
        )
    if os.path.lexists(root) and not os.path.isdir(root):
        raise SinkError(
            f"{db!r} is not a Delta root: {root!r} is a file (left untouched). --db delta:ROOT "
            f"names a folder that holds tables; {_EXAMPLE}",
            code="NotADatabase",
            fatal=True,
        )
    if os.path.isdir(os.path.join(root, "_delta_log")):
        raise _is_a_table(db)
    # The root folder itself is made by the first table written in it: a dry run or a
    # listing leaves no trace.


def _is_a_table(db: str) -> SinkError:
    return SinkError(
        f"{db!r} is a Delta table, not a root: --db delta:ROOT names the folder that holds "
        "tables, and --table the table in it (e.g. --db delta:s3://lake/analytics --table "
        "events writes s3://lake/analytics/events)",
        code="NotADatabase",
        fatal=True,
    )


def _invalid(db: str, why: str) -> SinkError:
    return SinkError(
        f"invalid Delta destination {db!r}: {why}; {_EXAMPLE}", code="InvalidPath", fatal=True
    )
