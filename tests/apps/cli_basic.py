"""Fixture app for the CLI tests: module-level decorators, routes, factories, wrong types."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from cli_markers import record

from hookweb import App, Registry, cleanup, get, middleware, post_start, pre_start, shutdown


@pre_start(timeout=5)
async def open_db(app: App) -> None:
    record("pre_start")


@post_start
def announce(app: App) -> None:
    record(f"post_start {' '.join(app.urls)}")


@shutdown(order=-1)
async def say_bye(app: App) -> None:
    record("shutdown")


@cleanup
async def close_db(app: App) -> None:
    record("cleanup")


@middleware
async def tag(request: web.Request, handler: Any) -> web.StreamResponse:
    response: web.StreamResponse = await handler(request)
    response.headers["X-Tag"] = "cli"
    return response


@get("/")
async def index(request: web.Request) -> web.Response:
    return web.Response(text="ok")


@get("/slow")
async def slow(request: web.Request) -> web.Response:
    await asyncio.sleep(2)
    return web.Response(text="done")


@get("/work")
async def work(request: web.Request) -> web.Response:
    await asyncio.sleep(1)
    record("work finished")
    return web.Response(text="finished")


@get("/forever")
async def forever(request: web.Request) -> web.Response:
    await asyncio.sleep(30)
    return web.Response(text="never")


app = App(name="cli_basic")
other = App(Registry())


class Holder:
    app = app


holder = Holder()
number = 5


def _factory_app(label: str) -> App:
    reg = Registry()

    @reg.pre_start
    async def factory_start(app: App) -> None:
        record(f"pre_start {label}")

    @reg.get("/")
    async def hello(request: web.Request) -> web.Response:
        return web.Response(text=label)

    return App(reg, name=label)


def create_app() -> App:
    return _factory_app("factory")


async def create_app_async() -> App:
    await asyncio.sleep(0)
    return _factory_app("async factory")


def make_web_app() -> web.Application:
    return web_app


def needs_args(config: str, debug: bool = False) -> App:
    return _factory_app("never")


def returns_int() -> int:
    return 5


def factory_raises() -> App:
    raise RuntimeError("factory broke")


async def plain(request: web.Request) -> web.Response:
    return web.Response(text="plain aiohttp")


async def aiohttp_startup(web_app: web.Application) -> None:
    record("aiohttp on_startup")


web_app = web.Application()
web_app.router.add_get("/", plain)
web_app.on_startup.append(aiohttp_startup)
