"""aiohttp's runner, with one change: a failing response_prepare hook gives a 500.

Plain aiohttp drops the connection when an ``on_response_prepare`` receiver
raises for a response the handler *returned* (``finish_response`` does not catch
it). hookweb's request handler catches :class:`ResponsePrepareError` there and
sends aiohttp's own 500 instead. There is no per-request middleware: the cost is
one ``try`` around a call aiohttp makes anyway, and only when the app has a
response_prepare hook; without one, aiohttp's own handler serves unchanged.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler as _AiohttpRequestHandler

from .errors import ResponsePrepareError

#: hookweb's on_response_prepare receivers that run at least one hook, so can
#: raise ResponsePrepareError (``_lifecycle.prepare_signal`` adds them).
may_fail: weakref.WeakSet[Callable[..., Any]] = weakref.WeakSet()


def _can_fail(app: web.Application) -> bool:
    """Whether a hookweb response_prepare hook runs for this app or a sub-app."""
    if any(receiver in may_fail for receiver in app.on_response_prepare):
        return True
    return any(_can_fail(sub) for sub in getattr(app, "_subapps", ()))


class RequestHandler(_AiohttpRequestHandler):
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
    def __call__(self) -> RequestHandler:
        return RequestHandler(self, loop=self._loop, **self._kwargs)


class AppRunner(web.AppRunner):
    """``web.AppRunner`` serving through :class:`Server` when a hook can fail."""

    async def _make_server(self) -> web.Server:
        base = await super()._make_server()  # runs on_startup: hookweb's start steps
        if not _can_fail(self._app):
            # No hook can raise ResponsePrepareError: the wrapper would be one
            # more coroutine frame per request for nothing.
            return base
        kwargs: dict[str, Any] = dict(self._kwargs)
        kwargs.pop("handler_cancellation", None)
        return Server(
            base.request_handler,
            request_factory=base.request_factory,
            handler_cancellation=base.handler_cancellation,
            loop=asyncio.get_running_loop(),
            **kwargs,
        )
