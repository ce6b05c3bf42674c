"""BR-21 / issue 4 item 6: what start hooks make belongs to the test's running loop.

A lifespan makes loop-bound objects (an ``asyncio.Queue`` and an
``aiohttp.ClientSession``); handlers and the test body both use them, with the
client entered in a function-, module- and session-scoped fixture on the
matching pytest-asyncio loop. A module-scoped client used from a function-loop
test is refused with a clear error instead of hanging.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient

from hookweb import App, Registry

Client = TestClient[web.Request, web.Application]

QUEUE = web.AppKey("queue", asyncio.Queue)
SESSION = web.AppKey("session", aiohttp.ClientSession)
LOOP_ID = web.AppKey("loop_id", int)


def loop_app(name: str, starts: list[int]) -> App:
    reg = Registry()

    @reg.lifespan
    async def resources(app: App) -> AsyncIterator[None]:
        starts.append(id(asyncio.get_running_loop()))
        app[LOOP_ID] = id(asyncio.get_running_loop())
        app[QUEUE] = asyncio.Queue()
        async with aiohttp.ClientSession() as session:
            app[SESSION] = session
            yield

    @reg.get("/q")
    async def take(request: web.Request) -> web.Response:
        return web.Response(text=await request.app[QUEUE].get())

    @reg.post("/q")
    async def give(request: web.Request) -> web.Response:
        await request.app[QUEUE].put(await request.text())
        return web.Response(status=202)

    @reg.get("/ping")
    async def ping(request: web.Request) -> web.Response:
        return web.Response(text="pong")

    @reg.get("/proxy")
    async def proxy(request: web.Request) -> web.Response:
        app = request.app
        async with app[SESSION].get(f"{request.url.origin()}/ping") as resp:
            return web.Response(text=f"proxied {await resp.text()}")

    return App(reg, name=name)


async def exercise(app: App, client: Client) -> None:
    """Use the lifespan's loop-bound objects from handlers and from the test body."""
    assert app[LOOP_ID] == id(asyncio.get_running_loop())
    # A handler waits on the queue; the test body feeds it.
    waiting = asyncio.ensure_future(client.get("/q"))
    await asyncio.sleep(0.01)
    await app[QUEUE].put("from the test")
    resp = await asyncio.wait_for(waiting, 5)
    assert await resp.text() == "from the test"
    # The test body waits on the queue; a handler feeds it.
    getting = asyncio.ensure_future(app[QUEUE].get())
    resp = await client.post("/q", data="from a handler")
    assert resp.status == 202
    assert await asyncio.wait_for(getting, 5) == "from a handler"
    # The lifespan's ClientSession, from the test body and from a handler.
    async with app[SESSION].get(client.make_url("/ping")) as resp:
        assert await resp.text() == "pong"
    resp = await client.get("/proxy")
    assert await resp.text() == "proxied pong"


# -- function scope (the default) -----------------------------------------------------

FUNCTION_STARTS: list[int] = []


@pytest_asyncio.fixture
async def function_app() -> AsyncIterator[tuple[App, Client]]:
    app = loop_app("function", FUNCTION_STARTS)
    async with app.test_client() as client:
        yield app, client


async def test_function_scope(function_app: tuple[App, Client]) -> None:
    await exercise(*function_app)
    assert FUNCTION_STARTS[-1] == id(asyncio.get_running_loop())


async def test_function_scope_again_on_a_new_loop(function_app: tuple[App, Client]) -> None:
    await exercise(*function_app)
    assert FUNCTION_STARTS[-1] == id(asyncio.get_running_loop())


# -- module scope: fixture and tests on the module's loop -------------------------------

MODULE_STARTS: list[int] = []
module_app = loop_app("module", MODULE_STARTS)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def module_client() -> AsyncIterator[Client]:
    async with module_app.test_client() as client:
        yield client


@pytest.mark.asyncio(loop_scope="module")
async def test_module_scope_first(module_client: Client) -> None:
    await exercise(module_app, module_client)
    assert MODULE_STARTS == [id(asyncio.get_running_loop())]


@pytest.mark.asyncio(loop_scope="module")
async def test_module_scope_second_shares_the_client(module_client: Client) -> None:
    await exercise(module_app, module_client)
    assert MODULE_STARTS == [id(asyncio.get_running_loop())]  # started once for the module


async def test_module_scoped_client_from_a_function_loop_test_is_a_clear_error(
    module_client: Client,
) -> None:
    with pytest.raises(RuntimeError) as info:
        await asyncio.wait_for(module_client.get("/ping"), 5)
    assert str(info.value) == (
        "hookweb: cannot request GET /ping: the test client of App 'module' was entered on"
        " another event loop than the one running this request, and its server only runs on"
        " that loop; give the fixture that enters the client and the tests that use it the"
        ' same loop scope, for example @pytest_asyncio.fixture(scope="module",'
        ' loop_scope="module") with @pytest.mark.asyncio(loop_scope="module") on the tests'
        " (see docs/testing.md)"
    )
    with pytest.raises(RuntimeError, match=r"^hookweb: cannot open a websocket to /ws: the "):
        await module_client.ws_connect("/ws")
    assert MODULE_STARTS[0] != id(asyncio.get_running_loop())


# -- session scope -------------------------------------------------------------------------

SESSION_STARTS: list[int] = []
session_app = loop_app("session", SESSION_STARTS)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def session_client() -> AsyncIterator[Client]:
    async with session_app.test_client() as client:
        yield client


@pytest.mark.asyncio(loop_scope="session")
async def test_session_scope_first(session_client: Client) -> None:
    await exercise(session_app, session_client)
    assert SESSION_STARTS == [id(asyncio.get_running_loop())]


@pytest.mark.asyncio(loop_scope="session")
async def test_session_scope_second(session_client: Client) -> None:
    await exercise(session_app, session_client)
    assert SESSION_STARTS == [id(asyncio.get_running_loop())]


# -- a module-scoped fixture on a function loop: pytest-asyncio refuses it at setup --------


def test_module_fixture_without_a_module_loop_fails_at_setup(tmp_path: Path) -> None:
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
    )
    (tmp_path / "test_scopes.py").write_text(
        """
import pytest_asyncio
from hookweb import App, Registry

app = App(Registry())

@pytest_asyncio.fixture(scope="module")  # no loop_scope: the default, "function"
async def client():
    async with app.test_client() as client:
        yield client

async def test_uses_it(client):
    pass
"""
    )
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, output
    assert "1 error in" in output, output
    assert "ScopeMismatch: You tried to access the function scoped fixture" in output
