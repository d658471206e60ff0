"""A base for the test servers that run an aiohttp app in a thread of their own.

Running in its own thread and event loop, a server answers async tests and subprocesses alike
(a sync test that waits on a subprocess would otherwise starve a server on the test's loop).
"""

from __future__ import annotations

import asyncio
import socket
import threading
from types import TracebackType
from typing import Self


class ThreadedServer:
    """Lifecycle for a loopback server: `start`/`stop` or `with`; subclasses serve `_astart`."""

    name = "server"

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = 0
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._start_error: BaseException | None = None

    async def _astart(self, sock: socket.socket) -> None:
        """Start serving on `sock` (in the server's loop)."""
        raise NotImplementedError

    async def _astop(self) -> None:
        """Release what `_astart` set up (in the server's loop)."""

    def _started(self) -> None:
        """Called once the port is known (before serving starts)."""

    def start(self) -> None:
        if self._thread is not None:
            return
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        sock.listen(128)
        self.port = sock.getsockname()[1]
        self._started()
        self._ready.clear()
        self._thread = threading.Thread(
            target=self._run, args=(sock,), name=f"{self.name}-{self.port}", daemon=True
        )
        self._thread.start()
        self._ready.wait(30)
        if self._start_error is not None:
            self._thread.join()
            self._thread = None
            raise RuntimeError(f"{self.name} failed to start") from self._start_error

    def stop(self) -> None:
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        self._thread = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _run(self, sock: socket.socket) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._astart(sock))
        except BaseException as exc:  # handed to the starting thread
            self._start_error = exc
            sock.close()
            loop.run_until_complete(self._astop())
            loop.close()
            self._ready.set()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(self._astop())
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()
            self._loop = None
