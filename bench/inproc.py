"""In-process: the Python cost of one request through aiohttp's and hookweb's servers.

No sockets and no second process: pipelined ``GET`` requests are fed straight into
the server's protocol (``data_received``) with a transport that only counts the
responses written, so what is timed is the Python code of the request path (HTTP
parser, routing, handler, response, the response_prepare signal) without the
kernel's share, which dominates a loopback benchmark on a virtual machine and
makes it noisy. Timed with the process's CPU clock (time taken by other processes
on a shared machine does not count); short runs alternate, the best of each is kept.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

import hookweb
from hookweb._server import AppRunner as HookwebRunner

TEXT = "Hello, World!"
REQUEST = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"


class CountingTransport(asyncio.Transport):
    """Swallows what the server writes and counts the responses."""

    def __init__(self) -> None:
        super().__init__()
        self.responses = 0
        self.wanted = 0
        self.done: asyncio.Future[None] | None = None
        self._extra = {"peername": ("127.0.0.1", 40000), "sockname": ("127.0.0.1", 8000)}

    def _count(self, data: bytes | bytearray | memoryview) -> None:
        self.responses += bytes(data).count(b"HTTP/1.1 ")
        if self.done is not None and self.responses >= self.wanted and not self.done.done():
            self.done.set_result(None)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._count(data)

    def writelines(self, list_of_data: Any) -> None:
        self._count(b"".join(list_of_data))

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._extra.get(name, default)

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0


async def hello(request: web.Request) -> web.Response:
    return web.Response(text=TEXT)


async def set_header(request: web.BaseRequest, response: web.StreamResponse) -> None:
    response.headers["X-Bench"] = "1"


def aiohttp_app(callback: bool = False) -> tuple[web.Application, type[web.AppRunner]]:
    app = web.Application()
    app.router.add_get("/", hello)
    if callback:
        app.on_response_prepare.append(set_header)
    return app, web.AppRunner


def hookweb_app(hook: bool = False) -> tuple[web.Application, type[web.AppRunner]]:
    reg = hookweb.Registry("inproc")
    reg.get("/")(hello)
    if hook:
        reg.response_prepare(set_header)
    return hookweb.App(reg, name="inproc").web_app, HookwebRunner


VARIANTS: dict[str, Callable[[], tuple[web.Application, type[web.AppRunner]]]] = {
    "aiohttp": aiohttp_app,
    "hookweb": hookweb_app,
    "aiohttp-callback": lambda: aiohttp_app(callback=True),
    "hookweb-hook": lambda: hookweb_app(hook=True),
}


async def _time(name: str, requests: int, batch: int) -> float:
    app, runner_class = VARIANTS[name]()
    runner = runner_class(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        server = runner.server
        assert server is not None
        protocol = server()
        transport = CountingTransport()
        protocol.connection_made(transport)
        loop = asyncio.get_running_loop()
        start = time.process_time()
        sent = 0
        while sent < requests:
            transport.wanted = sent + batch
            transport.done = loop.create_future()
            protocol.data_received(REQUEST * batch)
            sent += batch
            await transport.done
        elapsed = time.process_time() - start
        protocol.connection_lost(None)
        return elapsed / requests * 1e6
    finally:
        await runner.cleanup()


def request_costs(
    names: tuple[str, ...] = tuple(VARIANTS),
    requests: int = 2_000,
    batch: int = 10,
    rounds: int = 30,
) -> dict[str, tuple[float, float]]:
    """{variant: (best µs per request, median over rounds of its µs minus aiohttp's)}.

    ``rounds`` short runs of every variant, interleaved; the paired difference
    against raw aiohttp in the same round cancels most of a shared machine's drift.
    """
    times: dict[str, list[float]] = {name: [] for name in names}

    async def main() -> None:
        for _ in range(rounds):
            for name in names:
                times[name].append(await _time(name, requests, batch))

    asyncio.run(main())
    base = {"hookweb": "aiohttp", "hookweb-hook": "aiohttp-callback"}
    out: dict[str, tuple[float, float]] = {}
    for name in names:
        ref = times.get(base.get(name, "aiohttp"), times[name])
        diffs = [a - b for a, b in zip(times[name], ref, strict=True)]
        out[name] = (min(times[name]), statistics.median(diffs))
    return out


if __name__ == "__main__":
    for key, (best, diff) in request_costs().items():
        print(f"{key:<18} {best:7.2f} µs/request (best), {diff:+6.2f} against its baseline")
