"""The botocore session behind an S3Client, set up to start fast and parse fast.

- Models are decoded into plain dicts. botocore decodes its JSON models with
  `object_pairs_hook=OrderedDict`, which made creating an S3 client take 0.1 s of CPU, most of it
  decoding the endpoint rule set; plain dicts keep their order too and decode ten times faster.
- Timestamps are parsed with the standard library: botocore's default (dateutil) is a large share
  of its per-request CPU.

Nothing here changes process-wide state (the garbage collector, the allocator): creating a
client builds tens of thousands of model objects, and the collector, run in the middle of that,
rescans the whole heap, which with polars, pyarrow and DuckDB loaded costs about 0.05 s once per
client. An application that minds can call `gc.freeze()` after its imports; a library must not
switch the collector off (other threads and the caller's code run meanwhile).
"""

from __future__ import annotations

import email.utils
import json
import os
from datetime import UTC, datetime
from typing import Any

from aiobotocore.session import AioSession
from botocore.loaders import JSONFileLoader, Loader, create_loader

__all__ = ["new_session", "parse_timestamp"]


class _PlainJSONFileLoader(JSONFileLoader):  # type: ignore[misc]
    """botocore's model file loader, decoding into plain (ordered) dicts."""

    def _load_file(self, full_path: str, open_method: Any) -> Any:
        if not os.path.isfile(full_path):
            return None
        with open_method(full_path, "rb") as fp:
            return json.loads(fp.read().decode("utf-8"))


def new_session(profile: str | None = None) -> AioSession:
    """A new aiobotocore session with the fast model loader and timestamp parser."""
    session = AioSession(profile=profile)
    loader: Loader = create_loader(session.get_config_variable("data_path"))
    loader.file_loader = _PlainJSONFileLoader()
    session.register_component("data_loader", loader)
    session.get_component("response_parser_factory").set_parser_defaults(
        timestamp_parser=parse_timestamp
    )
    return session


def parse_timestamp(value: str) -> datetime:
    """Parse the RFC 1123 and ISO 8601 timestamps S3 sends, quickly (UTC when unzoned)."""
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
