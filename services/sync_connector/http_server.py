"""Serves the connector's Litestar API with uvicorn inside the connector's own event loop and process.

The socket is bound here (port 0: the system picks one, read back for ``http_url``) and handed to
uvicorn; uvicorn's signal handlers are left out, since the connector's own stop the process (and
in order: consumers first, then this server).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator

import uvicorn
from litestar import Litestar

GRACEFUL_SHUTDOWN_S = 5


class _EmbeddedServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.listening = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.listening.set()


class ApiServer:
    """The connector's API on ``host:port`` (port 0: one the system picks); ``url`` says where, once bound."""

    def __init__(self, app: Litestar, host: str, port: int) -> None:
        family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
        self._socket = socket.create_server(address, family=family)
        bound_host, bound_port = self._socket.getsockname()[:2]
        self.url = f"http://{bound_host}:{bound_port}"
        config = uvicorn.Config(
            app,
            lifespan="off",  # the runtime owns every resource the routes use
            log_config=None,
            access_log=False,
            proxy_headers=False,  # the audit log's ip is the peer's, never a header a caller writes
            ws="none",
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        )
        self._server = _EmbeddedServer(config)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Returns once the server accepts connections (raises what stopped it from starting)."""
        self._task = asyncio.create_task(self._server.serve(sockets=[self._socket]))
        listening = asyncio.create_task(self._server.listening.wait())
        await asyncio.wait({self._task, listening}, return_when=asyncio.FIRST_COMPLETED)
        if not listening.done():
            listening.cancel()
            await self._task  # raises why it ended
            raise RuntimeError("the HTTP server stopped while starting")

    async def stop(self) -> None:
        """Stops accepting, lets the requests in flight finish (up to ``GRACEFUL_SHUTDOWN_S``), closes the socket."""
        if self._task is None or self._task.done():  # never started, or already ended (start said why)
            self._socket.close()
            return
        self._server.should_exit = True
        await self._task
