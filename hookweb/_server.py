"""aiohttp's runner, with one change: a failing response_prepare hook gives a 500.

Plain aiohttp drops the connection when an ``on_response_prepare`` receiver
raises for a response the handler *returned* (``finish_response`` does not catch
it). hookweb's request handler catches :class:`ResponsePrepareError` there and
sends aiohttp's own 500 instead. There is no per-request middleware: the cost is
one ``try`` around a call aiohttp makes anyway, and only when the app has a
response_prepare hook; without one, aiohttp's own handler serves unchanged.

Two more changes, which cost nothing per request: the stop waits
``shutdown_timeout`` once for an in-flight handler, then cancels it for real
(aiohttp waits a second ``shutdown_timeout`` after a "cancel" that only fails
the request body); and the 400 aiohttp sends for a request it cannot parse goes
through the response_prepare hooks too (see docs/security.md).
"""

from __future__ import annotations

import asyncio
import functools
import weakref
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestHandler as _AiohttpRequestHandler
from aiohttp.web_urldispatcher import MatchInfoError

from .errors import ResponsePrepareError

#: hookweb's on_response_prepare receivers that run at least one hook, so can
#: raise ResponsePrepareError (``_lifecycle.prepare_signal`` adds them).
may_fail: weakref.WeakSet[Callable[..., Any]] = weakref.WeakSet()


def _can_fail(app: web.Application) -> bool:
    """Whether a hookweb response_prepare hook runs for this app or a sub-app."""
    if any(receiver in may_fail for receiver in app.on_response_prepare):
        return True
    return any(_can_fail(sub) for sub in getattr(app, "_subapps", ()))


def _one_line(exc: HttpProcessingError) -> str:
    """aiohttp's parse error message without its layout: the caret line goes."""
    lines = [line.strip() for line in (exc.message or type(exc).__name__).splitlines()]
    text = " ".join(line for line in lines if line and line != "^")
    return text if len(text) <= 200 else text[:197] + "..."


#: Seconds a handler still running at ``shutdown_timeout`` gets to unwind after
#: it was cancelled (its ``finally`` blocks), before the connection is closed.
CANCEL_GRACE = 1.0


class GracefulRequestHandler(_AiohttpRequestHandler):
    """aiohttp's handler with a stop that waits ``shutdown_timeout`` once."""

    _hookweb_unparsable: BaseException | None = None  # the parser's error being answered

    async def shutdown(self, timeout: float | None = 15.0) -> None:
        # aiohttp's own shutdown waits `timeout` for the handler, then "cancels"
        # the request (which only fails its body stream: a handler awaiting
        # anything else never notices) and waits `timeout` again. Here the
        # handler is cancelled for real after the first wait, then gets
        # CANCEL_GRACE seconds to unwind.
        self._force_close = True
        if self._keepalive_handle is not None:
            self._keepalive_handle.cancel()
        if self._request_in_progress:
            waiter = self._handler_waiter = self._loop.create_future()
            await asyncio.wait((waiter,), timeout=timeout)  # a cancel of *us* propagates
            self._handler_waiter = None
        task = self._task_handler
        if task is not None and not task.done():
            grace: float | None
            if self._request_in_progress:
                if self._current_request is not None:
                    self._current_request._cancel(asyncio.CancelledError())
                task.cancel()
                grace = CANCEL_GRACE if timeout is None else min(timeout, CANCEL_GRACE)
            else:
                grace = timeout  # the response is out: let the connection task finish
            await asyncio.wait((task,), timeout=grace)
        if self._task_handler is not None:
            self._task_handler.cancel()
        self.force_close()

    def log_exception(self, *args: Any, **kw: Any) -> None:
        exc = kw.get("exc_info")
        # A failing response_prepare hook was reported in hookweb's one-line
        # format already (``_lifecycle._prepare_failed``): no second traceback.
        if isinstance(exc, ResponsePrepareError):
            return
        # A request aiohttp cannot parse is the client's error, answered with a
        # 400: one line at WARNING (the traceback only at DEBUG), so garbage
        # input cannot flood the log with tracebacks. (Only the parser's error: the
        # same exception class raised by a handler is a 500, logged as aiohttp does.)
        if isinstance(exc, HttpProcessingError) and exc is self._hookweb_unparsable:
            peer = args[1] if len(args) > 1 else None
            self.logger.warning("Bad request from %s: %s %s", peer, exc.code, _one_line(exc))
            self.logger.debug(*args, **kw)
            return
        super().log_exception(*args, **kw)

    def _make_error_handler(self, err_info: Any) -> Callable[[web.BaseRequest], Any]:
        # aiohttp answers a request it cannot parse (bad request line or
        # headers) with a 400 from a request that matched no route, so no
        # on_response_prepare receiver runs for it. Give it a match info for
        # the root application, as aiohttp does for a 404, so they do.
        handler = super()._make_error_handler(err_info)
        app = getattr(self._request_handler, "__self__", None)

        async def error_handler(request: web.BaseRequest) -> web.StreamResponse:
            self._hookweb_unparsable = getattr(err_info, "exc", None)  # see log_exception
            response: web.StreamResponse = await handler(request)
            if (
                isinstance(app, web.Application)
                and isinstance(request, web.Request)
                and request._match_info is None
            ):
                match_info = MatchInfoError(web.HTTPBadRequest())
                match_info.add_app(app)
                match_info.freeze()
                request._match_info = match_info
            return response

        return error_handler


class RequestHandler(GracefulRequestHandler):
    async def finish_response(
        self, request: web.BaseRequest, resp: web.StreamResponse, start_time: float | None
    ) -> tuple[web.StreamResponse, bool]:
        try:
            return await super().finish_response(request, resp, start_time)
        except ResponsePrepareError as exc:
            # Nothing was written yet: answer with aiohttp's plain 500 (no detail
            # unless debug), which response_prepare hooks see too.
            error = self.handle_error(request, 500, exc)
            return await super().finish_response(request, error, start_time)


class Server(web.Server):
    handler_class: type[GracefulRequestHandler] = RequestHandler

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: Connections accepted whose protocol is not connected yet: a TLS handshake
        #: in progress (aiohttp's ``connections`` has them only once it is done).
        self.handshaking: weakref.WeakSet[_AiohttpRequestHandler] = weakref.WeakSet()

    def __call__(self) -> GracefulRequestHandler:
        handler = self.handler_class(self, loop=self._loop, **self._kwargs)
        self.handshaking.add(handler)
        return handler

    def connection_made(self, handler: _AiohttpRequestHandler, transport: Any) -> None:
        self.handshaking.discard(handler)
        super().connection_made(handler, transport)


class GracefulServer(Server):
    """For an app no response_prepare hook can fail: no per-request wrapper."""

    handler_class = GracefulRequestHandler


def _tracking_request(websockets: weakref.WeakSet[web.WebSocketResponse]) -> type[web.Request]:
    """A Request class that adds each websocket it answers to ``websockets``.

    That is how the stop finds open websockets to close with 1001, at the cost
    of one type lookup per response (no signal receiver, no middleware).
    """
    is_websocket: dict[type, bool] = {}  # issubclass() through ABCMeta only once per class

    class TrackingRequest(web.Request):
        __slots__ = ()

        async def _prepare_hook(self, response: web.StreamResponse) -> None:
            cls = response.__class__
            ws = is_websocket.get(cls)
            if ws is None:
                ws = is_websocket[cls] = issubclass(cls, web.WebSocketResponse)
            if ws:
                websockets.add(response)  # type: ignore[arg-type]
            await super()._prepare_hook(response)

    return TrackingRequest


class AppRunner(web.AppRunner):
    """``web.AppRunner`` serving through hookweb's :class:`Server` (or :class:`GracefulServer`).

    ``websockets``: where the websockets this runner answers are collected.
    """

    def __init__(
        self,
        app: web.Application,
        *,
        websockets: weakref.WeakSet[web.WebSocketResponse] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(app, **kwargs)
        self._request_class = _tracking_request(
            websockets if websockets is not None else weakref.WeakSet()
        )

    async def _make_server(self) -> web.Server:
        base = await super()._make_server()  # runs on_startup: hookweb's start steps
        # No hook can raise ResponsePrepareError: the finish_response wrapper
        # would be one more coroutine frame per request for nothing.
        server = Server if _can_fail(self._app) else GracefulServer
        kwargs: dict[str, Any] = dict(base._kwargs)  # debug, handler_args included
        kwargs.pop("handler_cancellation", None)
        factory = base.request_factory  # the Application's _make_request (or a wrapper)
        cls = self._request_class

        def make_request(*args: Any) -> web.BaseRequest:
            return factory(*args, cls)  # type: ignore[call-arg]

        request_factory = (
            functools.partial(factory, _cls=cls)  # type: ignore[call-arg]
            if getattr(factory, "__func__", None) is web.Application._make_request
            else make_request
        )
        return server(
            base.request_handler,
            request_factory=request_factory,
            handler_cancellation=base.handler_cancellation,
            loop=asyncio.get_running_loop(),
            **kwargs,
        )
