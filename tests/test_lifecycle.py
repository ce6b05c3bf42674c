"""SPEC section 2: the order of every step and every row of the failure table."""

from __future__ import annotations

import asyncio
import logging
import socket
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from hookweb import App, CleanupError, Registry
from hookweb._serve import make_options, serve
from hookweb.errors import HookCancelled, HookInterrupted
from tests.support import HOOKWEB_DIR


@pytest.fixture
def rec() -> list[Any]:
    return []


@pytest.fixture
def taken_port() -> Iterator[int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


def name(fn: Any) -> str:
    return f"{fn.__module__}:{fn.__qualname__}"


async def serve_once(app: App, port: int = 0) -> None:
    """hookweb's own serve(), without signal handlers, bounded at 5 s (it must end by itself)."""
    options = make_options({"port": port, "access_log": False})
    await asyncio.wait_for(serve(app, options, handle_signals=False), timeout=5)


async def test_order_across_kinds_and_its_exact_mirror(rec: list[Any]) -> None:
    reg = Registry()

    @reg.lifespan
    async def a(app: App) -> AsyncIterator[None]:
        rec.append("a enter")
        yield
        rec.append("a exit")

    @reg.pre_start
    def b(app: App) -> None:
        rec.append("b")

    @reg.cleanup
    async def c(app: App) -> None:
        rec.append("c")

    @reg.lifespan
    async def d(app: App) -> AsyncIterator[None]:
        rec.append("d enter")
        yield
        rec.append("d exit")

    @reg.shutdown
    async def e(app: App) -> None:
        rec.append("e")

    @reg.shutdown(order=-1)
    def f(app: App) -> None:
        rec.append("f")

    @reg.post_start
    async def g(app: App) -> None:
        rec.append("g")

    @reg.post_start(order=-1)
    async def h(app: App) -> None:
        rec.append("h")

    @reg.pre_start(order=-10)
    async def i(app: App) -> None:
        rec.append("i")

    @reg.cleanup(order=-10)
    def j(app: App) -> None:
        rec.append("j")

    @reg.pre_start(order=5)
    async def k(app: App) -> None:
        rec.append("k")

    @reg.get("/")
    async def index(request: web.Request) -> web.Response:
        rec.append("request")
        return web.Response(text="ok")

    async with App(reg).test_client() as client:
        assert (await client.get("/")).status == 200
    assert rec == [
        # start: (order, registration) across pre_start and lifespan
        "i",
        "a enter",
        "b",
        "d enter",
        "k",
        "h",
        "g",
        "request",
        # stop: shutdown reversed, then cleanup and lifespan exits reversed together
        "e",
        "f",
        "d exit",
        "c",
        "a exit",
        "j",
    ]


async def test_lower_order_starts_first_and_stops_last(rec: list[Any]) -> None:
    reg = Registry()
    for n in (3, 1, 2):

        def make(n: int) -> Any:
            async def life(app: App) -> AsyncIterator[None]:
                rec.append(f"enter {n}")
                yield
                rec.append(f"exit {n}")

            return life

        reg.lifespan(order=n)(make(n))
    async with App(reg).test_client():
        rec.append("serving")
    assert rec == ["enter 1", "enter 2", "enter 3", "serving", "exit 3", "exit 2", "exit 1"]


async def test_second_lifespan_fails_first_exits_nothing_else(rec: list[Any]) -> None:
    """CASES BR-01."""
    reg = Registry()

    @reg.lifespan
    async def db(app: App) -> AsyncIterator[None]:
        rec.append("db up")
        yield
        rec.append("db down")

    @reg.lifespan
    async def remote(app: App) -> AsyncIterator[None]:
        raise RuntimeError("remote unreachable")
        yield  # pragma: no cover

    @reg.post_start
    def post(app: App) -> None:
        rec.append("post")

    @reg.shutdown
    def stop(app: App) -> None:
        rec.append("shutdown")

    @reg.get("/ping")
    async def ping(request: web.Request) -> web.Response:
        rec.append("ping")
        return web.Response(text="pong")

    app = App(reg)
    with pytest.raises(RuntimeError) as info:
        async with app.test_client():
            rec.append("body")  # pragma: no cover
    assert str(info.value) == "remote unreachable"
    assert rec == ["db up", "db down"]
    assert info.value.__notes__ == [
        f"hookweb: lifespan hook {name(remote)} failed: RuntimeError: remote unreachable"
    ]
    assert not app.running and app.addresses == []


async def test_start_failure_runs_every_cleanup_hook_isolated(rec: list[Any]) -> None:
    reg = Registry()

    @reg.cleanup
    def first(app: App) -> None:
        rec.append("cleanup 1")

    @reg.pre_start
    def boom(app: App) -> None:
        raise ValueError("config missing")

    @reg.cleanup
    def second(app: App) -> None:
        rec.append("cleanup 2")
        raise OSError("already closed")

    @reg.cleanup
    def third(app: App) -> None:
        rec.append("cleanup 3")

    with pytest.raises(ValueError) as info:
        async with App(reg).test_client():
            pass  # pragma: no cover
    assert str(info.value) == "config missing"
    # cleanup hooks tolerate a half-started app: all of them run, in reverse
    assert rec == ["cleanup 3", "cleanup 2", "cleanup 1"]
    assert info.value.__notes__ == [
        f"hookweb: pre_start hook {name(boom)} failed: ValueError: config missing",
        f"hookweb: while unwinding, cleanup hook {name(second)} failed: OSError: already closed",
    ]


async def test_three_cleanup_hooks_two_raise(
    rec: list[Any], caplog: pytest.LogCaptureFixture
) -> None:
    reg = Registry()

    @reg.cleanup
    def one(app: App) -> None:
        rec.append("one")
        raise KeyError("one")

    @reg.cleanup
    async def two(app: App) -> None:
        rec.append("two")

    @reg.cleanup
    async def three(app: App) -> None:
        rec.append("three")
        raise RuntimeError("three")

    with pytest.raises(CleanupError) as info:
        async with App(reg).test_client():
            pass
    assert rec == ["three", "two", "one"]
    err = info.value
    assert isinstance(err, ExceptionGroup)
    assert str(err) == "hookweb: 2 stop steps failed (2 sub-exceptions)"
    assert [type(e) for e in err.exceptions] == [RuntimeError, KeyError]
    assert err.exceptions[0].__notes__ == [
        f"hookweb: cleanup hook {name(three)} failed: RuntimeError: three"
    ]
    logged = [r.getMessage().splitlines()[0] for r in caplog.records if r.name == "hookweb"]
    assert logged == [
        f"hookweb: cleanup hook {name(three)} failed: RuntimeError: three",
        f"hookweb: cleanup hook {name(one)} failed: KeyError: 'one'",
    ]


async def test_failing_shutdown_and_lifespan_exit_do_not_skip_other_steps(rec: list[Any]) -> None:
    reg = Registry()

    @reg.lifespan
    async def pool(app: App) -> AsyncIterator[None]:
        yield
        rec.append("pool exit")
        raise ConnectionError("pool close failed")

    @reg.shutdown
    async def deregister(app: App) -> None:
        rec.append("deregister")
        raise asyncio.CancelledError()  # a hook's own cancellation is its failure

    @reg.shutdown
    async def flush(app: App) -> None:
        rec.append("flush")
        raise ValueError("flush")

    @reg.cleanup
    def close(app: App) -> None:
        rec.append("close")

    with pytest.raises(CleanupError) as info:
        async with App(reg).test_client():
            pass
    assert rec == ["flush", "deregister", "close", "pool exit"]
    kinds = [type(e) for e in info.value.exceptions]
    assert kinds == [ValueError, HookCancelled, ConnectionError]
    assert str(info.value.exceptions[1]) == f"shutdown hook {name(deregister)} was cancelled"


async def test_start_hook_timeout(rec: list[Any]) -> None:
    reg = Registry()

    @reg.pre_start(timeout=0.2)
    async def hang(app: App) -> None:
        await asyncio.Event().wait()

    @reg.cleanup
    def cleanup(app: App) -> None:
        rec.append("cleanup")

    started = time.monotonic()
    with pytest.raises(TimeoutError) as info:
        async with App(reg).test_client():
            pass  # pragma: no cover
    assert time.monotonic() - started < 1.0
    assert str(info.value) == f"pre_start hook {name(hang)} timed out after 0.2 s"
    assert info.value.__notes__ == [f"hookweb: pre_start hook {name(hang)} timed out after 0.2 s"]
    assert rec == ["cleanup"]


async def test_app_wide_hook_timeout_applies_to_hooks_without_their_own(rec: list[Any]) -> None:
    reg = Registry()

    @reg.lifespan
    async def slow_exit(app: App) -> AsyncIterator[None]:
        yield
        await asyncio.sleep(5)

    @reg.cleanup(timeout=5)
    async def own_timeout(app: App) -> None:
        await asyncio.sleep(0.3)
        rec.append("own")

    with pytest.raises(CleanupError) as info:
        async with App(reg, hook_timeout=0.1).test_client():
            pass
    assert rec == ["own"]
    (err,) = info.value.exceptions
    assert str(err) == f"lifespan hook {name(slow_exit)} (after yield) timed out after 0.1 s"


async def test_post_start_failure_stops_gracefully(rec: list[Any]) -> None:
    reg = Registry()

    @reg.post_start
    def register(app: App) -> None:
        rec.append(("post", app.addresses[0][0], app.addresses[0][1] > 0))
        raise LookupError("registry rejected us")

    @reg.shutdown
    def shutdown(app: App) -> None:
        rec.append("shutdown")

    @reg.cleanup
    def cleanup(app: App) -> None:
        rec.append("cleanup")

    with pytest.raises(LookupError) as info:
        async with App(reg).test_client():
            pass  # pragma: no cover
    assert rec == [("post", "127.0.0.1", True), "shutdown", "cleanup"]
    assert info.value.__notes__ == [
        f"hookweb: post_start hook {name(register)} failed: LookupError: registry rejected us"
    ]


async def test_post_start_sees_the_real_port_and_the_socket_listens(rec: list[Any]) -> None:
    reg = Registry()

    @reg.pre_start
    def before(app: App) -> None:
        rec.append(("pre", list(app.addresses)))

    @reg.post_start
    async def after(app: App) -> None:
        host, port = app.addresses[0][:2]
        # the socket is listening already: a real connection succeeds
        _reader, writer = await asyncio.open_connection(host, port)
        writer.close()
        await writer.wait_closed()
        rec.append(("post", port, app.urls))

    async with App(reg).test_client() as client:
        assert rec == [("pre", []), ("post", client.port, [f"http://127.0.0.1:{client.port}"])]


async def test_lifespan_must_yield_exactly_once() -> None:
    reg = Registry()

    @reg.lifespan
    async def never(app: App) -> AsyncIterator[None]:
        if False:
            yield  # pragma: no cover

    with pytest.raises(RuntimeError, match=r"lifespan hook .*never returned without yielding"):
        async with App(reg).test_client():
            pass  # pragma: no cover

    twice = Registry()

    @twice.lifespan
    async def double(app: App) -> AsyncIterator[None]:
        yield
        yield

    with pytest.raises(CleanupError) as info:
        async with App(twice).test_client():
            pass
    assert "yielded more than once" in str(info.value.exceptions[0])


def test_same_app_runs_again_on_a_new_loop_with_a_fresh_lifespan(rec: list[Any]) -> None:
    reg = Registry()
    loops: list[int] = []

    @reg.lifespan
    async def life(app: App) -> AsyncIterator[None]:
        loops.append(id(asyncio.get_running_loop()))
        lock = asyncio.Lock()
        await lock.acquire()
        rec.append("enter")
        yield
        rec.append("exit")

    @reg.get("/")
    async def index(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = App(reg)

    async def once() -> None:
        async with app.test_client() as client:
            assert (await client.get("/")).status == 200

    asyncio.run(once())
    asyncio.run(once())
    assert rec == ["enter", "exit", "enter", "exit"]
    assert len(loops) == 2


async def test_sync_hooks_run_inline_on_the_loop_thread(rec: list[Any]) -> None:
    reg = Registry()

    @reg.pre_start
    def sync(app: App) -> None:
        asyncio.get_running_loop()  # raises if not on the loop thread
        rec.append(threading.get_ident())

    async with App(reg).test_client():
        pass
    assert rec == [threading.get_ident()]


async def test_a_second_concurrent_run_of_one_app_is_refused() -> None:
    reg = Registry()
    app = App(reg, name="single")
    async with app.test_client():
        with pytest.raises(
            RuntimeError,
            match=r"App 'single' is already running \(started by a"
            r" test client entered at .*\); an App runs one lifecycle at a time",
        ):
            async with app.test_client():
                pass  # pragma: no cover
        async with App(reg).test_client() as other:  # a second App on the same registry is fine
            assert other.port


async def test_port_in_use_raises_oserror_with_the_address(rec: list[Any], taken_port: int) -> None:
    reg = Registry()

    @reg.pre_start
    def pre(app: App) -> None:
        rec.append("pre_start")

    @reg.post_start
    def post(app: App) -> None:
        rec.append("post_start")  # pragma: no cover

    @reg.shutdown
    def shutdown(app: App) -> None:
        rec.append("shutdown")  # pragma: no cover

    @reg.cleanup
    def cleanup(app: App) -> None:
        rec.append("cleanup")

    app = App(reg)
    with pytest.raises(OSError) as info:
        await serve_once(app, port=taken_port)
    assert rec == ["pre_start", "cleanup"]
    assert info.value.__notes__ == [
        f"hookweb: cannot listen on http://127.0.0.1:{taken_port}: Address already in use"
    ]
    assert not app.running


async def test_background_runs_after_post_start_and_is_cancelled_before_shutdown(
    rec: list[Any],
) -> None:
    reg = Registry()

    @reg.post_start
    def post(app: App) -> None:
        rec.append("post_start")

    @reg.background
    async def ticker(app: App) -> None:
        rec.append("background started")
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            rec.append("background cancelled")
            raise

    @reg.shutdown
    def shutdown(app: App) -> None:
        rec.append("shutdown")

    async with App(reg).test_client():
        await asyncio.sleep(0.01)
    assert rec == ["post_start", "background started", "background cancelled", "shutdown"]


async def test_crashed_background_task_stops_the_server_gracefully(rec: list[Any]) -> None:
    reg = Registry()

    @reg.background
    async def worker(app: App) -> None:
        await asyncio.sleep(0.05)
        raise RuntimeError("worker died")

    @reg.shutdown
    def shutdown(app: App) -> None:
        rec.append("shutdown")

    @reg.cleanup
    def cleanup(app: App) -> None:
        rec.append("cleanup")

    with pytest.raises(CleanupError) as info:
        await serve_once(App(reg))
    assert rec == ["shutdown", "cleanup"]
    (crash,) = info.value.exceptions
    assert crash.__notes__ == [
        f"hookweb: background task {name(worker)} crashed: RuntimeError: worker died"
    ]


async def test_idle_websocket_is_closed_with_1001_and_does_not_hold_the_stop(
    rec: list[Any],
) -> None:
    reg = Registry()

    @reg.get("/ws")
    async def ws_handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for _ in ws:
            pass  # pragma: no cover
        rec.append("handler done")
        return ws

    @reg.shutdown
    def shutdown(app: App) -> None:
        rec.append("shutdown")

    started = 0.0
    async with App(reg).test_client(shutdown_timeout=30) as client:
        ws = await client.ws_connect("/ws")
        started = time.monotonic()
        closing = asyncio.ensure_future(ws.receive())
        await client.server.close()
        message = await asyncio.wait_for(closing, 5)
        assert message.type == aiohttp.WSMsgType.CLOSE
        assert message.data == 1001
        await ws.close()
    assert time.monotonic() - started < 2
    assert rec == ["shutdown", "handler done"]


async def test_raw_aiohttp_tools_still_run_the_signal_hooks(rec: list[Any]) -> None:
    """CASES BR-19 test C: documented; post_start and background need hookweb's runner."""
    reg = Registry()

    @reg.pre_start
    def pre(app: App) -> None:
        rec.append("pre_start")

    @reg.post_start
    def post(app: App) -> None:
        rec.append("post_start")  # pragma: no cover

    @reg.shutdown
    def shutdown(app: App) -> None:
        rec.append("shutdown")

    @reg.cleanup
    def cleanup(app: App) -> None:
        rec.append("cleanup")

    @reg.response_prepare
    def header(request: web.Request, response: web.StreamResponse) -> None:
        response.headers["X-Hook"] = "1"

    @reg.get("/")
    async def index(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = App(reg)
    async with TestClient(TestServer(app.web_app)) as client:
        response = await client.get("/")
        assert response.headers["X-Hook"] == "1"
    assert rec == ["pre_start", "shutdown", "cleanup"]
    assert not app.running


async def test_stop_failures_are_logged_with_the_users_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    reg = Registry()

    @reg.cleanup
    def close_pool(app: App) -> None:
        raise ConnectionResetError("peer went away")

    caplog.set_level(logging.ERROR, logger="hookweb")
    with pytest.raises(CleanupError):
        async with App(reg).test_client():
            pass
    (record,) = [r for r in caplog.records if r.name == "hookweb"]
    lines = record.getMessage().splitlines()
    assert lines[0] == (
        f"hookweb: cleanup hook {name(close_pool)} failed: ConnectionResetError: peer went away"
    )
    assert lines[1] == "Traceback (most recent call last):"
    assert "test_lifecycle.py" in lines[2] and "close_pool" in lines[2]
    assert not any(HOOKWEB_DIR in line or "asyncio/" in line for line in lines)
    assert lines[-1] == "ConnectionResetError: peer went away"


async def test_system_exit_and_keyboard_interrupt_in_stop_hooks_do_not_skip_others(
    rec: list[Any],
) -> None:
    reg = Registry()

    @reg.cleanup
    def first(app: App) -> None:
        rec.append("first")

    @reg.cleanup
    def exits(app: App) -> None:
        rec.append("exits")
        sys.exit(4)

    @reg.shutdown
    def interrupts(app: App) -> None:
        rec.append("interrupts")
        raise KeyboardInterrupt

    with pytest.raises(CleanupError) as info:
        async with App(reg).test_client():
            pass
    assert rec == ["interrupts", "exits", "first"]
    errors = info.value.exceptions
    assert [type(e) for e in errors] == [HookInterrupted, HookInterrupted]
    assert [type(e.__cause__) for e in errors] == [KeyboardInterrupt, SystemExit]
    assert errors[1].__notes__ == [f"hookweb: cleanup hook {name(exits)} failed: SystemExit: 4"]


@pytest.mark.parametrize("raised", [asyncio.CancelledError, SystemExit, KeyboardInterrupt])
async def test_a_start_hooks_own_cancel_or_exit_is_its_failure(
    rec: list[Any], raised: type[BaseException]
) -> None:
    reg = Registry()

    @reg.pre_start
    async def boot(app: App) -> None:
        raise raised()

    @reg.cleanup
    def cleanup(app: App) -> None:
        rec.append("cleanup")

    with pytest.raises(HookInterrupted) as info:
        async with App(reg).test_client():
            pass  # pragma: no cover
    assert type(info.value.__cause__) is raised
    assert rec == ["cleanup"]
    what = (
        "ended with CancelledError"
        if raised is asyncio.CancelledError
        else (f"failed: {raised.__name__}")
    )
    assert info.value.__notes__ == [f"hookweb: pre_start hook {name(boot)} {what}"]


async def test_background_task_exiting_the_process_is_a_crash(rec: list[Any]) -> None:
    reg = Registry()

    @reg.background
    async def quitter(app: App) -> None:
        sys.exit(0)

    @reg.cleanup
    def cleanup(app: App) -> None:
        rec.append("cleanup")

    with pytest.raises(CleanupError) as info:
        await serve_once(App(reg))
    assert rec == ["cleanup"]
    (crash,) = info.value.exceptions
    assert isinstance(crash, HookInterrupted)
    assert crash.__notes__ == [f"hookweb: background task {name(quitter)} failed: SystemExit: 0"]


async def test_lifespan_messages_name_the_step_once() -> None:
    never, exits = Registry(), Registry()

    @never.lifespan
    async def no_yield(app: App) -> AsyncIterator[None]:
        if False:
            yield  # pragma: no cover

    with pytest.raises(RuntimeError) as info:
        async with App(never).test_client():
            pass  # pragma: no cover
    assert info.value.__notes__ == [
        f"hookweb: lifespan hook {name(no_yield)} returned without yielding; it must yield once"
    ]

    @exits.lifespan
    async def pool(app: App) -> AsyncIterator[None]:
        yield
        raise ConnectionError("close failed")

    with pytest.raises(CleanupError) as cleanup_info:
        async with App(exits).test_client():
            pass
    assert cleanup_info.value.exceptions[0].__notes__ == [
        f"hookweb: lifespan exit {name(pool)} failed: ConnectionError: close failed"
    ]
