"""hookweb with the same routes as ``aiohttp_server.py``, access log off.

``--hook`` adds one ``@response_prepare`` hook that sets a header (as
``aiohttp_server.py --callback`` does natively); ``--hooks N`` adds N hooks that do
nothing (the per-hook cost series); ``--middleware`` adds one pass-through
middleware; ``--loop auto|asyncio|uvloop`` as ``hookweb.run_app``.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

import hookweb

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import JSON, TEXT, parser


def make_app(hook: bool, hooks: int, middleware: bool) -> hookweb.App:
    reg = hookweb.Registry("bench")

    @reg.get("/")
    async def hello(request: web.Request) -> web.Response:
        return web.Response(text=TEXT)

    @reg.get("/json")
    async def hello_json(request: web.Request) -> web.Response:
        return web.json_response(JSON)

    if hook:

        @reg.response_prepare
        async def set_header(request: web.BaseRequest, response: web.StreamResponse) -> None:
            response.headers["X-Bench"] = "1"

    for _ in range(hooks):

        @reg.response_prepare
        async def noop(request: web.BaseRequest, response: web.StreamResponse) -> None:
            return None

    if middleware:

        @reg.middleware
        async def passthrough(
            request: web.Request,
            handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
        ) -> web.StreamResponse:
            return await handler(request)

    return hookweb.App(reg, name="bench")


def main() -> None:
    p = parser(__doc__ or "")
    p.add_argument("--loop", choices=("auto", "asyncio", "uvloop"), default="auto")
    p.add_argument("--hook", action="store_true")
    p.add_argument("--hooks", type=int, default=0)
    p.add_argument("--middleware", action="store_true")
    args = p.parse_args()
    app = make_app(args.hook, args.hooks, args.middleware)
    hookweb.run_app(
        app,
        host=args.host,
        port=args.port,
        access_log=False,
        log_level="warning",
        shutdown_timeout=5.0,
        loop=args.loop,
    )


if __name__ == "__main__":
    main()
