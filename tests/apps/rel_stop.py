"""Fixture apps for tests/test_reliability.py: background tasks and hanging stop hooks."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator

from cli_markers import record

from hookweb import App, Registry

# A background task that crashes while serving: graceful stop, exit 1.
crash = Registry()


@crash.background
async def poll_feed(app: App) -> None:
    record("poll_feed started")
    await asyncio.sleep(0.3)
    raise RuntimeError("feed lost")


@crash.shutdown
def crash_shutdown(app: App) -> None:
    record("shutdown")


@crash.cleanup
def crash_cleanup(app: App) -> None:
    record("cleanup")


crash_app = App(crash, name="crash_app")

# A background task that ignores its cancellation: bounded by its timeout=.
stubborn = Registry()


@stubborn.background(timeout=0.5)
async def keeps_going(app: App) -> None:
    record("keeps_going started")
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        record("keeps_going ignored the cancel")
        await asyncio.sleep(3600)  # the loop's final cancel at exit ends this


@stubborn.cleanup
def stubborn_cleanup(app: App) -> None:
    record("cleanup")


stubborn_app = App(stubborn, name="stubborn_app")

# Timeouts: one of its own, one from App(hook_timeout=...), no other step skipped.
timeouts = Registry()


@timeouts.shutdown(timeout=0.2)
async def deregister(app: App) -> None:
    record("deregister started")
    await asyncio.Event().wait()


@timeouts.cleanup
async def close_pool(app: App) -> None:
    record("close_pool")


@timeouts.cleanup
async def flush_cache(app: App) -> None:
    record("flush_cache started")
    await asyncio.Event().wait()


timeouts_app = App(timeouts, name="timeouts_app", hook_timeout=0.4)

# A shutdown hook without any timeout that hangs: only the stop bound ends it.
hang = Registry()


@hang.shutdown
async def wait_for_peer(app: App) -> None:
    record("wait_for_peer started")
    await asyncio.Event().wait()


@hang.cleanup
async def close_files(app: App) -> None:
    record("close_files")


hang_app = App(hang, name="hang_app")

# A start that hangs, then an unwinding that hangs: the stop bound covers the unwinding.
start_hang = Registry()


@start_hang.lifespan
async def connection(app: App) -> AsyncIterator[None]:
    record("connection opened")
    try:
        yield
    finally:
        record("connection closing")
        await asyncio.Event().wait()  # the peer never answers the goodbye


@start_hang.pre_start
async def warm_cache(app: App) -> None:
    record("warm_cache started")
    await asyncio.Event().wait()


start_hang_app = App(start_hang, name="start_hang_app")

# Start hooks that swallow the cancel of a stop signal and return.
swallow = Registry()


@swallow.pre_start
async def connect_with_retries(app: App) -> None:
    record("connect started")
    try:
        await asyncio.sleep(30)
    except asyncio.CancelledError:
        record("connect gave up")  # a client library that treats a cancel as "stop retrying"


@swallow.pre_start
def load_settings(app: App) -> None:
    record("load_settings")  # must not begin once a stop was asked for


@swallow.shutdown
def swallow_shutdown(app: App) -> None:
    record("shutdown")


@swallow.cleanup
def swallow_cleanup(app: App) -> None:
    record("cleanup")


swallow_app = App(swallow, name="swallow_app")

swallow_last = Registry()


@swallow_last.post_start
async def register_with_retries(app: App) -> None:
    record("register started")
    try:
        await asyncio.sleep(30)
    except asyncio.CancelledError:
        record("register gave up")


@swallow_last.shutdown
def swallow_last_shutdown(app: App) -> None:
    record("shutdown")


@swallow_last.cleanup
def swallow_last_cleanup(app: App) -> None:
    record("cleanup")


swallow_last_app = App(swallow_last, name="swallow_last_app")

# A start hook that ignores the cancel and goes on waiting: only the stop bound ends it.
stubborn_start = Registry()


@stubborn_start.pre_start
async def wait_for_leader(app: App) -> None:
    record("wait_for_leader started")
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        record("wait_for_leader ignored the cancel")
        await asyncio.sleep(3600)


@stubborn_start.cleanup
def stubborn_start_cleanup(app: App) -> None:
    record("cleanup")


stubborn_start_app = App(stubborn_start, name="stubborn_start_app")

# A stop signal that lands while the listening sockets are being set up.
signal_at_bind = Registry()


@signal_at_bind.pre_start
def send_sigterm_to_self(app: App) -> None:
    record("pre_start")
    os.kill(os.getpid(), signal.SIGTERM)  # handled at the loop's next turn: the bind


@signal_at_bind.cleanup
def signal_at_bind_cleanup(app: App) -> None:
    record("cleanup")


signal_at_bind_app = App(signal_at_bind, name="signal_at_bind_app")

# A shutdown hook that swallows the stop bound's cancel once and goes on: still too late.
swallow_stop = Registry()


@swallow_stop.shutdown
async def flush_slowly(app: App) -> None:
    record("flush started")
    try:
        await asyncio.sleep(30)
    except asyncio.CancelledError:
        record("flush ignored the cancel")
        await asyncio.sleep(0.3)


@swallow_stop.cleanup
def swallow_stop_cleanup(app: App) -> None:
    record("cleanup")


swallow_stop_app = App(swallow_stop, name="swallow_stop_app")
