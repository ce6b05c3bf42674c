"""Tests for a small jobs service, written the way docs/testing.md recommends."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient

import hookweb
from hookweb import App, Registry
from hookweb.testing import ClientFactory

# --- the app under test (in your project: `from myservice import registry, app`) ---

registry = Registry()  # a private registry: importing this module adds nothing elsewhere
JOBS = web.AppKey("jobs", asyncio.Queue)
STARTS = web.AppKey("starts", list)


@registry.lifespan
async def job_queue(app: App) -> AsyncIterator[None]:
    app[JOBS] = asyncio.Queue()  # made on the test's own event loop
    yield
    assert app[JOBS].empty(), "unprocessed jobs at shutdown"


@registry.post_start
async def announce(app: App) -> None:
    app[STARTS].append(app.urls[0])  # the real URL: port 0 already resolved


@registry.post("/jobs")
async def add_job(request: web.Request) -> web.Response:
    await request.app[JOBS].put(await request.text())
    return web.Response(status=202)


@registry.get("/health")
async def health(request: web.Request) -> web.Response:
    return web.Response(text="ok")


app = App(registry)  # what `python -m hookweb myservice:app` serves
app[STARTS] = []  # set before the first run: there in every run

# --- the tests ---


async def test_async_with_runs_the_whole_lifecycle_once() -> None:
    app[STARTS].clear()
    async with app.test_client() as client:  # lifespan entered, socket bound, post_start ran
        for _ in range(3):
            resp = await client.post("/jobs", data="resize")
            assert resp.status == 202
            assert await app[JOBS].get() == "resize"  # the test body uses the lifespan's queue
        assert app[STARTS] == [f"http://127.0.0.1:{client.port}"]
    # on exit: shutdown, cleanup and the lifespan's exit ran, once
    assert app[STARTS] == [f"http://127.0.0.1:{client.port}"]


async def test_a_start_failure_raises_the_original_error() -> None:
    broken = App(Registry())  # an App with one more hook: a new registry that includes ours
    broken.include(registry)

    @broken.pre_start
    async def load_config(app: App) -> None:
        raise KeyError("DATABASE_URL")

    broken[STARTS] = []
    with pytest.raises(KeyError, match="DATABASE_URL"):
        async with broken.test_client():
            pass
    assert broken[STARTS] == []  # nothing after the failing step ran


async def test_the_plugin_fixture_saves_the_async_with(hookweb_client: ClientFactory) -> None:
    client = await hookweb_client(app)  # exited when the test ends
    resp = await client.get("/health")
    assert await resp.text() == "ok"


async def test_module_level_decorators_in_an_isolated_registry(
    hookweb_registry: Registry, hookweb_client: ClientFactory
) -> None:
    # hookweb.get / hookweb.pre_start go into a fresh default registry for this
    # test only: they never fire in another test's App.
    @hookweb.get("/hello")
    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="hello")

    client = await hookweb_client(hookweb.App())
    assert await (await client.get("/hello")).text() == "hello"


# A client shared by every test that asks for it: the fixture and those tests run on
# the module's event loop (loop_scope="module" on both), so the queue the lifespan made
# belongs to the loop the tests run on.
@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared_client() -> AsyncIterator[TestClient[web.Request, web.Application]]:
    shared_app = App(registry)  # its own App, so other tests can still enter `app`
    shared_app[STARTS] = []
    async with shared_app.test_client() as client:
        yield client


@pytest.mark.asyncio(loop_scope="module")
async def test_shared_client_first(
    shared_client: TestClient[web.Request, web.Application],
) -> None:
    assert (await shared_client.post("/jobs", data="a")).status == 202
    assert await shared_client.app[JOBS].get() == "a"


@pytest.mark.asyncio(loop_scope="module")
async def test_shared_client_second(
    shared_client: TestClient[web.Request, web.Application],
) -> None:
    assert await (await shared_client.get("/health")).text() == "ok"
    assert len(shared_client.app[STARTS]) == 1  # started once for the whole module
