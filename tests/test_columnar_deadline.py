"""The time bound on reading a Parquet/IPC file: `deadline.within`, and the columnar readers
turning a step that overruns into a per-file refusal."""

from __future__ import annotations

import io
import signal
import statistics
import subprocess
import sys
import threading
import time
from typing import Any

import pyarrow as pa
import pyarrow.ipc as pa_ipc
import pytest

from dreambolt.errors import FormatError
from dreambolt.formats import columnar
from dreambolt.formats.deadline import Overran, within
from dreambolt.formats.detect import FileFormat
from dreambolt.formats.limits import DEFAULT_LIMITS, Refused
from dreambolt.formats.parse_errors import translated


class _Panic(BaseException):
    """Stands for pyo3's PanicException, a BaseException."""


def test_within_returns_what_the_call_returns_or_raises() -> None:
    assert within(5, lambda: 42) == 42
    assert within(5, lambda: None) is None
    with pytest.raises(ValueError, match="boom"):
        within(5, lambda: int("boom"))

    def panics() -> None:
        raise _Panic("polars")

    with pytest.raises(_Panic, match="polars"):
        within(5, panics)


def test_within_runs_in_another_thread_unless_unbounded() -> None:
    here = threading.get_ident()
    assert within(5, threading.get_ident) != here
    assert within(None, threading.get_ident) == here


@pytest.mark.parametrize("seconds", [0, -1, float("inf"), float("nan")])
def test_within_wants_a_positive_finite_bound(seconds: float) -> None:
    with pytest.raises(ValueError, match="positive and finite"):
        within(seconds, lambda: 1)


def test_a_call_that_overruns_is_abandoned_not_awaited() -> None:
    gate, finished = threading.Event(), threading.Event()

    def stuck() -> None:
        gate.wait(30)
        finished.set()

    start = time.monotonic()
    with pytest.raises(Overran, match=r"it took more than 0\.2 s"):
        within(0.2, stuck)
    assert time.monotonic() - start >= 0.2
    assert not finished.is_set()  # abandoned: still running, in the background
    gate.set()
    assert finished.wait(5)


def test_the_cost_of_a_bound_is_a_fraction_of_a_millisecond() -> None:
    costs = []
    for _ in range(300):
        start = time.perf_counter()
        within(5, lambda: None)
        costs.append(time.perf_counter() - start)
    assert statistics.median(costs) < 0.002  # measured 0.015 ms on 2 cores


_ABANDON = """
import time
from dreambolt.formats.deadline import Overran, within
try:
    within(0.1, lambda: time.sleep(120))
except Overran:
    print("overran", flush=True)
"""

_INTERRUPTED = """
import time
from dreambolt.formats.deadline import within
print("waiting", flush=True)
within(60, lambda: time.sleep(120))
"""


def test_an_abandoned_call_does_not_hold_the_process_at_exit() -> None:
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", _ABANDON], capture_output=True, text=True, timeout=60
    )
    assert (done.returncode, done.stdout) == (0, "overran\n"), done.stderr
    assert time.monotonic() - start < 30  # not the 120 s the call would take


def test_ctrl_c_while_waiting_stops_at_once() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", _INTERRUPTED],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == "waiting\n"
        time.sleep(0.2)
        child.send_signal(signal.SIGINT)
        _, err = child.communicate(timeout=30)
    finally:
        child.kill()
    assert "KeyboardInterrupt" in err


# --- the readers ---------------------------------------------------------------------------------


class _Slow(io.RawIOBase):
    """A file whose reads past `slow_from` wait for `gate` (up to 300 s: a read that returns
    before the test sets the gate was abandoned, not awaited)."""

    def __init__(self, data: bytes, slow_from: int, gate: threading.Event) -> None:
        self.data, self.slow_from, self.gate, self.at = data, slow_from, gate, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        self.at = [offset, self.at + offset, len(self.data) + offset][whence]
        return self.at

    def tell(self) -> int:
        return self.at

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        if self.at + len(buffer) > self.slow_from:
            self.gate.wait(300)
        piece = self.data[self.at : self.at + len(buffer)]
        buffer[: len(piece)] = piece
        self.at += len(piece)
        return len(piece)


def _stream(batches: int) -> bytes:
    table = pa.table({"n": list(range(100 * batches))})
    sink = io.BytesIO()
    with pa_ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table, max_chunksize=100)
    return sink.getvalue()


@pytest.mark.parametrize(
    ("slow_from", "step"),
    [
        (0, "its footer and schema"),
        (200, "record batch 1"),
    ],
)
def test_a_step_that_overruns_fails_the_file(slow_from: int, step: str) -> None:
    gate = threading.Event()
    source = pa.PythonFile(_Slow(_stream(3), slow_from, gate), mode="r")
    try:
        with (
            pytest.raises(FormatError) as caught,
            translated("s3://b/slow.arrow", FileFormat("ipc")),
        ):
            list(columnar.arrow_frames(source, "ipc", 1_000, DEFAULT_LIMITS, seconds=0.3))
    finally:
        gate.set()  # let the abandoned read finish (reaching here before it proves it was)
    assert str(caught.value) == (
        f"s3://b/slow.arrow: reading {step} took more than 0.3 s, the time bound for one step "
        "of a Parquet/IPC read: the file may be corrupt in a way that makes the reader loop "
        "(the read was abandoned)"
    )


def test_a_slow_but_steady_file_is_read_whole() -> None:
    """The bound is per step, not per file: many steps may add up to more than it."""
    gate = threading.Event()
    gate.set()
    raw = _stream(20)
    source = pa.PythonFile(_Slow(raw, 0, gate), mode="r")
    frames = list(columnar.arrow_frames(source, "ipc", 1_000, DEFAULT_LIMITS, seconds=5))
    assert sum(frame.height for frame in frames) == 2_000


def test_read_arrow_is_bounded_too(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = _stream(2)
    assert columnar.read_arrow(raw, "ipc", DEFAULT_LIMITS, seconds=5).height == 200
    assert columnar.read_arrow(raw, "ipc", DEFAULT_LIMITS, seconds=None).height == 200
    assert columnar.READ_SECONDS == 30
    read = columnar._read_whole

    def stuck(*args: Any) -> Any:
        time.sleep(1)
        return read(*args)

    monkeypatch.setattr(columnar, "_read_whole", stuck)
    with pytest.raises(Refused, match=r"reading the file took more than 0\.2 s"):
        columnar.read_arrow(raw, "ipc", DEFAULT_LIMITS, seconds=0.2)


_FORKED = """
import os
from dreambolt.formats.deadline import within
assert within(5, os.getpid) != 0  # a worker now waits in this process
child = os.fork()
if child == 0:
    os._exit(0 if within(5, lambda: 7) == 7 else 1)
_, status = os.waitpid(child, 0)
print(os.waitstatus_to_exitcode(status))
"""


def test_a_forked_process_gets_workers_of_its_own() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _FORKED], capture_output=True, text=True, timeout=60
    )
    assert (done.returncode, done.stdout) == (0, "0\n"), done.stderr
