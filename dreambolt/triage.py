"""Before an ingest fetches anything: what the inputs name, which files are loaded already, and
which inputs failed."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from dreambolt.errors import S3NotFoundError
from dreambolt.outcome import is_fatal, status_of
from dreambolt.report import ErrorInfo, FileResult
from dreambolt.sinks import Sink
from dreambolt.sources import Source, expand
from dreambolt.sources.inputs import ClientFactory
from dreambolt.write import Run, Writer

__all__ = ["Polling", "expanded", "triage"]


@dataclass(frozen=True)
class Polling:
    """A service's poll, as `ingest(polling=True)`, which leaves the files `hold` picks for a
    later poll: not fetched and not reported (a file refused recently, `watch.refusals`)."""

    hold: Callable[[Source], bool]


async def expanded(
    opening: Awaitable[Sink],
    inputs: Sequence[str | Source],
    client: ClientFactory,
    include: Sequence[str],
    exclude: Sequence[str],
    allow_empty: bool = False,
) -> tuple[Sink, list[Source], list[tuple[str, Exception]]]:
    """The sink `opening` opens, while the inputs are expanded; the sources (never the
    destination's own files) and the inputs that failed (with `allow_empty`, a prefix or
    glob that matches nothing is not a failure). Raises the first failure that is fatal."""
    given = [i for i in inputs if isinstance(i, Source)]  # listed already: as they are
    texts = [i for i in inputs if not isinstance(i, Source)]
    try:
        sources, failures = await expand(texts, client, include=include, exclude=exclude)
        sources = given + sources
    finally:
        sink = await opening  # an unusable database is reported first
    sources = [s for s in sources if not sink.owns(s.uri)]  # never ingest the database
    if allow_empty:
        failures = [(shown, exc) for shown, exc in failures if not _matched_nothing(exc)]
    for _, exc in failures:
        if is_fatal(exc):
            raise exc
    return sink, sources, failures


async def triage(
    run: Run,
    writer: Writer,
    sources: list[Source],
    failures: list[tuple[str, Exception]],
    loaded: dict[str, str | None],
    dry_run: bool,
    on_error: Literal["skip", "abort"],
    polling: bool | Polling = False,
) -> list[Source]:
    """Settle the files loaded already and the inputs that failed; the files to load. When
    `polling` (a service), unchanged files are not recorded in the ledger at every poll."""
    todo = [s for s in sources if s.etag is None or loaded.get(s.uri) != s.etag]
    pending = {s.uri for s in todo}
    if isinstance(polling, Polling):
        todo = [s for s in todo if not polling.hold(s)]
    table = run.table
    unchanged = [
        FileResult(src.uri, "unchanged", etag=src.etag, table=table, bytes=src.size)
        for src in sources
        if src.uri not in pending
    ]
    failed = [
        FileResult(shown, status_of(exc), error=ErrorInfo.of(exc), table=table)
        for shown, exc in failures
    ]
    if polling:
        await writer.settle(run, unchanged, dry_run=True)  # reported, not recorded
        await writer.settle(run, failed, dry_run)
    else:
        await writer.settle(run, unchanged + failed, dry_run)
    if failures and on_error == "abort" and not dry_run:
        # An input that could not be expanded is the first failure: nothing more is fetched.
        run.report.aborted = True
        writer.not_attempted(run, todo)
        return []
    return todo


def _matched_nothing(exc: Exception) -> bool:
    return isinstance(exc, S3NotFoundError) and exc.code == "NoMatch"
