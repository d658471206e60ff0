"""Prefetch: an iterator run ahead on its own thread (real threads, no mocks)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from dreambolt.prefetch import Prefetch


def test_items_arrive_in_order_and_run_on_another_thread() -> None:
    threads: set[str] = set()

    def numbers() -> Iterator[int]:
        for i in range(100):
            threads.add(threading.current_thread().name)
            yield i

    assert list(Prefetch(numbers(), depth=3, name="ahead")) == list(range(100))
    assert threads == {"ahead"}


def test_an_error_comes_after_the_items_before_it() -> None:
    def failing() -> Iterator[int]:
        yield 1
        yield 2
        raise ValueError("bad block")

    got = []
    with pytest.raises(ValueError, match="bad block"):
        for item in Prefetch(failing()):
            got.append(item)
    assert got == [1, 2]


def test_it_runs_at_most_depth_items_ahead() -> None:
    produced: list[int] = []

    def numbers() -> Iterator[int]:
        for i in range(50):
            produced.append(i)
            yield i

    ahead = Prefetch(numbers(), depth=2)
    assert next(ahead) == 0
    time.sleep(0.3)  # ample time to run ahead, were it unbounded
    # taken: 1; queued: 2; one more produced and waiting to be queued
    assert len(produced) <= 4, produced
    ahead.close()


def test_close_stops_the_thread_and_closes_the_generator_there() -> None:
    closed_on: list[str] = []

    def numbers() -> Iterator[int]:
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            closed_on.append(threading.current_thread().name)

    ahead = Prefetch(numbers(), name="parser")
    assert next(ahead) == 0
    ahead.close()
    deadline = time.monotonic() + 5
    while not closed_on and time.monotonic() < deadline:
        time.sleep(0.01)
    assert closed_on == ["parser"]
    assert list(ahead) == []  # closed: nothing more comes


def test_close_before_the_first_item_closes_the_source_without_a_thread() -> None:
    closed = []

    def numbers() -> Iterator[int]:
        try:
            yield 1
        finally:
            closed.append(True)

    gen = numbers()
    next(gen)  # started, so closing it runs its finally
    ahead = Prefetch(gen)
    ahead.close()
    assert closed == [True]
    assert list(ahead) == []
