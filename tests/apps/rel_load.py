"""Fixture app for tests/test_reliability.py: load, websockets, hostile input.

``/work?ms=N&id=I`` sleeps N ms and answers a fixed-size body naming I; a
middleware counts the requests whose handler started and finished, and the
stop hooks record those counts (one marker line each, so "ran once" is
countable). ``/ws`` is an echo websocket.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import WSMsgType, web
from cli_markers import record

from hookweb import App, Registry, security_headers

PAD = 4096  # bytes of body per /work response, so "complete" means something
MAX_BODY = 1024  # client_max_size: a larger body is a 413

reg = Registry()
counts = {"started": 0, "finished": 0}


@reg.middleware
async def count(request: web.Request, handler: Any) -> web.StreamResponse:
    counts["started"] += 1
    try:
        response: web.StreamResponse = await handler(request)
        return response
    finally:
        counts["finished"] += 1


reg.response_prepare(security_headers())


@reg.pre_start
def started(app: App) -> None:
    record("pre_start")


@reg.shutdown
def stopping(app: App) -> None:
    record(f"shutdown in_flight={counts['started'] - counts['finished']}")


@reg.cleanup
def stopped(app: App) -> None:
    record(f"cleanup started={counts['started']} finished={counts['finished']}")


@reg.get("/")
async def index(request: web.Request) -> web.Response:
    return web.Response(text="ok")


@reg.get("/work")
async def work(request: web.Request) -> web.Response:
    await asyncio.sleep(int(request.query.get("ms", "0")) / 1000)
    head = f"done {request.query.get('id', '-')}\n"
    return web.Response(text=head + "x" * (PAD - len(head)))


@reg.post("/echo")
async def echo(request: web.Request) -> web.Response:
    body = await request.read()
    return web.Response(text=f"{len(body)} bytes")


@reg.get("/boom")
async def boom(request: web.Request) -> web.Response:
    raise RuntimeError("db password is hunter2")


@reg.get("/ws")
async def ws(request: web.Request) -> web.WebSocketResponse:
    socket = web.WebSocketResponse()
    await socket.prepare(request)
    async for msg in socket:
        if msg.type == WSMsgType.TEXT:
            await socket.send_str(msg.data)
    return socket


app = App(reg, name="rel_load", client_max_size=MAX_BODY)
