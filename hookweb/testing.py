"""Testing helpers: the lifecycle-running test client and registry isolation.

``async with app.test_client() as client:`` runs SPEC section 2 steps 1-7
exactly once: start steps, a real socket on 127.0.0.1 with a free port,
post_start, background tasks; on exit the mirrored stop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import TYPE_CHECKING, Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from . import registry as _registry
from ._lifecycle import Run
from .errors import CleanupError, one_line
from .registry import Registry, caller_location, check_timeout

if TYPE_CHECKING:
    from .app import App

__all__ = ["TestClientContext", "isolated_registry"]

log = logging.getLogger("hookweb")

_CLIENT_NAMES = frozenset(
    {
        "get",
        "post",
        "put",
        "patch",
        "delete",
        "head",
        "options",
        "request",
        "ws_connect",
        "session",
        "port",
        "host",
        "make_url",
        "server",
        "app",
        "close",
        "start_server",
    }
)


class _Server(TestServer):
    """aiohttp's TestServer, started and stopped by hookweb's lifecycle."""

    __test__ = False

    def __init__(self, app: App, *, hook_timeout: float | None, shutdown_timeout: float) -> None:
        super().__init__(app._web_app, host="127.0.0.1", port=0)
        self.hookweb_app = app
        self._hook_timeout = hook_timeout
        self._shutdown_timeout = shutdown_timeout
        self._run: Run | None = None

    async def start_server(
        self, loop: asyncio.AbstractEventLoop | None = None, **kwargs: Any
    ) -> None:
        if self._run is not None:
            return
        run = Run(
            self.hookweb_app,
            hook_timeout=self._hook_timeout,
            managed=True,
            where=f"a test client entered at {caller_location()}",
        )
        self._run = run
        await run.start(
            lambda runner: [web.TCPSite(runner, self.host, 0)],
            shutdown_timeout=self._shutdown_timeout,
            handler_cancellation=True,
        )
        self.runner = run.runner
        self.host, self.port = run.runner.addresses[0][:2]
        self.scheme = "http"
        from yarl import URL

        self._root = URL(f"http://{self.host}:{self.port}")

    async def close(self) -> None:
        run = self._run
        if run is None or self.closed:
            return
        self._closed = True
        self._root = None
        await run.stop()


class TestClientContext:
    """What ``app.test_client()`` returns: enter it with ``async with``."""

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        app: App,
        *,
        hook_timeout: float | None = None,
        shutdown_timeout: float = 60.0,
        **client_kwargs: Any,
    ) -> None:
        check_timeout("test_client(hook_timeout=...)", hook_timeout)
        self._app = app
        self._hook_timeout = hook_timeout if hook_timeout is not None else app.hook_timeout
        self._shutdown_timeout = shutdown_timeout
        self._client_kwargs = client_kwargs
        self._client: TestClient[web.Request, web.Application] | None = None

    async def __aenter__(self) -> TestClient[web.Request, web.Application]:
        if self._client is not None:
            raise RuntimeError(
                "hookweb: this test client is already entered; call app.test_client() again"
                " for a new one"
            )
        server = _Server(
            self._app, hook_timeout=self._hook_timeout, shutdown_timeout=self._shutdown_timeout
        )
        client: TestClient[web.Request, web.Application] = TestClient(server, **self._client_kwargs)
        try:
            await client.start_server()
        except BaseException:
            await client.session.close()
            raise
        self._client = client
        return client

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        try:
            await client.close()
        except CleanupError as stop_error:
            if exc is None:
                raise
            # The test body failed too: let its exception through, unhidden, and
            # say what the stop broke (each failure was also logged).
            exc.add_note(f"{one_line(stop_error)} after the test body raised:")
            for sub in stop_error.exceptions:
                exc.add_note(f"  {one_line(sub)}")

    def __enter__(self) -> None:
        raise TypeError(
            "hookweb: use 'async with app.test_client() as client:' (not 'with'):"
            " the client runs the app's async lifecycle"
        )

    def __exit__(self, *args: object) -> None:  # pragma: no cover - __enter__ raises
        pass

    def __getattr__(self, name: str) -> Any:
        if name in _CLIENT_NAMES:
            raise RuntimeError(
                f"hookweb: enter the test client before using .{name}: write"
                " 'async with app.test_client() as client:' and use 'client' inside; a client"
                " that is not entered runs no hooks"
            )
        raise AttributeError(name)

    def __await__(self) -> Any:
        raise TypeError("hookweb: use 'async with app.test_client() as client:', not 'await'")


@contextmanager
def isolated_registry() -> Iterator[Registry]:
    """A fresh default registry for the duration of the block (or fixture).

    Module-level decorators used inside go into it, and ``App()`` without a
    registry uses it; the previous default registry is restored afterwards::

        @pytest.fixture
        def registry():
            with hookweb.testing.isolated_registry() as registry:
                yield registry
    """
    fresh = Registry("isolated")
    previous = _registry._set_default(fresh)
    try:
        yield fresh
    finally:
        _registry._set_default(previous)
