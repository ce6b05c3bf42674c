"""Decorators, registration checks, freezing, include and isolation."""

from __future__ import annotations

import functools
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

import hookweb
from hookweb import App, Registry
from hookweb.registry import default_registry
from hookweb.testing import isolated_registry


async def ok(request: web.Request) -> web.Response:
    return web.Response(text="ok")


def test_decorators_return_the_function_unchanged() -> None:
    reg = Registry()

    async def hook(app: Any) -> None: ...

    def sync_hook(app: Any) -> None: ...

    async def life(app: Any) -> AsyncIterator[None]:
        yield

    async def prep(request: Any, response: Any) -> None: ...

    async def mw(request: Any, handler: Any) -> Any:
        return await handler(request)

    for deco in (reg.pre_start, reg.post_start, reg.shutdown, reg.cleanup):
        assert deco(hook) is hook
        assert deco(order=3, timeout=1)(sync_hook) is sync_hook
    assert reg.lifespan(life) is life
    assert reg.lifespan(order=-1, timeout=2.5)(life) is life
    assert reg.background(hook) is hook
    assert reg.response_prepare(prep) is prep
    assert reg.response_prepare(order=1)(prep) is prep
    assert reg.middleware(mw) is mw
    assert reg.middleware(order=-5)(mw) is mw
    assert reg.get("/")(ok) is ok
    assert reg.route("*", "/any")(ok) is ok
    kinds = [h.kind for h in reg.hooks()]
    assert kinds == [
        "pre_start",
        "pre_start",
        "post_start",
        "post_start",
        "shutdown",
        "shutdown",
        "cleanup",
        "cleanup",
        "lifespan",
        "lifespan",
        "background",
        "response_prepare",
        "response_prepare",
        "middleware",
        "middleware",
    ]
    assert [(r.method, r.path) for r in reg.routes] == [("GET", "/"), ("*", "/any")]


@pytest.mark.parametrize(
    ("decorate", "fn", "message"),
    [
        (
            lambda r: r.pre_start,
            lambda: None,
            r"@pre_start got tests\.test_registry:<lambda>\(\), which cannot be called with one"
            r" positional argument; a pre_start hook must be 'async def hook\(app\)' or"
            r" 'def hook\(app\)'",
        ),
        (
            lambda r: r.cleanup,
            lambda app, extra: None,
            r"@cleanup got tests\.test_registry:<lambda>\(app, extra\), which cannot be called"
            r" with one positional argument",
        ),
        (
            lambda r: r.response_prepare,
            lambda request: None,
            r"@response_prepare got tests\.test_registry:<lambda>\(request\), which cannot be"
            r" called with 2 positional arguments; a response_prepare hook must be"
            r" 'async def hook\(request, response\)'",
        ),
        (lambda r: r.post_start, 42, r"@post_start got 42, which is not callable"),
    ],
)
def test_wrong_signatures_are_refused_at_decoration(decorate: Any, fn: Any, message: str) -> None:
    reg = Registry()
    with pytest.raises(TypeError, match=message):
        decorate(reg)(fn)
    assert reg.hooks() == []


def test_generators_and_sync_functions_where_not_allowed() -> None:
    reg = Registry()

    def gen(app: Any) -> Any:
        yield

    async def agen(app: Any) -> Any:
        yield

    async def coro(app: Any) -> None: ...

    def plain(app: Any) -> None: ...

    def sync_handler(request: Any) -> Any: ...

    with pytest.raises(
        TypeError,
        match=r"@pre_start got tests\.test_registry:.*gen\(app\), which"
        r" is a generator function; .* for paired start and cleanup code use"
        r" @lifespan",
    ):
        reg.pre_start(gen)
    with pytest.raises(TypeError, match=r"@shutdown got .*agen\(app\), which is a generator"):
        reg.shutdown(agen)
    with pytest.raises(
        TypeError,
        match=r"@lifespan got .*coro\(app\), which is a coroutine"
        r" function; a lifespan hook must be 'async def hook\(app\)' that yields"
        r" once",
    ):
        reg.lifespan(coro)
    with pytest.raises(TypeError, match=r"@lifespan got .*gen\(app\), which is a plain generator"):
        reg.lifespan(gen)
    with pytest.raises(
        TypeError,
        match=r"@background got .*plain\(app\), which is not a"
        r" coroutine function; a background hook must be 'async def task\(app\)'",
    ):
        reg.background(plain)
    with pytest.raises(
        TypeError,
        match=r"@get got .*sync_handler\(request\), which is not a"
        r" coroutine function; a route handler must be 'async def"
        r" handler\(request\)'",
    ):
        reg.get("/x")(sync_handler)
    assert reg.hooks() == [] and reg.routes == []


def test_bad_options_are_refused() -> None:
    reg = Registry()
    with pytest.raises(TypeError, match=r"@pre_start\(order=\.\.\.\) takes an int, got 1\.5"):
        reg.pre_start(order=1.5)  # type: ignore[call-overload]
    with pytest.raises(ValueError) as info:
        reg.cleanup(timeout=0)
    assert str(info.value) == (
        "hookweb: @cleanup(timeout=...) must be a positive number of seconds, or None for no"
        " timeout; got 0"
    )
    with pytest.raises(ValueError, match=r"got nan"):
        reg.pre_start(timeout=float("nan"))
    with pytest.raises(ValueError, match=r"^hookweb: App\(hook_timeout=\.\.\.\) must be"):
        App(Registry(), hook_timeout=-1)
    with pytest.raises(ValueError) as method_info:
        reg.route("NOT VALID", "/b")
    assert str(method_info.value) == (
        "hookweb: route method must be an HTTP method like 'GET', or '*' for any,"
        " got 'NOT VALID'"
    )
    with pytest.raises(TypeError, match=r"takes seconds as a number, got '5'"):
        reg.post_start(timeout="5")  # type: ignore[call-overload]
    with pytest.raises(TypeError, match=r"write @get\('/items'\), not bare @get"):
        reg.get(ok)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"route path must be a string starting with '/'"):
        reg.get("items")


def test_sync_callable_objects_and_partials_are_accepted() -> None:
    reg = Registry()
    calls: list[str] = []

    def hook(tag: str, app: Any) -> None:
        calls.append(tag)

    class Hook:
        async def __call__(self, app: Any) -> None: ...

    part = functools.partial(hook, "x")
    assert reg.pre_start(part) is part
    obj = Hook()
    assert reg.pre_start(obj) is obj
    assert [h.is_async for h in reg.hooks()] == [False, True]
    assert (
        reg.hooks()[0].name
        == "tests.test_registry:test_sync_callable_objects_and_partials_are_accepted.<locals>.hook"
    )


async def test_late_registration_is_refused_with_where_it_came_from() -> None:
    reg = Registry("late")
    app = App(reg, name="demo")
    app.web_app  # builds the app  # noqa: B018

    async def late(app: Any) -> None: ...

    with pytest.raises(RuntimeError) as info:
        reg.pre_start(late)
    message = str(info.value)
    assert message.startswith(
        "hookweb: cannot register pre_start hook tests.test_registry:"
        "test_late_registration_is_refused_with_where_it_came_from.<locals>.late at "
    )
    assert re.search(
        r"test_registry\.py:\d+: registry 'late' is frozen since the App using it"
        r" was built \(App 'demo' built at .*test_registry\.py:\d+\)",
        message,
    )
    assert "Register every hook, route and middleware before the first run" in message
    with pytest.raises(RuntimeError, match="frozen"):
        app.on_pre_start.append(late)
    with pytest.raises(RuntimeError, match=r"cannot register route GET /late"):
        app.get("/late")(ok)
    with pytest.raises(RuntimeError, match=r"cannot include 'other'.* was already built"):
        app.include(Registry("other"))


async def test_two_apps_never_share_hooks() -> None:
    calls: list[str] = []
    one, two = Registry(), Registry()

    @one.pre_start
    def first(app: Any) -> None:
        calls.append("one")

    @two.pre_start
    def second(app: Any) -> None:
        calls.append("two")

    async with App(one).test_client():
        pass
    assert calls == ["one"]
    async with App(two).test_client():
        pass
    assert calls == ["one", "two"]


async def test_app_decorators_bind_to_its_registry() -> None:
    reg = Registry()
    app = App(reg)
    calls: list[str] = []

    @app.pre_start
    def hook(a: Any) -> None:
        calls.append("app")

    app.on_pre_start.append(lambda a: calls.append("seed"))
    assert [h.kind for h in reg.hooks()] == ["pre_start", "pre_start"]
    assert next(iter(app.on_pre_start)) is hook and len(app.on_pre_start) == 2
    async with app.test_client():
        pass
    assert calls == ["app", "seed"]


async def test_include_merges_hooks_routes_and_middleware_under_prefix() -> None:
    main, api = Registry(), Registry()
    calls: list[str] = []

    @main.pre_start
    def main_hook(app: Any) -> None:
        calls.append("main")

    @api.pre_start
    def api_hook(app: Any) -> None:
        calls.append("api")

    @api.get("/items")
    async def items(request: web.Request) -> web.Response:
        return web.Response(text="items")

    @api.middleware
    async def tag(request: web.Request, handler: Any) -> web.StreamResponse:
        response: web.StreamResponse = await handler(request)
        response.headers["X-Api"] = "1"
        return response

    app = App(main)
    app.include(api, prefix="/api")
    with pytest.raises(ValueError, match="already part of"):
        app.include(api)
    with pytest.raises(ValueError, match=r"must start with '/' and not end with it"):
        app.include(Registry(), prefix="api/")
    async with app.test_client() as client:
        response = await client.get("/api/items")
        assert (response.status, await response.text()) == (200, "items")
        assert response.headers["X-Api"] == "1"
        assert (await client.get("/items")).status == 404
    assert calls == ["main", "api"]


def test_isolated_registry_swaps_the_default() -> None:
    before = default_registry()
    with isolated_registry() as fresh:
        assert default_registry() is fresh

        @hookweb.pre_start
        def hook(app: Any) -> None: ...

        assert [h.fn for h in fresh.hooks()] == [hook]
        assert App()._registry is fresh
    assert default_registry() is before
    assert hook not in [h.fn for h in before.hooks()]


async def test_state_is_shared_with_handlers_and_reset_after_each_run() -> None:
    reg = Registry()
    config = web.AppKey("config", str)
    pool = web.AppKey("pool", str)

    @reg.pre_start
    def open_pool(app: App) -> None:
        app[pool] = f"pool for {app[config]}"

    @reg.get("/pool")
    async def show(request: web.Request) -> web.Response:
        return web.Response(text=request.app[pool])

    app = App(reg)
    app[config] = "db://x"
    app["plain"] = 1
    assert "plain" in app and app["plain"] == 1
    del app["plain"]
    assert "plain" not in app
    for _ in range(2):
        async with app.test_client() as client:
            assert await (await client.get("/pool")).text() == "pool for db://x"
        assert pool not in app  # what the run stored is gone; the configuration stays
        assert app[config] == "db://x"


def test_app_rejects_a_non_registry() -> None:
    with pytest.raises(
        TypeError,
        match=r"App\(registry=\.\.\.\) takes a hookweb.Registry, got"
        r" Application",
    ):
        App(web.Application())  # type: ignore[arg-type]


async def test_get_routes_answer_head_like_aiohttps_add_get(tmp_path: Any) -> None:
    reg = Registry()
    reg.get("/ok")(ok)
    reg.get("/plain", allow_head=False)(ok)
    async with App(reg).test_client() as client:
        assert (await client.head("/ok")).status == 200
        assert (await client.head("/plain")).status == 405
    file = tmp_path / "file.txt"
    file.write_text("x")
    with pytest.raises(ValueError, match=r"static directory '.*file\.txt' is not a directory"):
        Registry().static("/s", file)
