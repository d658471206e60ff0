"""GrowingFile: a spool read in order while its ranges land out of order (real file, threads)."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

from dreambolt.growing import GrowingFile


async def test_a_reader_never_sees_bytes_of_ranges_not_landed(tmp_path: Path) -> None:
    data = os.urandom(300_001)
    path = tmp_path / "spool"
    with path.open("wb") as out:
        out.truncate(len(data))  # as the download does: full size, zeros until written
    growing = GrowingFile(path, len(data))
    got: list[bytes] = []
    took_first = threading.Event()

    def read() -> None:
        for piece in growing.pieces(chunk=1 << 20):
            got.append(piece)
            took_first.set()

    reader = threading.Thread(target=read)
    reader.start()
    # Unaligned boundaries, landing out of order; each range is written before it is reported.
    spans = [(0, 99), (100_000, 250_000), (100, 99_999), (250_001, 300_000)]
    fd = os.open(path, os.O_WRONLY)
    try:
        for number, (first, last) in enumerate(spans):
            os.pwrite(fd, data[first : last + 1], first)
            growing.landed((first, last))
            if number == 0:  # let the reader take the first 100 bytes before the rest exists
                await asyncio.to_thread(took_first.wait, 5)
    finally:
        os.close(fd)
    task = asyncio.get_running_loop().create_future()
    task.set_result(None)
    growing.finished(task)  # type: ignore[arg-type]
    await asyncio.to_thread(reader.join, 5)
    assert b"".join(got) == data
