"""The four server hooks of the seed article, in the article's own spelling.

Each hook prints a line as it runs, so you can watch the order: pre_start
before the socket is bound, post_start once it listens, response_prepare
before the headers of every response go out, cleanup after the server stopped.

Run it:

    python examples/seed_hooks.py              # http://127.0.0.1:8080
    python examples/seed_hooks.py --port 9000  # or PORT=9000

Try it from another terminal:

    curl -i 127.0.0.1:8080/          # 200, "X-Powered-By: hookweb", security headers
    curl -i 127.0.0.1:8080/missing   # 404, with the same header

Then press Ctrl+C: cleanup runs and the process exits 0.
"""

from __future__ import annotations

import argparse
import os

from aiohttp import web

from hookweb import App, security_headers

app = App()


@app.get("/")
async def index(request: web.Request) -> web.Response:
    return web.Response(text="Hello from hookweb\n")


async def pre_start(app: App) -> None:
    print("pre_start: nothing is listening yet", flush=True)


async def post_start(app: App) -> None:
    print(f"post_start: listening on {', '.join(app.urls)}", flush=True)


async def cleanup(app: App) -> None:
    print("cleanup: the server has stopped", flush=True)


async def response_prepare(request: web.Request, response: web.StreamResponse) -> None:
    response.headers["X-Powered-By"] = "hookweb"
    print(f"response_prepare: {request.method} {request.path} -> {response.status}", flush=True)


app.on_pre_start.append(pre_start)
app.on_post_start.append(post_start)
app.on_cleanup.append(cleanup)
app.on_response_prepare.append(response_prepare)
# Not in the article: hookweb's ready hook for the usual security headers
# (nosniff, no framing, no referrer; docs/security.md).
app.on_response_prepare.append(security_headers())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="The seed article's hooks on hookweb.")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8080")))
    app.run(port=parser.parse_args().port)
