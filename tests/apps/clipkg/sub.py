"""Fixture: a target in a package (pkg.sub:app)."""

from aiohttp import web

from hookweb import App, Registry

reg = Registry()


@reg.get("/")
async def index(request: web.Request) -> web.Response:
    return web.Response(text="sub")


app = App(reg, name="clipkg.sub")
