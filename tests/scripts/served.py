"""A script that serves with ``app.run()``; tests drive it as a subprocess.

HOOKWEB_T_MARKERS: a file each hook appends its name to.
HOOKWEB_T_MODE: "normal", "hang_start" (pre_start never returns) or
"slow_shutdown" (the shutdown hook takes 30 s).
"""

from __future__ import annotations

import asyncio
import os
import sys

from aiohttp import web

from hookweb import App, Registry

reg = Registry()
MODE = os.environ.get("HOOKWEB_T_MODE", "normal")


def record(line: str) -> None:
    with open(os.environ["HOOKWEB_T_MARKERS"], "a") as f:
        f.write(line + "\n")


@reg.pre_start
async def pre_start(app: App) -> None:
    record("pre_start")
    if MODE == "hang_start":
        await asyncio.Event().wait()


@reg.post_start
def post_start(app: App) -> None:
    record("post_start")


@reg.shutdown
async def shutdown(app: App) -> None:
    record("shutdown")
    if MODE == "slow_shutdown":
        await asyncio.sleep(30)


@reg.cleanup
def cleanup(app: App) -> None:
    record("cleanup")


@reg.get("/slow")
async def slow(request: web.Request) -> web.Response:
    await asyncio.sleep(1.0)
    record("slow done")
    return web.Response(text="done")


if __name__ == "__main__":
    App(reg, name="served").run(port=int(sys.argv[1]), access_log=False)
