"""Raw aiohttp: ``web.run_app``, access log off; ``/`` text and ``/json``.

``--callback`` adds one native ``on_response_prepare`` receiver that sets a header
(the counterpart of hookweb's one ``@response_prepare`` hook).
``--loop uvloop`` runs it on uvloop.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import JSON, TEXT, parser


async def hello(request: web.Request) -> web.Response:
    return web.Response(text=TEXT)


async def hello_json(request: web.Request) -> web.Response:
    return web.json_response(JSON)


async def set_header(request: web.BaseRequest, response: web.StreamResponse) -> None:
    response.headers["X-Bench"] = "1"


def main() -> None:
    p = parser(__doc__ or "")
    p.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    p.add_argument("--callback", action="store_true")
    args = p.parse_args()
    app = web.Application()
    app.router.add_get("/", hello)
    app.router.add_get("/json", hello_json)
    if args.callback:
        app.on_response_prepare.append(set_header)
    loop: asyncio.AbstractEventLoop | None = None
    if args.loop == "uvloop":
        import uvloop

        loop = uvloop.new_event_loop()
    web.run_app(
        app,
        host=args.host,
        port=args.port,
        access_log=None,
        print=None,
        shutdown_timeout=5.0,
        loop=loop,
    )


if __name__ == "__main__":
    main()
