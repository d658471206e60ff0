"""Run the corpus: each file through the reference reader, `Ingester().load()` and `compare`.

Files are handed one at a time to a few worker processes (spawned, so a crash or a hang in
native code takes down a worker, never the caller). Each step (reference read, our load,
comparison) of a file gets `timeout` seconds; a step that takes longer is a `hang`, its worker
is killed and replaced.

Outcomes:
  same                    same rows, names and values, same types
  same-values-other-type  same rows, names and values; some types differ (listed)
  differs                 rows, names or some column's values differ (said which)
  refused                 DreamBolt refused the file with a DreamBoltError naming it; the
                          reference reads it
  refused-unnamed         DreamBolt refused the file, but the message does not name the file
  reference-refused       the reference reader cannot read the file (DreamBolt refusing it too
                          is right; DreamBolt loading it is reported)
  crash                   any other exception from DreamBolt, a traceback in its message, or
                          the worker process died
  hang                    no result within the time limit
  harness-error           the comparison itself failed (a bug here, not in DreamBolt)
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import multiprocessing.connection
import tempfile
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .collect import CorpusFile
from .known import known_reason

OUTCOMES = (
    "same",
    "same-values-other-type",
    "differs",
    "refused",
    "refused-unnamed",
    "reference-refused",
    "crash",
    "hang",
    "harness-error",
)
# Outcomes that fail the run unless KNOWN gives a reason (refused-unnamed and harness-error:
# always).
FAILING = frozenset({"differs", "crash", "hang"})
ALWAYS_FAILING = frozenset({"refused-unnamed", "harness-error"})
DEFAULT_TIMEOUT = 30.0


@dataclass
class Result:
    file: CorpusFile
    outcome: str
    detail: str
    seconds: float
    known: str | None = None  # the KNOWN reason, if the file is listed

    @property
    def failed(self) -> bool:
        if self.outcome in ALWAYS_FAILING:
            return True
        return self.outcome in FAILING and self.known is None

    def line(self) -> str:
        known = f" [KNOWN: {self.known}]" if self.known and self.outcome != "same" else ""
        detail = f"  {self.detail}" if self.detail else ""
        return f"{self.outcome:<22} {self.file.id}{detail}{known}"


def names_file(message: str, path: Path) -> bool:
    """Whether an error message names the file (its path or its file:// URI)."""
    return str(path) in message or path.as_uri() in message


def _where(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return ""
    last = frames[-1]
    return f" at {Path(last.filename).name}:{last.lineno}"


def _shape(rows: int, cols: int) -> str:
    return f"{rows} rows x {cols} columns"


async def _load_ours(path: Path, db: Path, options: dict[str, Any]) -> Any:
    from dreambolt import CsvOptions, Ingester

    async with Ingester(db=db, csv=CsvOptions(**options)) as ing:
        return await ing.load(str(path))


def evaluate(file: CorpusFile, phase: Callable[[str], None] = lambda _: None) -> tuple[str, str]:
    """(outcome, detail) of one file; runs in a worker process."""
    from dreambolt.errors import DreamBoltError

    from .compare import compare
    from .reference import ReferenceRefused, read_reference

    phase("reading it with the reference reader")
    ref_error = ""
    try:
        ref = read_reference(file)
    except ReferenceRefused as exc:
        ref, ref_error = None, str(exc)
    phase("loading it with Ingester().load()")  # with CsvOptions(**file.options)
    try:
        with tempfile.TemporaryDirectory(prefix="corpus-") as tmp:
            # load() writes nothing; the database path is never opened.
            frame = asyncio.run(
                _load_ours(file.path, Path(tmp) / "unused.duckdb", dict(file.options))
            )
    except DreamBoltError as exc:
        message = f"{type(exc).__name__}: {exc}"
        if "Traceback (most recent call last)" in message:
            return "crash", f"traceback in the message: {message}"
        if not names_file(str(exc), file.path):
            return "refused-unnamed", message
        if ref is None:
            return "reference-refused", f"both refuse; ours: {message} | reference: {ref_error}"
        return "refused", (
            f"{message} | reference reads {_shape(ref.table.num_rows, ref.table.num_columns)}"
        )
    except Exception as exc:
        return "crash", f"{type(exc).__name__}: {exc}{_where(exc)}"
    if ref is None:
        return "reference-refused", (
            f"ours loads {_shape(frame.height, frame.width)} | reference: {ref_error}"
        )
    phase("comparing")
    try:
        result = compare(
            ref.table,
            frame.to_arrow(),
            date_format=ref.date_format,
            timestamp_format=ref.timestamp_format,
        )
    except Exception as exc:
        return "harness-error", f"{type(exc).__name__}: {exc}{_where(exc)}"
    return result.outcome, result.detail


def _worker(conn: multiprocessing.connection.Connection) -> None:
    # Import everything first, so the time limit counts the file alone.
    import dreambolt  # noqa: F401

    from . import compare, reference  # noqa: F401

    conn.send(("ready",))
    while True:
        file = conn.recv()
        if file is None:
            return
        started = time.monotonic()
        outcome, detail = evaluate(file, lambda p: conn.send(("phase", p)))
        conn.send(("result", outcome, detail, time.monotonic() - started))


class _Worker:
    def __init__(self, ctx: Any) -> None:
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker, args=(child,), daemon=True)
        self.proc.start()
        child.close()
        self.ready = False
        self.file: CorpusFile | None = None
        self.started = 0.0
        self.phase = ""
        self.phase_started = 0.0

    def assign(self, file: CorpusFile) -> None:
        self.file, self.phase = file, "starting"
        self.started = self.phase_started = time.monotonic()
        self.conn.send(file)

    def stop(self) -> None:
        if self.proc.is_alive():
            with contextlib.suppress(OSError):
                self.conn.send(None)
            self.proc.join(5)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)
        self.conn.close()


def run(
    files: Iterable[CorpusFile],
    *,
    jobs: int = 2,
    timeout: float = DEFAULT_TIMEOUT,
    on_result: Callable[[Result], None] | None = None,
) -> list[Result]:
    """Evaluate every file in `jobs` worker processes; results in the order they finish."""
    ctx = multiprocessing.get_context("spawn")
    pending = deque(files)
    results: list[Result] = []
    workers: list[_Worker] = []

    def finish(worker: _Worker, outcome: str, detail: str, seconds: float) -> None:
        assert worker.file is not None
        result = Result(worker.file, outcome, detail, seconds, known_reason(worker.file.id))
        worker.file = None
        results.append(result)
        if on_result is not None:
            on_result(result)

    try:
        workers = [_Worker(ctx) for _ in range(max(1, min(jobs, len(pending))))]
        while pending or any(w.file is not None for w in workers):
            for w in workers:
                if w.ready and w.file is None and pending:
                    w.assign(pending.popleft())
            busy = [w for w in workers if w.file is not None]
            deadlines = [w.phase_started + timeout for w in busy]
            wait_for = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
            by_conn = {w.conn: w for w in workers if w.file is not None or not w.ready}
            for conn in multiprocessing.connection.wait(list(by_conn), wait_for):
                worker = by_conn[conn]
                try:
                    message = worker.conn.recv()
                except (EOFError, OSError):
                    worker.proc.join(5)
                    if worker.file is None:
                        raise RuntimeError(
                            f"corpus worker died on start-up (exit code {worker.proc.exitcode})"
                        ) from None
                    finish(
                        worker,
                        "crash",
                        f"worker process died (exit code "
                        f"{worker.proc.exitcode}) while {worker.phase}",
                        time.monotonic() - worker.started,
                    )
                    workers[workers.index(worker)] = _Worker(ctx)
                    worker.stop()
                    continue
                if message[0] == "ready":
                    worker.ready = True
                elif message[0] == "phase":
                    worker.phase, worker.phase_started = message[1], time.monotonic()
                else:
                    finish(worker, message[1], message[2], message[3])
            now = time.monotonic()
            for i, worker in enumerate(workers):
                if worker.file is not None and now - worker.phase_started > timeout:
                    worker.proc.kill()
                    finish(
                        worker,
                        "hang",
                        f"still {worker.phase} after {timeout:.0f} s",
                        now - worker.started,
                    )
                    worker.stop()
                    workers[i] = _Worker(ctx)
    finally:
        for worker in workers:
            worker.stop()
    return results
