"""Starlette on uvicorn (httptools, uvloop), one process, access log off."""

from __future__ import annotations

import sys
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import JSON, TEXT, parser


async def hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse(TEXT)


async def hello_json(request: Request) -> JSONResponse:
    return JSONResponse(JSON)


app = Starlette(routes=[Route("/", hello), Route("/json", hello_json)])


def main() -> None:
    args = parser(__doc__ or "").parse_args()
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
        lifespan="off",
    )


if __name__ == "__main__":
    main()
