"""BR-02: a pre_start hook starts a task waiting on a queue; cleanup cancels and awaits it."""

from __future__ import annotations

import asyncio

from aiohttp import web
from cli_markers import record

from hookweb import App, Registry

reg = Registry()
TASK = web.AppKey("task", asyncio.Task[None])


async def _consume(queue: asyncio.Queue[int]) -> None:
    while True:
        await queue.get()


@reg.pre_start
async def start_consumer(app: App) -> None:
    queue: asyncio.Queue[int] = asyncio.Queue()
    app[TASK] = asyncio.get_running_loop().create_task(_consume(queue))
    record("pre_start")


@reg.post_start
async def ready(app: App) -> None:
    record("post_start")


@reg.cleanup
async def stop_consumer(app: App) -> None:
    if TASK in app:
        task = app[TASK]
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
    record("cleanup")


app = App(reg)
