"""Fixture for --reload: the test copies this file and edits VERSION."""

from __future__ import annotations

from aiohttp import web
from cli_markers import record

from hookweb import App, Registry

VERSION = "v1"
reg = Registry()


@reg.pre_start
async def begin(app: App) -> None:
    record(f"pre_start {VERSION}")


@reg.cleanup
async def end(app: App) -> None:
    record(f"cleanup {VERSION}")


@reg.get("/version")
async def version(request: web.Request) -> web.Response:
    return web.Response(text=VERSION)


app = App(reg)
