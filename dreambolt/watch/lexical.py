"""Lexical listing (`dreambolt watch --lexical`): for keys that only grow (date paths, sequence
numbers), list from the last key seen (`StartAfter`), so a poll costs a request or two however
many objects the prefix holds. A key written behind that mark (a late arrival, a backfill) is
not seen this way: every `full_every`-th poll is a full listing, and the ledger loads what it
missed. Only S3 prefixes and globs have marks; with a local path every poll is a full one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from dreambolt.s3.client import S3Client
from dreambolt.s3.listing import key_matcher
from dreambolt.s3.uri import S3Uri, parse_s3_uri
from dreambolt.sources import Source
from dreambolt.sources.inputs import wanted_key

__all__ = ["Marks"]


class Marks:
    """Where each input's listing ended."""

    def __init__(self, inputs: Sequence[str]) -> None:
        self._bases: dict[str, S3Uri] = {}
        self.full_only = False
        for text in inputs:
            base = parse_s3_uri(text) if text.lower().startswith("s3:") else None
            if base is None or not (base.is_prefix or base.is_glob):
                self.full_only = True  # a local path or a single object: no mark to keep
            else:
                self._bases[text] = base
        self._last: dict[str, str] = {}

    def learn(self, uris: Iterable[str]) -> None:
        """Move the marks past these objects' keys (a listing's result)."""
        for uri in uris:
            for text, base in self._bases.items():
                prefix = f"s3://{base.bucket}/{key_matcher(base)[0]}"
                key = uri[len(f"s3://{base.bucket}/") :]
                if uri.startswith(prefix) and key > self._last.get(text, ""):
                    self._last[text] = key

    async def after(
        self, client: S3Client, include: Sequence[str], exclude: Sequence[str]
    ) -> list[Source] | None:
        """The objects after the marks (None: some input has no mark yet; list it whole)."""
        if self.full_only or set(self._last) != set(self._bases):
            return None
        found: list[Source] = []
        for text, base in self._bases.items():
            async for info in client.list(base, start_after=self._last[text]):
                if wanted_key(info.uri.key, include, exclude):
                    found.append(Source(str(info.uri), info.size, info.etag or None, info))
        self.learn(src.uri for src in found)
        return found
