"""Fixture app for the scale-out tests: worker pid in responses, markers, health, slow route.

Markers (``<pid> <text>`` lines, see cli_markers) go to HOOKWEB_TEST_MARKERS.
``SCALE_FAIL=pre_start`` makes the start fail, ``SCALE_FAIL=cleanup`` the stop;
``SCALE_START_DELAY`` slows the start.
"""

from __future__ import annotations

import asyncio
import os

from aiohttp import web
from cli_markers import record

from hookweb import App, Registry

registry = Registry("scale")


@registry.pre_start
async def open_pool(app: App) -> None:
    record("start")
    delay = float(os.environ.get("SCALE_START_DELAY", "0"))
    if delay:
        await asyncio.sleep(delay)
    if os.environ.get("SCALE_FAIL") == "pre_start":
        raise ConnectionError("db down")


@registry.post_start
async def ready(app: App) -> None:
    record(f"post_start {' '.join(app.urls)}")


@registry.shutdown
async def deregister(app: App) -> None:
    record("stop")


@registry.cleanup
async def close_pool(app: App) -> None:
    record("cleanup")
    if os.environ.get("SCALE_FAIL") == "cleanup":
        raise ConnectionError("pool close timed out")


@registry.get("/")
async def index(request: web.Request) -> web.Response:
    return web.Response(text=f"pid={os.getpid()}")


@registry.get("/slow")
async def slow(request: web.Request) -> web.Response:
    await asyncio.sleep(float(request.query.get("s", "1")))
    return web.Response(text=f"slow pid={os.getpid()}")


@registry.get("/whoami")
async def whoami(request: web.Request) -> web.Response:
    return web.json_response(
        {"remote": request.remote, "scheme": request.scheme, "host": request.host}
    )


app = App(registry, name="scale_app", health_path="/healthz")


def create_app() -> App:
    """A factory for gunicorn ('scale_app:create_app')."""
    return App(registry, name="scale_app factory", health_path="/healthz")


async def plain_handler(request: web.Request) -> web.Response:
    return web.Response(text=f"aiohttp pid={os.getpid()}")


web_app = web.Application()
web_app.router.add_get("/", plain_handler)
