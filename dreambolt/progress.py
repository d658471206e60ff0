"""Rich progress and summaries for the CLI (the library itself never imports rich)."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from dreambolt.report import FileResult, IngestReport

__all__ = ["RichListener", "human_bytes", "print_plan", "print_summary"]


_STYLE = {
    "loaded": "green",
    "unchanged": "dim",
    "skipped": "yellow",
    "failed": "red",
    "planned": "cyan",
}


def human_bytes(n: float) -> str:
    """1536 -> '1.5 KiB'."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


class RichListener:
    """Draws an overall bar plus one line per active transfer; in a non-TTY, one line per file.

    Implements `dreambolt.report.Listener`.
    """

    def __init__(self, console: Console, *, quiet: bool = False) -> None:
        self.console = console
        self.quiet = quiet
        self.live = console.is_terminal and not quiet
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(binary_units=True),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=True,
        )
        self._overall: TaskID | None = None
        self._active: dict[str, TaskID] = {}

    def __enter__(self) -> RichListener:
        if self.live:
            self.progress.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.live:
            self.progress.stop()

    def planned(self, files: int, total_bytes: int) -> None:
        if not self.live:
            return
        self._overall = self.progress.add_task(f"[bold]{files} file(s)", total=total_bytes)

    def started(self, uri: str, size: int) -> None:
        if self.live:
            self._active[uri] = self.progress.add_task(
                "  " + escape(_short(uri)), total=size or None
            )

    def advanced(self, uri: str, nbytes: int) -> None:
        if not self.live:
            return
        task = self._active.get(uri)
        if task is not None:
            self.progress.update(task, advance=nbytes)
        if self._overall is not None:
            self.progress.update(self._overall, advance=nbytes)

    def finished(self, result: FileResult) -> None:
        task = self._active.pop(result.uri, None)
        if task is not None:
            self.progress.remove_task(task)
        if self.quiet:
            return
        if result.status == "unchanged" and not self.live:
            return  # a re-run of a big batch should not print a line per untouched file
        line = f"[{_STYLE[result.status]}]{result.status:>9}[/] {escape(result.uri)}"
        if result.status == "loaded":
            line += f"  {result.rows:,} rows, {human_bytes(result.bytes)}"
            if result.replaced:
                line += " (replaced earlier version)"
        elif result.error is not None:
            line += f"\n          {escape(reason(result))}"
        if result.status != "unchanged":
            self.console.print(line, highlight=False, soft_wrap=True)


def reason(result: FileResult) -> str:
    """Why a file was not loaded, without repeating its URI (messages start with it)."""
    if result.error is None:
        return "unknown"
    message = result.error.message
    return message.removeprefix(result.uri + ": ")


def _short(uri: str, width: int = 60) -> str:
    return uri if len(uri) <= width else "…" + uri[-(width - 1) :]


def print_summary(console: Console, report: IngestReport) -> None:
    """The end-of-run table: counts, rows, bytes, throughput, time, and every problem file."""
    totals = report.totals()
    table = Table(title=f"DreamBolt → {report.table} ({report.db})", title_justify="left")
    for name in ("loaded", "unchanged", "skipped", "failed", "rows", "bytes", "throughput", "time"):
        table.add_column(name, justify="right")
    seconds = max(report.seconds, 1e-9)
    table.add_row(
        str(totals["loaded"]),
        str(totals["unchanged"]),
        str(totals["skipped"]),
        str(totals["failed"]),
        f"{totals['rows']:,}",
        human_bytes(totals["bytes"]),
        f"{human_bytes(totals['bytes'] / seconds)}/s",
        f"{report.seconds:.2f} s",
    )
    console.print(table)
    if report.embedding:
        e = report.embedding
        console.print(
            f"embeddings ({e['model']}): {e['texts']:,} texts, {e['embedded']:,} "
            f"embedded, {e['cached']:,} from cache, {e['truncated']:,} truncated, "
            f"{e['tokens_sent']:,} tokens sent in {e['requests']:,} requests",
            highlight=False,
        )
    problems = [f for f in report.files if f.status in ("skipped", "failed")]
    for result in problems:
        console.print(
            f"[{_STYLE[result.status]}]{result.status}[/] {escape(result.uri)}: "
            f"{escape(reason(result))}",
            highlight=False,
            soft_wrap=True,
        )
    if report.aborted:
        console.print("[red]aborted[/] at the first failure (--on-error abort)")


def print_plan(console: Console, report: IngestReport) -> None:
    """What a dry run found: per object, what a real run would do."""
    table = Table(title=f"dry run → table {report.table} ({report.db})", title_justify="left")
    embedding = report.embedding is not None
    columns = [("action", "left"), ("size", "right")]
    columns += [("texts", "right"), ("tokens", "right")] if embedding else []
    for name, justify in [*columns, ("object", "left")]:
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    counts: dict[str, int] = {}
    total = 0
    for result in report.files:
        action = result.action or result.status
        counts[action] = counts.get(action, 0) + 1
        if action in ("new", "changed"):
            total += result.bytes
        cells = [action, human_bytes(result.bytes)]
        if embedding:
            cells += [f"{result.texts or 0:,}", f"{result.tokens or 0:,}"]
        table.add_row(*cells, escape(result.uri))
    console.print(table)
    summary = ", ".join(f"{n} {name}" for name, n in sorted(counts.items()))
    console.print(f"{summary}; {human_bytes(total)} would be downloaded")
    if embedding:
        texts = sum(f.texts or 0 for f in report.files)
        tokens = sum(f.tokens or 0 for f in report.files)
        console.print(f"embedding would send {texts:,} texts, about {tokens:,} tokens")
