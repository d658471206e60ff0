"""DuckDB's memory_limit: the sink's cap, raised while a wide table is written.

While DuckDB appends rows it keeps one buffer pinned per column (about 32-40 KiB each, and they
cannot be spilled), so a table of 10,000 columns needs some 400 MiB whatever the cap: under a
192 MB cap the first CREATE TABLE of such a frame fails with Out of Memory. The cap exists to
stop DuckDB's buffer pool from keeping every block it wrote; it is raised by 64 KiB per column
for the writes that need it and put back when they end. Those writes also run on one thread:
each appending thread pins its own set of buffers (measured: 10,000 columns added to a table of
1,000 rows peaked at 858 MiB RSS on two threads, 734 MiB on one).

memory_limit belongs to the database instance, which every connection to one file in this
process shares (two Ingesters on one file, say): the raised caps of all of them are kept in one
place, and the limit set is the largest that any write in progress needs.
"""

from __future__ import annotations

import re
import threading
from typing import Any

from dreambolt.errors import SinkError

__all__ = ["PER_COLUMN", "MemoryCap", "parse_size"]

PER_COLUMN = 64 << 10
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([KMGT]?)(i?)B$", re.IGNORECASE)
_POWERS = {"": 0, "K": 1, "M": 2, "G": 3, "T": 4}

_lock = threading.Lock()
_needs: dict[str, dict[int, int]] = {}  # database -> {cap id: bytes its write needs}
_threads: dict[str, int] = {}  # database -> its thread count before the first wide write


def parse_size(text: str) -> int:
    """Bytes in a DuckDB size such as '192MB' (1000-based) or '1GiB' (1024-based)."""
    match = _SIZE.match(text.strip())
    if not match:
        raise SinkError(
            f"invalid DuckDB memory limit {text!r}; write e.g. '256MB'",
            code="InvalidSetting",
            fatal=True,
        )
    number, unit, binary = match.groups()
    return int(float(number) * (1024 if binary else 1000) ** _POWERS[unit.upper()])


class MemoryCap:
    """The memory_limit of one connection's database: `base`, or what a wide write needs."""

    def __init__(self, con: Any, database: str, base: int | None) -> None:
        self.con = con
        self.database = database
        self.base = base
        self._raised = 0

    def apply(self) -> None:
        """Set the cap (at opening: DuckDB's default is 80% of the machine's memory)."""
        if self.base is not None:
            with _lock:
                self._set()

    def need(self, columns: int) -> None:
        """Make room for appending to a table of `columns` columns (until `release`)."""
        if self.base is None:
            return  # no cap
        want = self.base + columns * PER_COLUMN
        if want <= max(self.base * 2, self._raised):
            return  # narrow enough for the cap as it is
        with _lock:
            needs = _needs.setdefault(self.database, {})
            if not needs:
                rows = self.con.execute("SELECT current_setting('threads')").fetchall()
                _threads[self.database] = int(rows[0][0])
                self.con.execute("SET threads = 1")
            needs[id(self)] = want
            self._raised = want
            self._set()

    def release(self) -> None:
        """Back to the cap (or what another write to this database still needs)."""
        if not self._raised:
            return
        with _lock:
            needs = _needs.get(self.database, {})
            needs.pop(id(self), None)
            self._raised = 0
            self._set()
            if not needs:
                _needs.pop(self.database, None)
                threads = _threads.pop(self.database, None)
                if threads is not None:
                    self.con.execute(f"SET threads = {threads}")

    def _set(self) -> None:
        assert self.base is not None
        limit = max([self.base, *_needs.get(self.database, {}).values()])
        self.con.execute(f"SET memory_limit = '{limit}B'")
