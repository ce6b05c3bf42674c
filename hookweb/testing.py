"""Testing helpers: the lifecycle-running test client and registry isolation.

``async with app.test_client() as client:`` runs SPEC section 2 steps 1-7
exactly once: start steps, a real socket on 127.0.0.1 with a free port,
post_start, background tasks; on exit the mirrored stop. See docs/testing.md.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer
from aiohttp.typedefs import StrOrURL
from yarl import URL

from . import registry as _registry
from ._lifecycle import Run
from ._serve import STOP_TIMEOUT_MARGIN
from .errors import CleanupError, StopTimeoutError, one_line
from .registry import Registry, caller_location, check_timeout

if TYPE_CHECKING:
    from .app import App

__all__ = ["ClientFactory", "TestClientContext", "isolated_registry"]

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

_SAME_LOOP_RECIPE = (
    "give the fixture that enters the client and the tests that use it the same loop scope,"
    ' for example @pytest_asyncio.fixture(scope="module", loop_scope="module") with'
    ' @pytest.mark.asyncio(loop_scope="module") on the tests (see docs/testing.md)'
)


class _Server(TestServer):
    """aiohttp's TestServer, started and stopped by hookweb's lifecycle."""

    __test__ = False

    def __init__(
        self,
        app: App,
        *,
        hook_timeout: float | None,
        shutdown_timeout: float,
        stop_timeout: float,
        where: str,
    ) -> None:
        super().__init__(app._web_app, host="127.0.0.1", port=0)
        self.hookweb_app = app
        self._hook_timeout = hook_timeout
        self._shutdown_timeout = shutdown_timeout
        self._stop_timeout = stop_timeout
        self._where = where
        self._run: Run | None = None

    async def start_server(
        self, loop: asyncio.AbstractEventLoop | None = None, **kwargs: Any
    ) -> None:
        if self._run is not None:
            return
        run = Run(
            self.hookweb_app, hook_timeout=self._hook_timeout, managed=True, where=self._where
        )
        # On failure run.start has unwound everything it started; nothing to close here.
        await run.start(
            lambda runner: [web.TCPSite(runner, self.host, 0)],
            shutdown_timeout=self._shutdown_timeout,
            handler_cancellation=True,
        )
        self._run = run
        self.runner = run.runner
        self.host, self.port = run.runner.addresses[0][:2]
        self.scheme = "http"
        self._root = URL(f"http://{self.host}:{self.port}")

    async def close(self) -> None:
        run = self._run
        if run is None or self.closed:
            return
        self._closed = True
        self._root = None
        cancelled = ""

        def on_timeout(stopping: asyncio.Task[Any]) -> None:
            nonlocal cancelled
            cancelled = run.step_now()
            stopping.cancel()

        task = asyncio.current_task()
        assert task is not None
        timer = asyncio.get_running_loop().call_later(self._stop_timeout, on_timeout, task)
        try:
            await run.stop()
        except (asyncio.CancelledError, CleanupError):
            if not cancelled:
                raise
        finally:
            timer.cancel()
        if cancelled:  # also when the step swallowed the cancel and the stop went on
            task.uncancel()
            raise run.stop_timed_out(self._stop_timeout, cancelled) from None


class _Client(TestClient[web.Request, web.Application]):
    """aiohttp's TestClient, refusing requests it cannot serve instead of hanging.

    Its server runs on the event loop the client was entered on; a request
    made from another loop (a module-scoped fixture used by a function-loop
    test) would wait for a loop that is not running.
    """

    __test__ = False

    def __init__(self, server: _Server, app_name: str, **kwargs: Any) -> None:
        super().__init__(server, **kwargs)
        self._hookweb_loop = asyncio.get_running_loop()
        self._hookweb_app_name = app_name
        self._hookweb_exited = False

    def _hookweb_check(self, what: str) -> None:
        if self._hookweb_exited:
            raise RuntimeError(
                f"hookweb: cannot {what}: the test client of App {self._hookweb_app_name!r}"
                " has exited and its server is stopped; make requests inside"
                " 'async with app.test_client() as client:'"
            )
        if asyncio.get_running_loop() is not self._hookweb_loop:
            raise RuntimeError(
                f"hookweb: cannot {what}: the test client of App {self._hookweb_app_name!r}"
                " was entered on another event loop than the one running this request, and"
                f" its server only runs on that loop; {_SAME_LOOP_RECIPE}"
            )

    async def _request(self, method: str, path: StrOrURL, **kwargs: Any) -> ClientResponse:
        self._hookweb_check(f"request {method} {path}")
        return await super()._request(method, path, **kwargs)

    async def _ws_connect(self, path: StrOrURL, **kwargs: Any) -> Any:
        self._hookweb_check(f"open a websocket to {path}")
        return await super()._ws_connect(path, **kwargs)


class TestClientContext:
    """What ``app.test_client()`` returns: enter it with ``async with``.

    Entering runs the start side of the lifecycle once (pre_start hooks and
    lifespan entries, binding 127.0.0.1 on a free port, post_start hooks with
    ``app.addresses`` set, background tasks) and yields an
    ``aiohttp.test_utils.TestClient``; exiting runs the stop side once.

    - A start failure raises the original exception (its note names the hook)
      after everything started was unwound and the client session closed.
    - A stop failure raises :class:`hookweb.CleanupError` after every stop step
      ran. When the ``async with`` body raised too, the body's exception
      propagates unchanged, with one note per failed stop step (each failure
      is also logged with its traceback on the ``hookweb`` logger).
    - The same context object (or a new ``app.test_client()``) can be entered
      again after it exited; one App runs one lifecycle at a time, so entering a
      second client of an App that is running raises ``RuntimeError``.
    """

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        app: App,
        *,
        hook_timeout: float | None = None,
        shutdown_timeout: float = 60.0,
        stop_timeout: float | None = None,
        **client_kwargs: Any,
    ) -> None:
        check_timeout("test_client(hook_timeout=...)", hook_timeout)
        check_timeout("test_client(stop_timeout=...)", stop_timeout)
        self._app = app
        self._hook_timeout = hook_timeout if hook_timeout is not None else app.hook_timeout
        self._shutdown_timeout = shutdown_timeout
        self._stop_timeout = (
            stop_timeout if stop_timeout is not None else shutdown_timeout + STOP_TIMEOUT_MARGIN
        )
        self._client_kwargs = client_kwargs
        self._client: _Client | None = None

    async def __aenter__(self) -> TestClient[web.Request, web.Application]:
        if self._client is not None:
            raise RuntimeError(
                "hookweb: this test client is already entered; call app.test_client() again"
                " for a new one"
            )
        self._app._build()  # here, so "built at" names the test, not aiohttp
        server = _Server(
            self._app,
            hook_timeout=self._hook_timeout,
            shutdown_timeout=self._shutdown_timeout,
            stop_timeout=self._stop_timeout,
            where=f"a test client entered at {caller_location()}",
        )
        client = _Client(server, self._app.name, **self._client_kwargs)
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
            # The body failed too: let its exception through, unhidden, and say
            # what the stop broke (each failure was also logged in full).
            exc.add_note(f"{stop_error.message} after the test body raised:")
            for sub in stop_error.exceptions:
                exc.add_note(f"  {one_line(sub)}")
        except StopTimeoutError as late:
            if exc is None:
                raise
            exc.add_note(f"{one_line(late)} (after the test body raised)")
        finally:
            client._hookweb_exited = True

    def __enter__(self) -> None:
        raise TypeError(
            "hookweb: use 'async with app.test_client() as client:' (not 'with'):"
            " the client runs the app's async lifecycle"
        )

    def __exit__(self, *args: object) -> None:  # pragma: no cover - __enter__ raises
        pass

    def __getattr__(self, name: str) -> Any:
        if name in _CLIENT_NAMES:
            if self.__dict__.get("_client") is not None:
                raise RuntimeError(
                    f"hookweb: use .{name} on the client that 'async with' gives you"
                    " ('async with app.test_client() as client:'), not on"
                    " app.test_client() itself"
                )
            raise RuntimeError(
                f"hookweb: enter the test client before using .{name}: write"
                " 'async with app.test_client() as client:' and use 'client' inside; a client"
                " that is not entered runs no hooks"
            )
        raise AttributeError(name)

    def __await__(self) -> Any:
        raise TypeError("hookweb: use 'async with app.test_client() as client:', not 'await'")


class ClientFactory(Protocol):
    """The type of the ``hookweb_client`` fixture: ``client = await hookweb_client(app)``.

    Options are those of ``app.test_client()``. Each client is exited when the
    test ends, the newest first.
    """

    async def __call__(
        self, app: App, /, **options: Any
    ) -> TestClient[web.Request, web.Application]: ...


@contextmanager
def isolated_registry(name: str = "isolated") -> Iterator[Registry]:
    """A fresh default registry for the duration of the block (or fixture).

    Module-level decorators (``@hookweb.pre_start``, ``@hookweb.get(...)``)
    used inside register into it, and ``App()`` without a registry uses it;
    the previous default registry is restored afterwards, so nothing a test
    registers fires in another test's App::

        @pytest.fixture
        def registry():
            with hookweb.testing.isolated_registry() as registry:
                yield registry

    (The ``hookweb_registry`` fixture of hookweb's pytest plugin is exactly this.)
    Use it as a ``with`` block or a fixture, not as a decorator of an ``async def``
    test: a decorator would restore the registry before the test body runs.
    """
    fresh = Registry(name)
    previous = _registry._set_default(fresh)
    try:
        yield fresh
    finally:
        _registry._set_default(previous)
