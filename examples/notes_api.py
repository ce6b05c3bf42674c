"""A small notes service: SQLite in a lifespan, security headers, JSON routes.

- a ``lifespan`` opens the SQLite database before the socket is bound and
  closes it after the last request finished;
- a ``post_start`` hook records the real URL (port 0 resolved), standing in
  for registering the service with a registry or load balancer;
- ``response_prepare`` hooks add security headers (``hookweb.security_headers``)
  and an ``X-Request-Id`` to every response, errors and 404s included;
- every write is committed before the answer goes out, so no note is lost
  when the server stops or crashes.

Run it (notes go to ./notes.db, or to the file named by NOTES_DB):

    python examples/notes_api.py              # http://127.0.0.1:8080
    python examples/notes_api.py --port 9000  # or PORT=9000

Try it from another terminal:

    curl -i 127.0.0.1:8080/notes -d '{"text": "buy milk"}'
    curl -i 127.0.0.1:8080/notes
    curl -i 127.0.0.1:8080/notes/1
    curl -i 127.0.0.1:8080/notes -d '{not json'    # 400, says why

Stop it with Ctrl+C, start it again: the notes are still there.
"""

from __future__ import annotations

import argparse
import os
import re
import sqlite3
import uuid
from collections.abc import AsyncIterator
from contextlib import closing
from datetime import UTC, datetime

from aiohttp import web

from hookweb import App, Registry, security_headers

DB_PATH = os.environ.get("NOTES_DB", "notes.db")

# A private registry: importing this module adds nothing to anybody else's App.
app = App(Registry())

# Typed state keys: hooks store with app[KEY] = ..., handlers read request.app[KEY].
DB = web.AppKey("db", sqlite3.Connection)
PUBLIC_URL = web.AppKey("public_url", str)

# An incoming X-Request-Id is echoed only if it looks like an id (no spaces, bounded).
REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
MAX_ID = 2**63 - 1  # SQLite's largest INTEGER

# The SQLite calls below run inline on the event loop: each is one small
# statement on a local file and takes well under a millisecond. For slow
# queries, move them off the loop with asyncio.to_thread (open the connection
# with check_same_thread=False) or use an async driver.


# -- lifecycle -----------------------------------------------------------------


@app.lifespan
async def database(app: App) -> AsyncIterator[None]:
    with closing(sqlite3.connect(DB_PATH)) as db:
        db.row_factory = sqlite3.Row
        with db:  # commits on success
            db.execute(
                "CREATE TABLE IF NOT EXISTS notes ("
                " id INTEGER PRIMARY KEY AUTOINCREMENT,"
                " text TEXT NOT NULL,"
                " created TEXT NOT NULL)"
            )
        app[DB] = db
        print(f"lifespan: opened {DB_PATH}", flush=True)
        yield  # serving
    print(f"lifespan: closed {DB_PATH}", flush=True)


@app.post_start
async def register(app: App) -> None:
    url = app.urls[0]
    app[PUBLIC_URL] = url  # a real service would register this URL with its registry
    print(f"post_start: registered {url}", flush=True)


# nosniff, DENY framing, no referrer, same-origin opener; a JSON API loads
# nothing, so its content security policy allows nothing. Add hsts=True when the
# service is reached over HTTPS (docs/security.md).
app.response_prepare(security_headers(content_security_policy="default-src 'none'"))


@app.response_prepare
async def request_id(request: web.Request, response: web.StreamResponse) -> None:
    incoming = request.headers.get("X-Request-Id", "")
    valid = REQUEST_ID.fullmatch(incoming) is not None
    response.headers["X-Request-Id"] = incoming if valid else uuid.uuid4().hex


# -- routes ------------------------------------------------------------------------


def error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


@app.get("/")
async def index(request: web.Request) -> web.Response:
    return web.json_response({"service": "notes", "url": request.app[PUBLIC_URL]})


@app.post("/notes")
async def create_note(request: web.Request) -> web.Response:
    try:
        body = await request.json()
    except ValueError as exc:  # json.JSONDecodeError, or a body that is not UTF-8
        return error(400, f"request body is not valid JSON: {exc}")
    if not isinstance(body, dict):
        return error(400, 'request body must be a JSON object like {"text": "..."}')
    text = body.get("text")
    if not isinstance(text, str) or not text.strip():
        return error(400, '"text" is required and must be a non-empty string')

    db = request.app[DB]
    created = datetime.now(UTC).isoformat(timespec="seconds")
    with db:  # commit before answering: a 201 means the note is on disk
        cursor = db.execute("INSERT INTO notes (text, created) VALUES (?, ?)", (text, created))
    note = {"id": cursor.lastrowid, "text": text, "created": created}
    location = request.app.router["note"].url_for(id=str(note["id"]))
    return web.json_response(note, status=201, headers={"Location": str(location)})


@app.get("/notes")
async def list_notes(request: web.Request) -> web.Response:
    rows = request.app[DB].execute("SELECT id, text, created FROM notes ORDER BY id")
    return web.json_response({"notes": [dict(row) for row in rows]})


@app.get(r"/notes/{id:\d+}", name="note")
async def get_note(request: web.Request) -> web.Response:
    note_id = int(request.match_info["id"])
    row = None
    if note_id <= MAX_ID:  # a larger number is no SQLite id (and would not bind)
        query = "SELECT id, text, created FROM notes WHERE id = ?"
        row = request.app[DB].execute(query, (note_id,)).fetchone()
    if row is None:
        return error(404, f"note {note_id} not found")
    return web.json_response(dict(row))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="A small notes service on hookweb.")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8080")))
    app.run(port=parser.parse_args().port)
