"""Issue 5: nothing lost under faults. The CLI runs as a subprocess on 127.0.0.1.

Each test prints its figures (``pytest -s`` shows them); docs/reliability.md
publishes them.
"""

from __future__ import annotations

import asyncio
import random
import re
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest

from tests.support import APPS, WAIT, Proc, read_markers, wait_marker

CONNECTIONS = 32
LOAD_SECONDS = 2.4  # the whole load, signal included
SIGNAL_AT = 1.2  # seconds into the load
SHUTDOWN_TIMEOUT = 10.0


def marker(markers: Path, prefix: str) -> list[str]:
    return [m for m in read_markers(markers) if m.startswith(prefix)]


# -- 1. graceful stop under load --------------------------------------------------------


@dataclass
class Tally:
    sent_before_signal: int = 0
    completed: int = 0  # a full 200 with the right body
    refused: int = 0  # connect refused, or closed before one response byte: never accepted
    failed: list[str] = field(default_factory=list)  # anything else: a cut response
    signalled: float = 0.0


async def one_request(port: int, ms: int, ident: int, tally: Tally) -> bool:
    """One request on a new connection; False if it was refused."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except ConnectionRefusedError:
        tally.refused += 1
        return False
    if not tally.signalled:
        tally.sent_before_signal += 1
    data = b""
    try:
        request = f"GET /work?ms={ms}&id={ident} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        writer.write(request.encode())
        data = await asyncio.wait_for(reader.read(), WAIT)
    except (ConnectionResetError, BrokenPipeError):
        pass
    finally:
        writer.close()
    if not data:
        tally.refused += 1  # the listener closed before this connection was accepted
        return False
    head, _, body = data.partition(b"\r\n\r\n")
    length = re.search(rb"Content-Length: (\d+)", head)
    if (
        head.startswith(b"HTTP/1.1 200 ")
        and length is not None
        and len(body) == int(length.group(1)) == 4096
        and body.startswith(f"done {ident}\n".encode())
    ):
        tally.completed += 1
    else:
        tally.failed.append(data[:80].decode(errors="replace"))
    return True


async def drive_load(port: int, proc: Proc) -> Tally:
    """CONNECTIONS workers, one request per connection, handlers 50-500 ms; SIGTERM midway."""
    tally = Tally()
    rng = random.Random(5)
    loop = asyncio.get_running_loop()
    start = loop.time()
    ident = 0

    async def worker() -> None:
        nonlocal ident
        while loop.time() - start < LOAD_SECONDS:
            ident += 1
            if not await one_request(port, rng.randint(50, 500), ident, tally):
                assert tally.signalled, "refused before the signal"
                return  # one refusal per connection after the signal

    async def send_signal() -> None:
        await asyncio.sleep(SIGNAL_AT)
        tally.signalled = loop.time()
        proc.signal(signal.SIGTERM)

    await asyncio.gather(send_signal(), *(worker() for _ in range(CONNECTIONS)))
    return tally


async def test_sigterm_under_load_loses_no_accepted_request(
    run_cli: Callable[..., Proc], markers: Path
) -> None:
    proc = run_cli(
        "rel_load", "--port", "0", "--no-access-log", "--shutdown-timeout", str(SHUTDOWN_TIMEOUT)
    )
    _, port = proc.serving()
    tally = await drive_load(port, proc)
    code = await asyncio.to_thread(proc.wait, SHUTDOWN_TIMEOUT + 5)
    stop_seconds = time.monotonic() - tally.signalled  # loop.time() is time.monotonic()

    assert code == 0, proc.stderr
    assert tally.failed == [], tally.failed
    (shutdown,) = marker(markers, "shutdown")  # the stop hooks ran once
    (cleanup,) = marker(markers, "cleanup")
    in_flight = int(shutdown.split("=")[1])
    started, finished = (int(x.split("=")[1]) for x in cleanup.split()[1:])
    # Every request whose handler started got its complete response, and none more.
    assert started == finished == tally.completed
    assert in_flight > 0 and tally.refused > 0  # the signal really came mid-load
    assert stop_seconds < SHUTDOWN_TIMEOUT
    print(
        f"\nload: {CONNECTIONS} connections, in flight at the signal {in_flight},"
        f" sent before it {tally.sent_before_signal}, accepted {started},"
        f" completed {tally.completed}, failed {len(tally.failed)},"
        f" refused after it {tally.refused}, stop {stop_seconds:.2f} s"
    )


# -- 2. idle websockets do not hold the stop up ------------------------------------------


async def test_idle_websockets_are_closed_1001_and_the_stop_is_fast(
    run_cli: Callable[..., Proc], markers: Path
) -> None:
    proc = run_cli("rel_load", "--port", "0", "--shutdown-timeout", "30")
    _, port = proc.serving()
    async with aiohttp.ClientSession() as session:
        sockets = [await session.ws_connect(f"http://127.0.0.1:{port}/ws") for _ in range(8)]
        await sockets[0].send_str("hello")
        assert (await sockets[0].receive_str(timeout=WAIT)) == "hello"
        signalled = time.monotonic()
        proc.signal(signal.SIGTERM)
        closes = [await ws.receive(timeout=WAIT) for ws in sockets]
        code = await asyncio.to_thread(proc.wait)
        stop_seconds = time.monotonic() - signalled
        for ws in sockets:
            await ws.close()
    assert code == 0, proc.stderr
    assert [(m.type, m.data) for m in closes] == [(aiohttp.WSMsgType.CLOSE, 1001)] * 8
    assert [ws.close_code for ws in sockets] == [1001] * 8
    assert len(marker(markers, "shutdown")) == len(marker(markers, "cleanup")) == 1
    assert stop_seconds < 2.0, stop_seconds  # against a 30 s shutdown_timeout
    print(f"\nwebsockets: 8 idle, stop {stop_seconds:.2f} s (shutdown_timeout 30 s)")


# -- 3. supervised background tasks -------------------------------------------------------


def test_background_crash_is_named_and_stops_gracefully_with_exit_1(
    run_cli: Callable[..., Proc], markers: Path
) -> None:
    proc = run_cli("rel_stop:crash_app", "--port", "0")
    proc.serving()
    assert proc.wait() == 1
    assert read_markers(markers) == ["poll_feed started", "shutdown", "cleanup"]
    line = "background task rel_stop:poll_feed crashed: RuntimeError: feed lost"
    assert f"hookweb: {line}" in proc.lines
    at = proc.lines.index(f"hookweb: {line}")
    assert proc.lines[at + 1] == "Traceback (most recent call last):"  # the user's frames
    assert 'raise RuntimeError("feed lost")' in proc.stderr
    assert proc.lines[-1] == f"hookweb: stopped with 1 failed stop step: {line}"


def test_background_task_ignoring_cancellation_is_bounded_by_its_timeout(
    run_cli: Callable[..., Proc], markers: Path
) -> None:
    proc = run_cli("rel_stop:stubborn_app", "--port", "0")
    proc.serving()
    signalled = time.monotonic()
    proc.signal(signal.SIGTERM)
    assert proc.wait() == 1
    stop_seconds = time.monotonic() - signalled
    assert read_markers(markers) == [
        "keeps_going started",
        "keeps_going ignored the cancel",
        "cleanup",
    ]
    line = (
        "background task rel_stop:keeps_going did not stop after cancellation;"
        " it was left running"
    )
    assert proc.lines[-1] == f"hookweb: stopped with 1 failed stop step: {line}"
    assert stop_seconds < 5, stop_seconds  # timeout=0.5, not the 10 s default
    print(f"\nbackground task ignoring cancellation (timeout=0.5): stop {stop_seconds:.2f} s")


# -- 4. timeouts everywhere a hook can hang -----------------------------------------------


def test_timed_out_stop_hooks_are_named_and_the_rest_still_runs(
    run_cli: Callable[..., Proc], markers: Path
) -> None:
    proc = run_cli("rel_stop:timeouts_app", "--port", "0")
    proc.serving()
    proc.signal(signal.SIGTERM)
    assert proc.wait() == 1
    assert read_markers(markers) == ["deregister started", "flush_cache started", "close_pool"]
    own = "shutdown hook rel_stop:deregister timed out after 0.2 s"  # its own timeout=
    default = "cleanup hook rel_stop:flush_cache timed out after 0.4 s"  # App(hook_timeout=)
    assert f"hookweb: {own}" in proc.lines
    assert f"hookweb: {default}" in proc.lines
    assert proc.lines[-1] == f"hookweb: stopped with 2 failed stop steps: {own}; {default}"
    assert "Traceback" not in proc.stderr  # a timeout is the line alone


def test_stop_timeout_bounds_a_hook_without_timeout(
    run_cli: Callable[..., Proc], markers: Path
) -> None:
    proc = run_cli("rel_stop:hang_app", "--port", "0", "--stop-timeout", "1")
    proc.serving()
    signalled = time.monotonic()
    proc.signal(signal.SIGTERM)
    assert proc.wait() == 1
    stop_seconds = time.monotonic() - signalled
    assert read_markers(markers) == ["wait_for_peer started"]  # cleanup skipped
    assert proc.lines[-1] == (
        "hookweb: the stop took longer than stop_timeout (1 s): cancelled shutdown hook"
        " rel_stop:wait_for_peer; skipped the remaining stop steps: cleanup hook"
        " rel_stop:close_files"
    )
    assert "Traceback" not in proc.stderr
    assert stop_seconds < 5, stop_seconds
    print(f"\nhanging shutdown hook, --stop-timeout 1: exit 1 after {stop_seconds:.2f} s")


def test_stop_timeout_bounds_the_unwinding_after_a_signal_during_start(
    run_cli: Callable[..., Proc], markers: Path
) -> None:
    proc = run_cli("rel_stop:start_hang_app", "--port", "0", "--stop-timeout", "1")
    wait_marker(markers, "warm_cache started")
    signalled = time.monotonic()
    proc.signal(signal.SIGTERM)
    assert proc.wait() == 1
    stop_seconds = time.monotonic() - signalled
    assert read_markers(markers) == [
        "connection opened",
        "warm_cache started",
        "connection closing",
    ]
    assert proc.lines == [
        "hookweb: SIGTERM during start: cancelling the start and unwinding",
        "hookweb: stop requested while pre_start hook rel_stop:warm_cache was running",
        "hookweb: the stop took longer than stop_timeout (1 s): cancelled lifespan exit"
        " rel_stop:connection; skipped the remaining stop steps: nothing",
    ]
    assert stop_seconds < 5, stop_seconds


def test_no_start_step_begins_after_a_stop_signal_even_if_one_swallowed_it(
    run_cli: Callable[..., Proc], markers: Path
) -> None:
    proc = run_cli("rel_stop:swallow_app", "--port", "0", "--stop-timeout", "2")
    wait_marker(markers, "connect started")
    proc.signal(signal.SIGTERM)
    assert proc.wait() == 0
    # load_settings never began, nothing was bound (no shutdown hook); cleanup ran.
    assert read_markers(markers) == ["connect started", "connect gave up", "cleanup"]
    assert proc.lines == [
        "hookweb: SIGTERM during start: cancelling the start and unwinding",
        "hookweb: stopped before serving",
    ]


def test_a_stop_signal_while_the_sockets_are_bound_still_runs_the_cleanup_hooks(
    run_cli: Callable[..., Proc], markers: Path
) -> None:
    proc = run_cli("rel_stop:signal_at_bind_app", "--port", "0")
    assert proc.wait() == 0
    assert read_markers(markers) == ["pre_start", "cleanup"]
    assert proc.lines == [
        "hookweb: SIGTERM during start: cancelling the start and unwinding",
        "hookweb: stopped before serving",
    ]


def test_a_last_post_start_hook_that_swallows_the_stop_signal_is_stopped_gracefully(
    run_cli: Callable[..., Proc], markers: Path
) -> None:
    proc = run_cli("rel_stop:swallow_last_app", "--port", "0", "--stop-timeout", "2")
    wait_marker(markers, "register started")
    proc.signal(signal.SIGTERM)
    assert proc.wait() == 0
    assert read_markers(markers) == [
        "register started",
        "register gave up",
        "shutdown",
        "cleanup",
    ]
    assert proc.lines[:2] == [
        "hookweb: SIGTERM during start: cancelling the start and unwinding",
        "hookweb: the start finished although a stop was asked for: stopping",
    ]
    assert proc.lines[-1] == "hookweb: stopped"


def test_stop_timeout_names_a_start_hook_that_ignores_the_cancel(
    run_cli: Callable[..., Proc], markers: Path
) -> None:
    proc = run_cli("rel_stop:stubborn_start_app", "--port", "0", "--stop-timeout", "1")
    wait_marker(markers, "wait_for_leader started")
    proc.signal(signal.SIGTERM)
    assert proc.wait() == 1
    assert read_markers(markers) == [
        "wait_for_leader started",
        "wait_for_leader ignored the cancel",
        "cleanup",  # the unwinding still ran
    ]
    assert proc.lines[-1] == (
        "hookweb: the stop took longer than stop_timeout (1 s): cancelled pre_start hook"
        " rel_stop:wait_for_leader; skipped the remaining stop steps: nothing"
    )


def test_stop_timeout_holds_when_the_cancelled_hook_swallows_the_cancel(
    run_cli: Callable[..., Proc], markers: Path
) -> None:
    proc = run_cli("rel_stop:swallow_stop_app", "--port", "0", "--stop-timeout", "1")
    proc.serving()
    proc.signal(signal.SIGTERM)
    assert proc.wait() == 1
    assert read_markers(markers) == ["flush started", "flush ignored the cancel", "cleanup"]
    assert proc.lines[-1] == (
        "hookweb: the stop took longer than stop_timeout (1 s): cancelled shutdown hook"
        " rel_stop:flush_slowly; skipped the remaining stop steps: nothing"
    )


def test_stop_timeout_defaults_to_shutdown_timeout_plus_30() -> None:
    from hookweb._serve import ServeOptions

    assert ServeOptions().stop_bound() == 90.0  # shutdown_timeout 60 + 30
    assert ServeOptions(shutdown_timeout=5).stop_bound() == 35.0
    assert ServeOptions(stop_timeout=2).stop_bound() == 2.0
    with pytest.raises(ValueError, match="stop_timeout"):
        ServeOptions(stop_timeout=-1).check()


@pytest.mark.parametrize("where", ["flag", "env"])
def test_stop_timeout_bad_value_is_a_usage_error(
    where: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from hookweb import cli

    args = ["rel_stop:hang_app", "--app-dir", str(APPS)]
    if where == "flag":
        args += ["--stop-timeout", "-3"]
    else:
        monkeypatch.setenv("HOOKWEB_STOP_TIMEOUT", "soon")
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "stop_timeout" in err.lower().replace("-", "_"), err
