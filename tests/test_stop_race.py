"""A connection that reaches the server at the moment a stop begins is served.

Two exact interleavings of the event loop, each reproduced deterministically
with a real listening socket on 127.0.0.1:

- the stop begins in the loop iteration right after asyncio accepted the
  connection, before the accepted socket became a transport (asyncio drops such
  a socket silently when its server is already closed: the client sees a reset);
- the stop begins while the connection still waits in the kernel's accept queue
  (closing the only listening socket resets it);
- with TLS, the stop begins after the accept, before the client's handshake
  (aiohttp lists a connection only once its handshake is done).

The interleavings are those of asyncio's selector loop, where both failed
before ``_stop_accepting`` handled them. The same scenarios also run on uvloop (the loop
``--loop auto`` picks with hookweb[speed]), whose order differs: there they
check that the stop path works on it, not the race.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from pathlib import Path

import pytest
from aiohttp import web

from hookweb import App, Registry
from hookweb._serve import ACCEPT_GRACE, StopControl, loop_factory, make_options, serve

REQUEST = b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"


def serving_app(events: list[str] | None = None) -> App:
    """GET / answers "served"; ``events`` records the request and the cleanup hook."""
    seen = events if events is not None else []
    reg = Registry()

    @reg.get("/")
    async def index(request: web.Request) -> web.Response:
        seen.append("request")
        return web.Response(text="served")

    @reg.cleanup
    def close(app: App) -> None:
        seen.append("cleanup")

    return App(registry=reg)


async def start(app: App, **options: object) -> tuple[asyncio.Task[None], StopControl]:
    control = StopControl()
    serving = asyncio.Event()
    opts = make_options({"port": 0, "access_log": False, **options})
    task = asyncio.create_task(
        serve(app, opts, handle_signals=False, control=control, on_serving=serving.set)
    )
    await asyncio.wait_for(serving.wait(), 5)
    return task, control


async def served_while_stopping(stop_after_accept: bool) -> bytes:
    app = serving_app()
    task, control = await start(app)
    host, port = app.addresses[0][:2]
    loop = asyncio.get_running_loop()
    # Blocking connect and send while the loop is not running: the connection
    # waits in the accept queue with its request.
    client = socket.create_connection((host, port))
    try:
        client.sendall(REQUEST)
        client.setblocking(False)
        if stop_after_accept:
            # Runs before this iteration's accept callback: the stop resumes after
            # the accept and before the accepted socket is set up.
            loop.call_soon(control.request, "SIGTERM")
        else:
            control.request("SIGTERM")  # the stop resumes before any accept
        data = b""
        async with asyncio.timeout(5):
            while chunk := await loop.sock_recv(client, 65536):
                data += chunk
    finally:
        client.close()
        await asyncio.wait_for(task, 5)
    return data


def served_on(loop: str, *, stop_after_accept: bool) -> bytes:
    with asyncio.Runner(loop_factory=loop_factory(loop)) as runner:
        return runner.run(served_while_stopping(stop_after_accept))


LOOPS = pytest.mark.parametrize("loop", ["asyncio", "uvloop"])


@LOOPS
def test_a_connection_accepted_as_the_stop_begins_is_served(loop: str) -> None:
    data = served_on(loop, stop_after_accept=True)
    assert data.startswith(b"HTTP/1.1 200 OK\r\n") and data.endswith(b"\r\n\r\nserved"), data


@LOOPS
def test_a_connection_waiting_in_the_accept_queue_as_the_stop_begins_is_served(loop: str) -> None:
    data = served_on(loop, stop_after_accept=False)
    assert data.startswith(b"HTTP/1.1 200 OK\r\n") and data.endswith(b"\r\n\r\nserved"), data


async def served_after_a_late_handshake(
    certfile: Path, keyfile: Path, events: list[str]
) -> bytes:
    app = serving_app(events)
    task, control = await start(app, ssl_certfile=str(certfile), ssl_keyfile=str(keyfile))
    host, port = app.addresses[0][:2]
    client = socket.create_connection((host, port))
    try:
        await asyncio.sleep(0.1)  # accepted; the client has not begun its handshake
        control.request("SIGTERM")
        await asyncio.sleep(0.1)  # the stop is under way: the listener is closed
        context = ssl.create_default_context(cafile=str(certfile))
        reader, writer = await asyncio.open_connection(
            sock=client, ssl=context, server_hostname="127.0.0.1"
        )
        writer.write(REQUEST)
        async with asyncio.timeout(5):
            data = await reader.read()
        writer.close()
    finally:
        client.close()
        await asyncio.wait_for(task, 5)
    return data


@LOOPS
def test_a_tls_connection_accepted_before_the_stop_finishes_its_handshake_and_is_served(
    loop: str, certificate: tuple[Path, Path]
) -> None:
    events: list[str] = []
    with asyncio.Runner(loop_factory=loop_factory(loop)) as runner:
        data = runner.run(served_after_a_late_handshake(*certificate, events))
    assert data.startswith(b"HTTP/1.1 200 OK\r\n") and data.endswith(b"\r\n\r\nserved"), data
    # Served as part of the graceful stop, not by a connection the stop forgot: a
    # process would have exited after the cleanup hooks, dropping it.
    assert events == ["request", "cleanup"]


async def stop_seconds_after_a_failed_handshake(certfile: Path, keyfile: Path) -> float:
    app = serving_app()
    task, control = await start(app, ssl_certfile=str(certfile), ssl_keyfile=str(keyfile))
    host, port = app.addresses[0][:2]
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(REQUEST)  # plain HTTP on the TLS port: the handshake fails
    await asyncio.wait_for(reader.read(), 5)  # the server closed it
    writer.close()
    loop = asyncio.get_running_loop()
    began = loop.time()
    control.request("SIGTERM")
    await asyncio.wait_for(task, 5)
    return loop.time() - began


@LOOPS
def test_a_failed_tls_handshake_does_not_hold_the_stop_up(
    loop: str, certificate: tuple[Path, Path]
) -> None:
    with asyncio.Runner(loop_factory=loop_factory(loop)) as runner:
        seconds = runner.run(stop_seconds_after_a_failed_handshake(*certificate))
    # The stop waits up to ACCEPT_GRACE only for connections that may still send a
    # request; a connection that is gone must not make it wait.
    assert seconds < ACCEPT_GRACE / 2, seconds
