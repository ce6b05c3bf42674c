"""Fixture apps whose start or stop fails (BR-01, BR-05, BR-06), each on its own registry."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiohttp import web
from cli_markers import record

from hookweb import App, Registry

# BR-05: a pre_start hook raises; "/" would answer "ok".
config = Registry()


@config.pre_start
async def load_config(app: App) -> None:
    raise ValueError("config missing")


@config.cleanup
async def config_cleanup(app: App) -> None:
    record("cleanup")


@config.get("/")
async def index(request: web.Request) -> web.Response:
    return web.Response(text="ok")


app = App(config)

# BR-06: ConnectionError("db down").
db = Registry()


@db.pre_start
async def connect(app: App) -> None:
    raise ConnectionError("db down")


db_app = App(db)

# BR-01: lifespan 'remote' fails after 'database' entered.
pair = Registry()


@pair.lifespan
async def database(app: App) -> AsyncIterator[None]:
    record("db up")
    yield
    record("db down")


@pair.lifespan
async def remote(app: App) -> AsyncIterator[None]:
    raise RuntimeError("remote unreachable")
    yield


@pair.post_start
async def post(app: App) -> None:
    record("post")


lifespan_app = App(pair)

# A start hook that hangs: a stop signal cancels it and cleanup still runs.
hang = Registry()


@hang.pre_start
async def wait_forever(app: App) -> None:
    record("pre_start entered")
    await asyncio.Event().wait()


@hang.cleanup
async def hang_cleanup(app: App) -> None:
    record("cleanup")


hang_app = App(hang)

# Exit 1: a cleanup hook fails.
stop = Registry()


@stop.cleanup
async def broken_cleanup(app: App) -> None:
    raise OSError("disk gone")


@stop.cleanup
async def good_cleanup(app: App) -> None:
    record("good cleanup")


stop_app = App(stop)

# Exit 1: a background task crashes.
crash = Registry()


@crash.background
async def ticker(app: App) -> None:
    await asyncio.sleep(0.2)
    raise RuntimeError("ticker died")


@crash.cleanup
async def crash_cleanup(app: App) -> None:
    record("cleanup")


crash_app = App(crash)

# A start step that exceeds --hook-timeout (no timeout of its own).
slow = Registry()


@slow.pre_start
async def slow_start(app: App) -> None:
    await asyncio.sleep(30)


slow_app = App(slow)
