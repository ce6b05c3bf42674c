"""``App.test_client()`` and ``hookweb.testing``: BR-01, BR-05, BR-19, BR-20, BR-22, issue 4.

Every test builds its own Registry/App; real sockets only, nothing of aiohttp mocked.
"""

from __future__ import annotations

import asyncio
import errno
import gc
import logging
import re
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from yarl import URL

import hookweb
from hookweb import App, CleanupError, Registry
from hookweb.errors import StopTimeoutError
from hookweb.registry import default_registry
from hookweb.testing import ClientFactory, isolated_registry

HERE = __file__.removesuffix("c")  # .py even if run from a .pyc


def name(fn: Any) -> str:
    return f"{fn.__module__}:{fn.__qualname__}"


def line_of_next_statement() -> int:
    return sys._getframe(1).f_lineno + 1


DB = web.AppKey("db", str)
COUNTER = web.AppKey("counter", dict[str, int])
STARTED = web.AppKey("started", asyncio.Event)


def counting_app(rec: list[str]) -> tuple[App, dict[str, int]]:
    """BR-19/BR-20's app: every kind of step records itself and is counted."""
    reg = Registry()
    counts: dict[str, int] = {}

    def count(step: str) -> None:
        counts[step] = counts.get(step, 0) + 1
        rec.append(step)

    @reg.lifespan
    async def resource(app: App) -> AsyncIterator[None]:
        count("lifespan enter")
        yield
        count("lifespan exit")

    @reg.pre_start
    async def open_db(app: App) -> None:
        count("pre_start")
        app[DB] = "ready"
        app[COUNTER] = {"n": 0}  # mutable: handlers may not assign to request.app
        app[STARTED] = asyncio.Event()

    @reg.post_start
    async def announce(app: App) -> None:
        count("post_start")
        rec.append(f"addresses {app.addresses}")

    @reg.background
    async def worker(app: App) -> None:
        count("background")
        app[STARTED].set()
        try:
            await asyncio.Event().wait()
        finally:
            rec.append("background cancelled")

    @reg.shutdown
    async def deregister(app: App) -> None:
        count("shutdown")

    @reg.cleanup
    async def close_db(app: App) -> None:
        count("cleanup")

    @reg.get("/db")
    async def db(request: web.Request) -> web.Response:
        rec.append("GET /db")
        return web.Response(text=request.app[DB])

    @reg.post("/inc")
    async def inc(request: web.Request) -> web.Response:
        request.app[COUNTER]["n"] += 1
        return web.Response(text="ok")

    @reg.get("/n")
    async def n(request: web.Request) -> web.Response:
        return web.Response(text=str(request.app[COUNTER]["n"]))

    return App(reg, name="counting"), counts


ONCE = {
    "lifespan enter": 1,
    "pre_start": 1,
    "post_start": 1,
    "background": 1,
    "shutdown": 1,
    "cleanup": 1,
    "lifespan exit": 1,
}


# -- BR-20 / issue 4 item 1: the whole lifecycle exactly once per `async with` --------


async def test_each_step_runs_once_across_ten_requests() -> None:
    rec: list[str] = []
    app, counts = counting_app(rec)
    async with app.test_client() as client:
        assert isinstance(client, TestClient)
        await asyncio.wait_for(app[STARTED].wait(), 5)
        assert rec == [
            "lifespan enter",
            "pre_start",
            "post_start",
            f"addresses [('127.0.0.1', {client.port})]",
            "background",
        ]
        for _ in range(9):
            resp = await client.post("/inc")
            assert resp.status == 200
        resp = await client.get("/n")
        assert await resp.text() == "9"
        assert counts == {
            "lifespan enter": 1,
            "pre_start": 1,
            "post_start": 1,
            "background": 1,
        }
    assert rec[5:] == [
        "background cancelled",
        "shutdown",
        "cleanup",
        "lifespan exit",
    ]
    assert counts == ONCE


async def test_br19_entered_client_runs_pre_start_once_and_shutdown_once_on_exit() -> None:
    rec: list[str] = []
    app, counts = counting_app(rec)
    async with app.test_client() as client:
        assert counts["pre_start"] == 1
        for _ in range(2):
            resp = await client.get("/db")
            assert (resp.status, await resp.text()) == (200, "ready")
        assert "shutdown" not in counts
    assert counts == ONCE
    assert rec.count("GET /db") == 2


async def test_post_start_sees_the_clients_real_port_and_app_addresses_reset_after() -> None:
    rec: list[str] = []
    app, _ = counting_app(rec)
    assert app.addresses == []
    async with app.test_client() as client:
        assert client.port not in (None, 0)
        assert app.addresses == [("127.0.0.1", client.port)]
        assert app.urls == [f"http://127.0.0.1:{client.port}"]
        assert client.make_url("/db") == URL(f"http://127.0.0.1:{client.port}/db")
        assert app.running
    assert app.addresses == []
    assert not app.running


# -- BR-19 test A / issue 4 item 2: misuse is loud, never a silent skip of the hooks ---


NOT_ENTERED = (
    "hookweb: enter the test client before using .get: write 'async with app.test_client()"
    " as client:' and use 'client' inside; a client that is not entered runs no hooks"
)


async def test_br19_request_on_a_client_never_entered_raises_before_any_handler() -> None:
    rec: list[str] = []
    app, counts = counting_app(rec)
    with pytest.raises(RuntimeError) as info:
        await app.test_client().get("/db")
    assert str(info.value) == NOT_ENTERED
    with pytest.raises(RuntimeError, match=r"before using \.post: "):
        app.test_client().post("/inc")
    with pytest.raises(RuntimeError, match=r"before using \.ws_connect: "):
        app.test_client().ws_connect("/ws")
    with pytest.raises(AttributeError):
        app.test_client().no_such_thing  # noqa: B018
    assert rec == []
    assert counts == {}
    assert not app.running


async def test_plain_with_and_await_say_to_use_async_with() -> None:
    app = App(Registry())
    with pytest.raises(TypeError) as info:
        with app.test_client():
            pass  # pragma: no cover
    assert str(info.value) == (
        "hookweb: use 'async with app.test_client() as client:' (not 'with'):"
        " the client runs the app's async lifecycle"
    )
    with pytest.raises(TypeError) as info:
        await app.test_client()
    assert str(info.value) == (
        "hookweb: use 'async with app.test_client() as client:', not 'await'"
    )
    assert not app.running


async def test_the_context_object_itself_is_not_the_client_and_cannot_be_entered_twice() -> None:
    rec: list[str] = []
    app, _ = counting_app(rec)
    context = app.test_client()
    async with context as client:
        with pytest.raises(RuntimeError) as info:
            await context.get("/db")
        assert str(info.value) == (
            "hookweb: use .get on the client that 'async with' gives you"
            " ('async with app.test_client() as client:'), not on app.test_client() itself"
        )
        with pytest.raises(RuntimeError) as info:
            await context.__aenter__()
        assert str(info.value) == (
            "hookweb: this test client is already entered; call app.test_client() again"
            " for a new one"
        )
        assert await (await client.get("/db")).text() == "ready"
    assert rec.count("pre_start") == 1


async def test_a_request_after_exit_says_the_server_is_stopped() -> None:
    rec: list[str] = []
    app, _ = counting_app(rec)
    async with app.test_client() as client:
        pass
    with pytest.raises(RuntimeError) as info:
        await client.get("/db")
    assert str(info.value) == (
        "hookweb: cannot request GET /db: the test client of App 'counting' has exited and"
        " its server is stopped; make requests inside 'async with app.test_client() as client:'"
    )
    with pytest.raises(RuntimeError, match=r"^hookweb: cannot open a websocket to /ws: "):
        await client.ws_connect("/ws")
    assert "GET /db" not in rec


# -- BR-19 test C: the raw aiohttp application with aiohttp's own test utilities -------


async def test_br19_raw_web_app_driven_by_aiohttp_test_utils_still_runs_the_signals() -> None:
    rec: list[str] = []
    app, counts = counting_app(rec)
    async with TestClient(TestServer(app.web_app)) as client:
        resp = await client.get("/db")
        assert (resp.status, await resp.text()) == (200, "ready")
    # Documented: aiohttp's runner drives pre_start, lifespan, shutdown and cleanup
    # through the signals; post_start and background need hookweb's runner.
    assert counts == {
        "lifespan enter": 1,
        "pre_start": 1,
        "shutdown": 1,
        "cleanup": 1,
        "lifespan exit": 1,
    }
    assert not app.running


# -- BR-01, BR-05 / issue 4 item 3: a start failure raises the original exception ------


async def test_br01_failing_context_hook_unwinds_exactly_what_entered() -> None:
    rec: list[str] = []
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
    async def post(app: App) -> None:
        rec.append("post")  # pragma: no cover

    @reg.get("/ping")
    async def ping(request: web.Request) -> web.Response:
        rec.append("ping")  # pragma: no cover
        return web.Response(text="pong")  # pragma: no cover

    app = App(reg)
    with pytest.raises(RuntimeError) as info:
        async with app.test_client():
            rec.append("body")  # pragma: no cover
    assert type(info.value) is RuntimeError
    assert str(info.value) == "remote unreachable"
    assert info.value.__notes__ == [
        f"hookweb: lifespan hook {name(remote)} failed: RuntimeError: remote unreachable"
    ]
    assert rec == ["db up", "db down"]
    assert not app.running


async def test_br05_pre_start_error_is_the_same_value_error_and_no_handler_runs() -> None:
    rec: list[str] = []
    reg = Registry()

    @reg.pre_start
    async def load_config(app: App) -> None:
        raise ValueError("config missing")

    @reg.cleanup
    async def close(app: App) -> None:
        rec.append("cleanup")

    @reg.get("/")
    async def index(request: web.Request) -> web.Response:
        rec.append("handler")  # pragma: no cover
        return web.Response(text="ok")  # pragma: no cover

    with pytest.raises(ValueError) as info:
        async with App(reg).test_client():
            rec.append("body")  # pragma: no cover
    assert type(info.value) is ValueError
    assert info.value.args == ("config missing",)
    assert info.value.__notes__ == [
        f"hookweb: pre_start hook {name(load_config)} failed: ValueError: config missing"
    ]
    assert rec == ["cleanup"]


@pytest.fixture
def leak_report(caplog: pytest.LogCaptureFixture) -> Iterator[list[str]]:
    """Unraisable exceptions (ResourceWarning in __del__) and asyncio's error logs."""
    found: list[str] = []
    previous = sys.unraisablehook

    def hook(unraisable: Any) -> None:
        found.append(f"{unraisable.exc_type.__name__}: {unraisable.exc_value}")

    sys.unraisablehook = hook
    try:
        with caplog.at_level(logging.ERROR, logger="asyncio"):
            yield found
            gc.collect()
            found.extend(r.getMessage() for r in caplog.records if r.name == "asyncio")
    finally:
        sys.unraisablehook = previous


QUEUE = web.AppKey("queue", asyncio.Queue)
WAITER = web.AppKey("waiter", asyncio.Task)
SESSION = web.AppKey("session", aiohttp.ClientSession)


@pytest.mark.parametrize("failing", ["pre_start", "post_start"])
async def test_start_failure_leaves_no_unclosed_session_or_pending_task(
    failing: str, leak_report: list[str]
) -> None:
    rec: list[str] = []
    reg = Registry()

    @reg.pre_start
    async def start_waiter(app: App) -> None:  # BR-02's task waiting on a queue
        app[QUEUE] = asyncio.Queue()
        app[WAITER] = asyncio.get_running_loop().create_task(app[QUEUE].get())

    @reg.lifespan
    async def session(app: App) -> AsyncIterator[None]:
        async with aiohttp.ClientSession() as app[SESSION]:
            yield
        rec.append("session closed")

    @reg.pre_start
    async def maybe_fail_early(app: App) -> None:
        if failing == "pre_start":
            raise ConnectionError("db down")

    @reg.post_start
    async def maybe_fail_late(app: App) -> None:
        if failing == "post_start":
            raise ConnectionError("registry down")

    @reg.shutdown
    async def deregister(app: App) -> None:
        rec.append("shutdown")

    @reg.cleanup
    async def stop_waiter(app: App) -> None:
        if WAITER in app:
            app[WAITER].cancel()
            await asyncio.gather(app[WAITER], return_exceptions=True)
            rec.append("waiter stopped")

    app = App(reg)
    with pytest.raises(ConnectionError) as info:
        async with app.test_client():
            rec.append("body")  # pragma: no cover
    hook = maybe_fail_early if failing == "pre_start" else maybe_fail_late
    assert info.value.__notes__ == [
        f"hookweb: {failing} hook {name(hook)} failed: ConnectionError: {info.value}"
    ]
    if failing == "pre_start":  # no socket was bound: no shutdown hooks
        assert rec == ["waiter stopped", "session closed"]
    else:  # a graceful stop of what was bound
        assert rec == ["shutdown", "waiter stopped", "session closed"]
    del info
    assert leak_report == []


def test_start_failure_is_clean_in_a_fresh_interpreter_under_w_error(tmp_path: Any) -> None:
    """The whole story under ``python -W error -m pytest`` in a subprocess."""
    import subprocess

    (tmp_path / "pytest.ini").write_text(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
    )
    (tmp_path / "test_start_failure.py").write_text(
        """
import asyncio
import aiohttp
import pytest
from hookweb import App, Registry

reg = Registry()

@reg.pre_start
async def waiter(app):
    app["q"] = asyncio.Queue()
    app["task"] = asyncio.get_running_loop().create_task(app["q"].get())

@reg.lifespan
async def session(app):
    async with aiohttp.ClientSession() as app["session"]:
        yield

@reg.pre_start
async def fails(app):
    raise ValueError("config missing")

@reg.cleanup
async def stop(app):
    if "task" in app:
        app["task"].cancel()

async def test_enter_raises():
    with pytest.raises(ValueError, match="config missing"):
        async with App(reg).test_client():
            pass

async def test_fixture_raises(hookweb_client):
    with pytest.raises(ValueError, match="config missing"):
        await hookweb_client(App(reg))
"""
    )
    proc = subprocess.run(
        [sys.executable, "-W", "error", "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "2 passed" in output
    for leak in ("Unclosed", "Task was destroyed", "Exception ignored", "Warning"):
        assert leak not in output


# -- issue 4 item 4: a stop failure raises CleanupError after every stop step ran ------


def failing_stop_app(rec: list[str]) -> tuple[App, Any, Any]:
    reg = Registry()

    @reg.lifespan
    async def pool(app: App) -> AsyncIterator[None]:
        yield
        rec.append("pool closed")

    @reg.cleanup
    async def flush(app: App) -> None:
        rec.append("flush")
        raise OSError("disk full")

    @reg.shutdown
    async def deregister(app: App) -> None:
        rec.append("deregister")
        raise ConnectionError("registry gone")

    @reg.shutdown
    async def close_sockets(app: App) -> None:
        rec.append("close sockets")

    @reg.get("/")
    async def index(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    return App(reg, name="failing-stop"), deregister, flush


async def test_stop_failure_raises_cleanup_error_after_every_stop_step_ran(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rec: list[str] = []
    app, deregister, flush = failing_stop_app(rec)
    with pytest.raises(CleanupError) as info:
        async with app.test_client() as client:
            assert (await client.get("/")).status == 200
    assert rec == ["close sockets", "deregister", "flush", "pool closed"]
    error = info.value
    assert str(error) == "hookweb: 2 stop steps failed (2 sub-exceptions)"
    assert [repr(e) for e in error.exceptions] == [
        "ConnectionError('registry gone')",
        "OSError('disk full')",
    ]
    assert [e.__notes__ for e in error.exceptions] == [
        [f"hookweb: shutdown hook {name(deregister)} failed: ConnectionError: registry gone"],
        [f"hookweb: cleanup hook {name(flush)} failed: OSError: disk full"],
    ]
    assert client.session.closed
    assert not app.running
    logged = [r.getMessage().splitlines()[0] for r in caplog.records if r.name == "hookweb"]
    assert logged == [
        f"hookweb: shutdown hook {name(deregister)} failed: ConnectionError: registry gone",
        f"hookweb: cleanup hook {name(flush)} failed: OSError: disk full",
    ]


async def test_a_failing_body_is_not_hidden_by_a_stop_failure() -> None:
    rec: list[str] = []
    app, deregister, flush = failing_stop_app(rec)
    with pytest.raises(AssertionError) as info:
        async with app.test_client() as client:
            assert (await client.get("/")).status == 200
            raise AssertionError("the test's own failure")
    assert str(info.value) == "the test's own failure"
    assert info.value.__notes__ == [
        "hookweb: 2 stop steps failed after the test body raised:",
        f"  hookweb: shutdown hook {name(deregister)} failed: ConnectionError: registry gone",
        f"  hookweb: cleanup hook {name(flush)} failed: OSError: disk full",
    ]
    assert rec == ["close sockets", "deregister", "flush", "pool closed"]
    assert client.session.closed
    assert not app.running


# -- issue 4 item 5: re-entry, a new loop, two Apps at once, one App twice refused ------


async def test_the_same_app_can_be_entered_again_with_fresh_lifespan_generators() -> None:
    reg = Registry()
    calls: list[str] = []
    rec: list[str] = []

    @reg.lifespan
    async def resource(app: App) -> AsyncIterator[None]:
        calls.append("called")  # the generator function is called afresh each run
        assert DB not in app  # state a run stored is gone before the next run
        app[DB] = f"run {len(calls)}"
        rec.append("enter")
        yield
        rec.append("exit")

    @reg.get("/db")
    async def db(request: web.Request) -> web.Response:
        return web.Response(text=request.app[DB])

    app = App(reg)
    context = app.test_client()
    for run in (1, 2):
        async with context as client:
            assert await (await client.get("/db")).text() == f"run {run}"
    async with app.test_client() as client:
        assert await (await client.get("/db")).text() == "run 3"
    assert rec == ["enter", "exit"] * 3
    assert calls == ["called"] * 3
    assert DB not in app


def test_the_same_app_runs_again_on_a_new_event_loop() -> None:
    rec: list[str] = []
    app, counts = counting_app(rec)
    loops: list[int] = []

    async def once() -> None:
        loops.append(id(asyncio.get_running_loop()))
        async with app.test_client() as client:
            assert await (await client.get("/db")).text() == "ready"

    asyncio.run(once())
    asyncio.run(once())
    assert len(loops) == 2
    assert counts == {step: 2 for step in ONCE}


async def test_two_clients_of_one_app_at_once_are_refused_clearly() -> None:
    rec: list[str] = []
    app, counts = counting_app(rec)
    line = line_of_next_statement()
    async with app.test_client() as first:
        with pytest.raises(RuntimeError) as info:
            async with app.test_client():
                pass  # pragma: no cover
        assert str(info.value) == (
            "hookweb: App 'counting' is already running (started by a test client entered at"
            f" {HERE}:{line}); an App runs one lifecycle at a time. Exit the running test"
            " client or stop the server first, or make a second App on the same registry:"
            " App(registry)"
        )
        # The refused second client touched nothing of the first.
        assert await (await first.get("/db")).text() == "ready"
        assert counts["pre_start"] == 1
    assert counts == ONCE


async def test_br22_two_tasks_entering_one_app_one_wins_the_other_is_refused() -> None:
    rec: list[str] = []
    app, counts = counting_app(rec)
    release = asyncio.Event()

    async def use() -> str:
        async with app.test_client() as client:
            text = await (await client.get("/db")).text()
            await release.wait()
            return text

    tasks = [asyncio.create_task(use()) for _ in range(2)]
    done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    release.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert results[0] == "ready"
    assert isinstance(results[1], RuntimeError)
    assert "App 'counting' is already running" in str(results[1])
    assert done == {tasks[1]}
    assert counts == ONCE


async def test_two_apps_run_at_once_even_on_the_same_registry() -> None:
    rec: list[str] = []
    app, counts = counting_app(rec)
    twin = App(app._registry, name="twin")
    other_rec: list[str] = []
    other, other_counts = counting_app(other_rec)

    async def use(a: App) -> tuple[int | None, str]:
        async with a.test_client() as client:
            await asyncio.sleep(0.05)  # overlap the three runs
            return client.port, await (await client.get("/db")).text()

    results = await asyncio.gather(use(app), use(twin), use(other))
    assert [text for _, text in results] == ["ready"] * 3
    assert len({port for port, _ in results}) == 3
    assert counts == {step: 2 for step in ONCE}  # app and its twin share hooks
    assert other_counts == ONCE  # a different registry: its hooks only


async def test_a_late_registration_names_the_test_that_built_the_app() -> None:
    reg = Registry()
    app = App(reg, name="late")
    line = line_of_next_statement()
    async with app.test_client():
        pass
    with pytest.raises(RuntimeError, match=re.escape(f"(App 'late' built at {HERE}:{line})")):

        @reg.pre_start
        def too_late(app: App) -> None:
            pass  # pragma: no cover


# -- stop_timeout: a hanging stop hook fails the test instead of hanging it --------------


async def test_stop_timeout_bounds_the_stop_and_names_what_it_cut_short() -> None:
    rec: list[str] = []
    reg = Registry()

    @reg.shutdown
    async def deregister(app: App) -> None:
        rec.append("deregister")
        if len(rec) == 1:  # hangs the first time only
            await asyncio.Event().wait()

    @reg.cleanup
    def close_pool(app: App) -> None:
        rec.append("close_pool")

    app = App(reg)
    began = asyncio.get_running_loop().time()
    with pytest.raises(StopTimeoutError) as info:
        async with app.test_client(stop_timeout=0.3) as client:
            assert (await client.get("/")).status == 404
    assert asyncio.get_running_loop().time() - began < 3
    name = "tests.test_testing:test_stop_timeout_bounds_the_stop_and_names_what_it_cut_short"
    assert str(info.value) == (
        "the stop took longer than stop_timeout (0.3 s): cancelled shutdown hook"
        f" {name}.<locals>.deregister; skipped the remaining stop steps: cleanup hook"
        f" {name}.<locals>.close_pool"
    )
    assert rec == ["deregister"]
    assert not app.running and not listening_on(client.port or 0)
    async with app.test_client() as again:  # the App can run again
        assert (await again.get("/")).status == 404
    assert rec == ["deregister", "deregister", "close_pool"]


async def test_stop_timeout_after_the_body_raised_lets_the_body_error_through() -> None:
    reg = Registry()

    @reg.cleanup
    async def close_pool(app: App) -> None:
        await asyncio.Event().wait()

    with pytest.raises(KeyError) as info:
        async with App(reg).test_client(stop_timeout=0.2):
            raise KeyError("from the body")
    (note,) = info.value.__notes__
    assert note.startswith("hookweb: the stop took longer than stop_timeout (0.2 s): cancelled")
    assert note.endswith(
        "close_pool; skipped the remaining stop steps: nothing (after the test body raised)"
    )


async def test_stop_timeout_holds_when_the_cancelled_hook_swallows_the_cancel() -> None:
    rec: list[str] = []
    reg = Registry()

    @reg.shutdown
    async def flush(app: App) -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            rec.append("flush ignored the cancel")
            await asyncio.sleep(0.2)

    @reg.cleanup
    def close_pool(app: App) -> None:
        rec.append("close_pool")

    with pytest.raises(StopTimeoutError, match=r"cancelled shutdown hook .*flush; skipped"):
        async with App(reg).test_client(stop_timeout=0.2):
            pass
    assert rec == ["flush ignored the cancel", "close_pool"]
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0  # the bound's cancel is undone


def test_stop_timeout_must_be_positive() -> None:
    with pytest.raises(ValueError, match=r"test_client\(stop_timeout=\.\.\.\)"):
        App(Registry()).test_client(stop_timeout=0)


# -- BR-22: free ports, held until exit, released after --------------------------------


def listening_on(port: int) -> bool:
    probe = socket.socket()
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        probe.bind(("127.0.0.1", port))
        probe.listen()
    except OSError as exc:
        assert exc.errno == errno.EADDRINUSE
        return True
    finally:
        probe.close()
    return False


@contextmanager
def holding_8080() -> Iterator[None]:
    """Port 8080 is taken for the block (by us, or by whatever held it already)."""
    blocker = socket.socket()
    try:
        blocker.bind(("127.0.0.1", 8080))
        blocker.listen()
    except OSError:
        pass  # something already holds 8080: just as good
    try:
        yield
    finally:
        blocker.close()


async def test_br22_free_port_with_8080_taken_twenty_requests_port_released_on_exit() -> None:
    with holding_8080():
        rec: list[str] = []
        app, counts = counting_app(rec)
        async with app.test_client() as client:
            port = client.port
            assert port is not None
            assert port != 8080
            assert str(client.make_url("/")) == f"http://127.0.0.1:{port}/"
            for _ in range(20):
                resp = await client.get("/db")
                assert await resp.text() == "ready"
            assert listening_on(port)
        assert counts == ONCE
        assert not listening_on(port)


def test_br22_under_pytest_xdist_with_4_workers_and_8080_taken() -> None:
    """BR-22 step 4: the recommended tests (docs/testing.md) and the port test above,
    in 4 xdist worker processes at once, with 8080 held: every test passes."""
    root = Path(__file__).resolve().parent.parent
    with holding_8080():
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-n",
                "4",
                "-p",
                "no:cacheprovider",
                "tests/test_docs_testing_example.py",
                "tests/test_testing.py::"
                "test_br22_free_port_with_8080_taken_twenty_requests_port_released_on_exit",
            ],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=120,
        )
    summary = done.stdout.strip().splitlines()[-1]
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert re.fullmatch(r"\d+ passed in [\d.]+s.*", summary), summary
    assert "error" not in summary.lower()


# -- issue 4 item 7: isolation of the default registry ---------------------------------


def test_isolated_registry_gives_module_level_decorators_a_fresh_default() -> None:
    before = default_registry()
    with isolated_registry() as first:
        assert default_registry() is first

        @hookweb.pre_start
        def from_first(app: App) -> None:
            pass  # pragma: no cover

        first_app = App()
        first_app.web_app  # noqa: B018  build: freezes the isolated registry
    with isolated_registry() as second:
        assert second is not first

        @hookweb.pre_start  # the first registry is frozen; this one is fresh
        def from_second(app: App) -> None:
            pass  # pragma: no cover

        assert list(App().on_pre_start) == [from_second]
    assert list(first_app.on_pre_start) == [from_first]
    assert default_registry() is before
    assert from_first not in [h.fn for h in before.hooks()]
    assert from_second not in [h.fn for h in before.hooks()]


def test_isolated_registry_restores_the_default_when_the_block_raises() -> None:
    before = default_registry()
    with pytest.raises(KeyError), isolated_registry():
        raise KeyError("boom")
    assert default_registry() is before


# The plugin's fixture, across two tests: what one registers, the other never sees.
FIRED: list[str] = []


async def test_plugin_registry_fixture_a(
    hookweb_registry: Registry, hookweb_client: ClientFactory
) -> None:
    @hookweb.pre_start
    def test_a_hook(app: App) -> None:
        FIRED.append("a")

    assert default_registry() is hookweb_registry
    await hookweb_client(App())
    assert FIRED == ["a"]


async def test_plugin_registry_fixture_b(
    hookweb_registry: Registry, hookweb_client: ClientFactory
) -> None:
    FIRED.clear()
    assert hookweb_registry.hooks() == []
    await hookweb_client(App())
    assert FIRED == []


# -- issue 4 item 8: the plugin's client fixture ---------------------------------------


def test_plugin_client_fixture_in_a_pytest_run(tmp_path: Any) -> None:
    import subprocess

    (tmp_path / "pytest.ini").write_text(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
    )
    (tmp_path / "test_plugin.py").write_text(
        """
from hookweb import App, Registry

rec = []
reg = Registry()

@reg.pre_start
async def up(app):
    rec.append("up")

@reg.cleanup
async def down(app):
    rec.append("down")

@reg.get("/")
async def index(request):
    from aiohttp import web
    return web.Response(text="ok")

broken = Registry()

@broken.cleanup
async def flush(app):
    raise OSError("disk full")

async def test_two_clients(hookweb_client):
    first = await hookweb_client(App(reg))
    second = await hookweb_client(App(reg))
    for client in (first, second):
        for _ in range(3):
            assert await (await client.get("/")).text() == "ok"
    assert rec == ["up", "up"]

def test_both_exited():
    assert rec == ["up", "up", "down", "down"]

async def test_stop_failure_is_a_teardown_error(hookweb_client):
    await hookweb_client(App(broken))
    assert False, "the body failed"
"""
    )
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfE"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, output
    assert "1 failed, 2 passed, 1 error" in output, output
    # The body's failure and the stop failure are both reported, each in full.
    assert "E       AssertionError: the body failed" in output
    assert "hookweb.errors.CleanupError: hookweb: 1 stop step failed" in output
    assert "ERROR test_plugin.py::test_stop_failure_is_a_teardown_error" in output
