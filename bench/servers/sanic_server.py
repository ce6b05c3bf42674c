"""Sanic, single process, access log off (uvloop when installed, as Sanic does)."""

from __future__ import annotations

import sys
from pathlib import Path

from sanic import Request, Sanic
from sanic.response import HTTPResponse, json, text

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import JSON, TEXT, parser

app = Sanic("bench")


@app.get("/")
async def hello(request: Request) -> HTTPResponse:
    return text(TEXT)


@app.get("/json")
async def hello_json(request: Request) -> HTTPResponse:
    return json(JSON)


def main() -> None:
    args = parser(__doc__ or "").parse_args()
    app.run(
        host=args.host,
        port=args.port,
        single_process=True,
        access_log=False,
        debug=False,
        motd=False,
    )


if __name__ == "__main__":
    main()
