"""response_prepare runs for every response, and a failing hook gives a 500."""

from __future__ import annotations

import asyncio
import logging
import os
from collections import Counter
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from hookweb import App, Registry
from tests.support import AIOHTTP_DIR, HOOKWEB_DIR

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


@pytest.fixture
def static_dir(tmp_path: Path) -> Path:
    (tmp_path / "logo.png").write_bytes(PNG)
    return tmp_path


def make_app(static_dir: Path, calls: Counter[str], fail: dict[str, bool]) -> App:
    reg = Registry()

    @reg.response_prepare
    async def cors(request: web.Request, response: web.StreamResponse) -> None:
        calls[request.path] += 1
        if fail.get(request.path):
            raise RuntimeError(f"hook broke on {request.path}")
        response.headers["Access-Control-Allow-Origin"] = "*"

    @reg.response_prepare(order=1)
    def cache(request: web.Request, response: web.StreamResponse) -> None:
        response.headers["Cache-Control"] = "no-cache"
        response.headers["X-Hook"] = "1"

    @reg.get("/items")
    async def items(request: web.Request) -> web.Response:
        return web.json_response([1, 2])

    @reg.get("/teapot")
    async def teapot(request: web.Request) -> web.Response:
        raise web.HTTPConflict(text="short and stout")

    @reg.get("/health")
    async def health(request: web.Request) -> web.Response:
        return web.Response(text="fine")

    @reg.get("/crash")
    async def crash(request: web.Request) -> web.Response:
        raise ZeroDivisionError("handler bug")

    @reg.get("/events")
    async def events(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for n in range(2):
            await response.write(f"data: {n}\n\n".encode())
            await asyncio.sleep(0.05)
        await response.write_eof()
        return response

    @reg.get("/ws")
    async def echo(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        message = await ws.receive_str()
        await ws.send_str(message)
        await ws.close()
        return ws

    reg.static("/static", static_dir)
    return App(reg)


async def test_router_404_405_and_200_all_carry_the_header(static_dir: Path) -> None:
    """CASES BR-10."""
    calls: Counter[str] = Counter()
    async with make_app(static_dir, calls, {}).test_client() as client:
        for method, path, status in [
            ("GET", "/nope", 404),
            ("POST", "/items", 405),
            ("GET", "/items", 200),
        ]:
            response = await client.request(method, path)
            assert response.status == status
            assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert calls == {"/nope": 1, "/items": 2}


async def test_http_exceptions_and_handler_errors(static_dir: Path) -> None:
    calls: Counter[str] = Counter()
    async with make_app(static_dir, calls, {}).test_client() as client:
        teapot = await client.get("/teapot")
        assert (teapot.status, await teapot.text()) == (409, "short and stout")
        assert teapot.headers["X-Hook"] == "1"
        crash = await client.get("/crash")
        assert crash.status == 500
        assert crash.headers["X-Hook"] == "1"
        assert "handler bug" not in await crash.text()


async def test_static_files_200_304_404_carry_the_header(static_dir: Path) -> None:
    """CASES BR-12."""
    calls: Counter[str] = Counter()
    async with make_app(static_dir, calls, {}).test_client() as client:
        ok = await client.get("/static/logo.png")
        assert ok.status == 200
        assert await ok.read() == PNG
        assert ok.headers["Content-Length"] == str(len(PNG))
        assert ok.headers["Cache-Control"] == "no-cache"
        last_modified = ok.headers["Last-Modified"]
        not_modified = await client.get(
            "/static/logo.png", headers={"If-Modified-Since": last_modified}
        )
        assert not_modified.status == 304
        assert not_modified.headers["Cache-Control"] == "no-cache"
        missing = await client.get("/static/missing.png")
        assert missing.status == 404
        assert missing.headers["Cache-Control"] == "no-cache"
    assert calls["/static/logo.png"] == 2


async def test_streams_and_websocket_handshake(
    static_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """CASES BR-13."""
    calls: Counter[str] = Counter()
    async with make_app(static_dir, calls, {}).test_client() as client:
        response = await client.get("/events")
        # headers arrive before the first event, already carrying the hook's header
        assert response.headers["X-Hook"] == "1"
        first = await response.content.readline()
        assert first == b"data: 0\n"
        assert (await response.read()).endswith(b"data: 1\n\n")
        ws = await client.ws_connect("/ws")
        assert ws._response.status == 101
        assert ws._response.headers["X-Hook"] == "1"
        await ws.send_str("hello")
        assert await ws.receive_str() == "hello"
        await ws.close()
    assert calls == {"/events": 1, "/ws": 1}
    assert not [
        r
        for r in caplog.records
        if "prepared" in r.getMessage() or "headers already" in r.getMessage()
    ]


@pytest.mark.parametrize(
    "path", ["/items", "/nope", "/teapot", "/events", "/static/logo.png", "/static/missing.png"]
)
async def test_a_failing_hook_gives_500_and_the_server_keeps_serving(
    static_dir: Path, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    calls: Counter[str] = Counter()
    caplog.set_level(logging.ERROR)
    async with make_app(static_dir, calls, {path: True}).test_client() as client:
        response = await client.get(path)
        assert response.status == 500
        body = await response.text()
        assert body.startswith("500 Internal Server Error")
        assert "hook broke" not in body and "RuntimeError" not in body
        assert response.headers["Content-Length"] == str(len(body.encode()))
        # the other hook still ran for the 500, and the connection still works
        assert response.headers["X-Hook"] == "1"
        again = await client.get("/health")
        assert (again.status, await again.text()) == (200, "fine")
    # One report in hookweb's format: the line naming the hook, then only the hook's frames.
    line = (
        "hookweb: response_prepare hook tests.test_response_prepare:make_app.<locals>.cors"
        f" failed: RuntimeError: hook broke on {path}"
    )
    reports = [r.getMessage() for r in caplog.records if r.getMessage().startswith(line)]
    first, again = reports
    lines = first.splitlines()
    assert lines[0] == line
    assert lines[1] == "Traceback (most recent call last):"
    assert any("test_response_prepare.py" in x and "in cors" in x for x in lines)
    assert not any(HOOKWEB_DIR in x or AIOHTTP_DIR in x for x in lines)
    assert lines[-1] == f"RuntimeError: hook broke on {path}"
    assert again == line + " (again, while preparing the 500 that replaces a failed response)"
    assert not [r for r in caplog.records if r.exc_info or "ResponsePrepareError" in r.getMessage()]


async def test_a_failing_hook_on_the_websocket_handshake_gives_500(static_dir: Path) -> None:
    calls: Counter[str] = Counter()
    logging.getLogger("aiohttp").setLevel(logging.CRITICAL)
    try:
        async with make_app(static_dir, calls, {"/ws": True}).test_client() as client:
            with pytest.raises(aiohttp.WSServerHandshakeError) as info:
                await client.ws_connect("/ws")
            assert info.value.status == 500
            assert (await client.get("/health")).status == 200
    finally:
        logging.getLogger("aiohttp").setLevel(logging.NOTSET)


async def test_many_requests_on_one_keepalive_connection_after_failures(static_dir: Path) -> None:
    calls: Counter[str] = Counter()
    async with make_app(static_dir, calls, {"/teapot": True}).test_client() as client:
        logging.getLogger("aiohttp").setLevel(logging.CRITICAL)
        try:
            statuses = []
            for _ in range(5):
                statuses.append((await client.get("/teapot")).status)
                statuses.append((await client.get("/health")).status)
        finally:
            logging.getLogger("aiohttp").setLevel(logging.NOTSET)
    assert statuses == [500, 200] * 5


def test_static_dir_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"static directory .* does not exist"):
        Registry().static("/s", os.fspath(tmp_path / "nope"))
