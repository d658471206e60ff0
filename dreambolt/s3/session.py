"""The botocore session behind an S3Client: its default region, and set up to start and parse fast.

- The default region is found as aws-cli v2 finds it: `AWS_REGION`, else `AWS_DEFAULT_REGION`
  (botocore's own variable), else the profile's `region`. (An explicit region of the caller wins
  over all three.)
- Models are decoded into plain dicts. botocore decodes its JSON models with
  `object_pairs_hook=OrderedDict`, which makes creating the first S3 client of a session cost
  about 30 ms more (138 ms against 108 ms, median of 9 fresh processes); plain dicts keep their
  order too. The loader is given a file loader of our
  own through `Loader(file_loader=...)`'s public protocol (`exists`, `load_file`), not a
  subclass overriding botocore's private methods.
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
import gzip
import json
import os
from datetime import UTC, datetime
from typing import Any

from aiobotocore.session import AioSession
from botocore.loaders import JSONFileLoader, Loader, create_loader

__all__ = ["PlainJSONFileLoader", "new_session", "parse_timestamp"]

_SUFFIXES = (".json", ".json.gz")  # the model files botocore ships, in the order it tries them


class PlainJSONFileLoader(JSONFileLoader):
    """A file loader for botocore's `Loader` that decodes models into plain (ordered) dicts.

    Replaces both public methods `Loader` calls on its `file_loader`, `exists` and `load_file`
    (each given a path without its `.json` / `.json.gz` suffix); nothing of the base class is
    used.
    """

    def exists(self, file_path: str) -> bool:
        """Whether a model file exists at `file_path` (without suffix)."""
        return any(os.path.isfile(file_path + suffix) for suffix in _SUFFIXES)

    def load_file(self, file_path: str) -> Any:
        """The decoded model at `file_path` (without suffix), or None if there is none."""
        for suffix in _SUFFIXES:
            full_path = file_path + suffix
            if os.path.isfile(full_path):
                opener = gzip.open if suffix.endswith(".gz") else open
                with opener(full_path, "rb") as fp:
                    return json.loads(fp.read().decode("utf-8"))
        return None


def new_session(profile: str | None = None) -> AioSession:
    """A new aiobotocore session: default region as aws-cli v2 finds it, fast model loader and
    timestamp parser."""
    session = AioSession(profile=profile)
    region = os.environ.get("AWS_REGION")
    if region:  # botocore reads AWS_DEFAULT_REGION and the profile; AWS_REGION goes first
        session.set_config_variable("region", region)
    loader: Loader = create_loader(session.get_config_variable("data_path"))
    loader.file_loader = PlainJSONFileLoader()
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
