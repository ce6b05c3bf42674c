"""Checked by ``mypy --strict tests/typing`` (see .ci/run), never run.

Every decorator must give back the decorated function's exact type, bare and
with options, at module level, on a Registry and on an App.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any, assert_type

from aiohttp import web

import hookweb
from hookweb import App, Registry

reg = Registry()
app = App(reg)
KEY = web.AppKey("key", int)


async def start(app: App) -> None: ...


def sync_start(app: App) -> None: ...


async def life(app: App) -> AsyncIterator[None]:
    yield


async def prepare(request: web.Request, response: web.StreamResponse) -> None: ...


async def handler(request: web.Request) -> web.Response:
    return web.Response()


async def mw(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    return await handler(request)


StartHook = Callable[[App], Coroutine[Any, Any, None]]
PrepareHook = Callable[[web.Request, web.StreamResponse], Coroutine[Any, Any, None]]
Handler = Callable[[web.Request], Coroutine[Any, Any, web.Response]]
Next = Callable[[web.Request], Awaitable[web.StreamResponse]]
Middleware = Callable[[web.Request, Next], Coroutine[Any, Any, web.StreamResponse]]

start_hook: StartHook = start
sync_hook: Callable[[App], None] = sync_start
life_hook: Callable[[App], AsyncIterator[None]] = life
prepare_hook: PrepareHook = prepare
handler_fn: Handler = handler
middleware_fn: Middleware = mw

assert_type(hookweb.pre_start(start_hook), StartHook)
assert_type(hookweb.pre_start(order=1, timeout=2.0)(start_hook), StartHook)
assert_type(reg.post_start(sync_hook), Callable[[App], None])
assert_type(app.shutdown(timeout=1)(sync_hook), Callable[[App], None])
assert_type(app.cleanup(start_hook), StartHook)
assert_type(hookweb.lifespan(life_hook), Callable[[App], AsyncIterator[None]])
assert_type(reg.lifespan(order=-1)(life_hook), Callable[[App], AsyncIterator[None]])
assert_type(app.background(start_hook), StartHook)
assert_type(hookweb.response_prepare(prepare_hook), PrepareHook)
assert_type(reg.response_prepare(order=2)(prepare_hook), PrepareHook)
assert_type(hookweb.get("/")(handler_fn), Handler)
assert_type(app.post("/items", name="items")(handler_fn), Handler)
assert_type(reg.route("PATCH", "/x")(handler_fn), Handler)
assert_type(hookweb.middleware(middleware_fn), Middleware)
assert_type(app.middleware(order=1)(middleware_fn), Middleware)


# The decorated function stays callable with its own signature.
async def uses() -> None:
    decorated = hookweb.pre_start(start)
    await decorated(app)
    app[KEY] = 1
    assert_type(app[KEY], int)
    assert_type(app.web_app, web.Application)
    async with app.test_client() as client:
        assert_type(client.port, int | None)
