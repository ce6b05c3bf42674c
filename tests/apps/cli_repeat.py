"""Fixture app: one SIGTERM delivered twice at once, as `timeout` sends it."""

from __future__ import annotations

import asyncio
import signal

from aiohttp import web
from cli_markers import record

from hookweb import App, Registry

repeat = Registry()


@repeat.get("/term-twice")
async def term_twice(request: web.Request) -> web.Response:
    """SIGTERM twice at once, as `timeout` sends it (to the process and its group)."""
    signal.raise_signal(signal.SIGTERM)
    signal.raise_signal(signal.SIGTERM)
    await asyncio.sleep(0.5)  # in flight across the stop
    return web.Response(text="served")


@repeat.cleanup
async def repeat_cleanup(app: App) -> None:
    record("cleanup")


app = App(repeat, name="cli_repeat")
