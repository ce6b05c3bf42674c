"""Issue 5, items 5 and 7: hostile HTTP input and the security defaults (docs/security.md)."""

from __future__ import annotations

import asyncio
import logging
import re

import pytest
from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage

from hookweb import App, Registry, security_headers
from hookweb._serve import ServeOptions
from hookweb.registry import describe

SECRET = "db password is hunter2"
DEFAULTS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def make_app(**aiohttp_kwargs: object) -> App:
    reg = Registry()
    reg.response_prepare(security_headers())

    @reg.get("/boom")
    async def boom(request: web.Request) -> web.Response:
        raise RuntimeError(SECRET)

    @reg.post("/echo")
    async def echo(request: web.Request) -> web.Response:
        return web.Response(text=f"{len(await request.read())} bytes")

    @reg.get("/parse-in-handler")
    async def parse_in_handler(request: web.Request) -> web.Response:
        raise BadHttpMessage("the handler's own parser failed")

    @reg.get("/own")
    async def own(request: web.Request) -> web.Response:
        return web.Response(text="framed", headers={"X-Frame-Options": "SAMEORIGIN"})

    return App(reg, **aiohttp_kwargs)  # type: ignore[arg-type]


async def raw(port: int | None, data: bytes) -> bytes:
    assert port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()


def headers_of(response: bytes) -> dict[str, str]:
    head = response.partition(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")[1:]
    return dict(line.split(": ", 1) for line in head)


# -- the 500 body -------------------------------------------------------------------------


@pytest.mark.parametrize("accept", ["*/*", "text/html"])
async def test_500_body_has_no_exception_text_or_traceback(
    accept: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.CRITICAL, logger="aiohttp.server")
    async with make_app().test_client() as client:
        resp = await client.get("/boom", headers={"Accept": accept})
        body = await resp.text()
    assert resp.status == 500
    assert SECRET not in body and "Traceback" not in body and "RuntimeError" not in body
    assert "500 Internal Server Error" in body
    for name, value in DEFAULTS.items():  # the hooks ran for the 500 too
        assert resp.headers[name] == value


async def test_500_body_shows_the_traceback_only_in_debug_mode(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.CRITICAL, logger="aiohttp.server")
    loop = asyncio.get_running_loop()
    loop.set_debug(True)
    try:
        async with make_app().test_client() as client:
            resp = await client.get("/boom", headers={"Accept": "text/html"})
            body = await resp.text()
    finally:
        loop.set_debug(False)
    assert resp.status == 500
    assert "Traceback" in body and SECRET in body


def test_the_default_host_is_loopback_only() -> None:
    assert ServeOptions().host == "127.0.0.1"
    assert ServeOptions().hosts() == ["127.0.0.1"]


# -- oversized and malformed requests -----------------------------------------------------


async def test_oversized_body_is_a_413_with_the_hooks_headers() -> None:
    async with make_app(client_max_size=1024).test_client() as client:
        small = await client.post("/echo", data=b"x" * 1024)
        assert (small.status, await small.text()) == (200, "1024 bytes")
        big = await client.post("/echo", data=b"x" * 1025)
        assert big.status == 413
        assert "Maximum request body size 1024 exceeded" in await big.text()
        assert big.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
        b"GET /\x00 HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET / HTTP/9.9\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
        b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS hello on the HTTP port
    ],
    ids=["no-colon", "nul", "version", "two-lengths", "long-line", "tls"],
)
async def test_malformed_request_400_carries_the_response_prepare_headers(
    request_bytes: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.CRITICAL, logger="aiohttp.server")
    async with make_app().test_client() as client:
        response = await raw(client.port, request_bytes)
        ok = await client.get("/own")  # still serving
        assert ok.status == 200
    status = int(response.split(b" ", 2)[1])
    assert status in (400, 414, 431), response[:200]
    headers = headers_of(response)
    for name, value in DEFAULTS.items():
        assert headers[name] == value, (name, response[:300])


async def test_a_malformed_request_logs_one_warning_line_and_its_traceback_at_debug(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="aiohttp.server")
    async with make_app().test_client() as client:
        await raw(client.port, b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n")
    logged = [
        (r.levelname, r.getMessage(), r.exc_info is not None)
        for r in caplog.records
        if r.name == "aiohttp.server"
    ]
    assert logged == [
        ("WARNING", "Bad request from 127.0.0.1: 400 Invalid header token: b'Bad Header'", False),
        ("DEBUG", "Error handling request from 127.0.0.1", True),
    ]


async def test_the_same_error_raised_by_a_handler_is_a_500_logged_with_its_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="aiohttp.server")
    async with make_app().test_client() as client:
        response = await client.get("/parse-in-handler")
        assert response.status == 500
    logged = [
        (r.levelname, r.exc_info is not None) for r in caplog.records if r.name == "aiohttp.server"
    ]
    assert logged == [("ERROR", True)]  # aiohttp's own report: the server's bug, not the client's


async def test_aiohttp_limits_from_handler_args_are_kept(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.CRITICAL, logger="aiohttp.server")
    app = make_app(handler_args={"max_line_size": 100, "max_field_size": 100})
    async with app.test_client() as client:
        long_line = await raw(client.port, b"GET /" + b"a" * 200 + b" HTTP/1.1\r\n\r\n")
        long_field = await raw(client.port, b"GET / HTTP/1.1\r\nX-A: " + b"b" * 200 + b"\r\n\r\n")
    for response in (long_line, long_field):
        assert re.match(rb"HTTP/1\.[01] (400|414|431) ", response), response[:100]


# -- security_headers() ------------------------------------------------------------------


async def test_security_headers_defaults_keep_a_handlers_own_value() -> None:
    async with make_app().test_client() as client:
        resp = await client.get("/own")
        missing = await client.get("/nope")
    assert resp.headers["X-Frame-Options"] == "SAMEORIGIN"  # the handler's choice wins
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert missing.status == 404
    for name, value in DEFAULTS.items():
        assert missing.headers[name] == value
    for absent in ("Strict-Transport-Security", "Content-Security-Policy", "Permissions-Policy"):
        assert absent not in missing.headers


async def test_server_header_is_aiohttps_until_a_hook_drops_it() -> None:
    def build(drop: bool) -> App:
        reg = Registry()

        @reg.get("/")
        async def index(request: web.Request) -> web.Response:
            return web.Response(text="ok")

        if drop:

            @reg.response_prepare
            def no_server(request: web.Request, response: web.StreamResponse) -> None:
                response.headers.popall("Server", None)

        return App(reg)

    async with build(drop=False).test_client() as client:
        before = await client.get("/")
    assert before.headers["Server"].startswith("Python/")  # aiohttp's default, with versions
    async with build(drop=True).test_client() as client:
        after = await client.get("/")
        missing = await client.get("/nope")
    assert (after.status, missing.status) == (200, 404)
    assert "Server" not in after.headers
    assert "Server" not in missing.headers


def test_security_headers_options() -> None:
    hook = security_headers(
        hsts=True,
        hsts_include_subdomains=True,
        content_security_policy="default-src 'none'",
        frame_options=None,
        extra={"X-Permitted-Cross-Domain-Policies": "none"},
    )
    assert hook.headers == {  # type: ignore[attr-defined]
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Content-Security-Policy": "default-src 'none'",
        "Cross-Origin-Opener-Policy": "same-origin",
        "Strict-Transport-Security": "max-age=31536000; includeSubDomains",
        "X-Permitted-Cross-Domain-Policies": "none",
    }
    assert security_headers(hsts=300, hsts_preload=True).headers[  # type: ignore[attr-defined]
        "Strict-Transport-Security"
    ] == ("max-age=300; preload")
    assert describe(hook) == "hookweb.security:security_headers"


def test_security_headers_override_replaces_a_handlers_value() -> None:
    response = web.Response(headers={"X-Frame-Options": "SAMEORIGIN"})
    security_headers(override=True)(None, response)  # type: ignore[arg-type]
    assert response.headers["X-Frame-Options"] == "DENY"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"frame_options": "DENY\r\nSet-Cookie: a=b"},
        {"referrer_policy": ""},
        {"hsts": -1},
        {"hsts": 1.5},
        {"hsts_preload": True},
        {"extra": {"Bad Name": "x"}},
    ],
)
def test_security_headers_rejects_bad_values(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"hookweb: security_headers"):
        security_headers(**kwargs)  # type: ignore[arg-type]
