"""The service's HTTP endpoints (`--listen HOST:PORT`): `/livez`, `/readyz`, `/metrics`.

`/livez` answers 200 while the process serves; `/readyz` 200 once the first listing (or the
queue) is being served and 503 while starting or draining, so a load balancer or Kubernetes
stops sending work; `/metrics` is the Prometheus text format. aiohttp serves them on the
service's event loop.
"""

from __future__ import annotations

import socket
from collections.abc import Callable

from aiohttp import web

from dreambolt.watch.metrics import CONTENT_TYPE, WatchMetrics

__all__ = ["HealthServer"]


class HealthServer:
    """Serves the endpoints on `host:port` (port 0: any free port, see `port`)."""

    def __init__(self, host: str, port: int, metrics: WatchMetrics, state: Callable[[], str]):
        self.host, self.port = host, port
        self._metrics = metrics
        self._state = state
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/livez", self._livez)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics_page)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        # The socket is bound here, so that port 0 gives a port this object can report.
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
        except OSError:
            sock.close()
            await self._runner.cleanup()
            raise
        self.port = int(sock.getsockname()[1])
        await web.SockSite(self._runner, sock).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _livez(self, _: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _readyz(self, _: web.Request) -> web.Response:
        state = self._state()
        return web.Response(text=f"{state}\n", status=200 if state == "ready" else 503)

    async def _metrics_page(self, _: web.Request) -> web.Response:
        body = self._metrics.render()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})
