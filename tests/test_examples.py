"""The examples run as they are: real processes, real sockets, real signals.

Each example is started as ``python examples/x.py --port 0`` (with ``-W error``,
so a warning fails it too), its port is read from hookweb's serving line on
stderr, it is driven over HTTP and stopped with a signal. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs POSIX signals")

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SERVING = re.compile(
    rb"^hookweb: serving \S+ on (http://127\.0\.0\.1:\d+) \(Ctrl\+C to quit\)$", re.MULTILINE
)
START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'",
}
FRESH_REQUEST_ID = re.compile(r"[0-9a-f]{32}")


@dataclass
class Stopped:
    returncode: int | None
    stdout: list[str]
    stderr: str


@dataclass
class Server:
    proc: asyncio.subprocess.Process
    url: str
    stderr: bytes  # read so far, up to and including the serving line

    async def stop(self, sig: signal.Signals = signal.SIGTERM) -> Stopped:
        self.proc.send_signal(sig)
        out, err = await asyncio.wait_for(self.proc.communicate(), STOP_TIMEOUT)
        return Stopped(
            self.proc.returncode, out.decode().splitlines(), (self.stderr + err).decode()
        )


@asynccontextmanager
async def serve(example: str, cwd: Path) -> AsyncIterator[Server]:
    """Start ``examples/<example>`` on a free port; kill it if the test left it running."""
    env = {k: v for k, v in os.environ.items() if k not in ("PORT", "NOTES_DB")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-W",
        "error",
        str(EXAMPLES / example),
        "--port",
        "0",
        cwd=cwd,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stderr is not None
    try:
        stderr = b""
        try:
            async with asyncio.timeout(START_TIMEOUT):
                while (match := SERVING.search(stderr)) is None:
                    line = await proc.stderr.readline()
                    if not line:
                        await proc.wait()
                        pytest.fail(
                            f"{example} exited with {proc.returncode} before serving:\n"
                            + stderr.decode()
                        )
                    stderr += line
        except TimeoutError:
            pytest.fail(f"{example} did not serve within {START_TIMEOUT} s:\n{stderr.decode()}")
        yield Server(proc, match.group(1).decode(), stderr)
    finally:
        if proc.returncode is None:
            proc.kill()
            await asyncio.wait_for(proc.communicate(), STOP_TIMEOUT)


def assert_clean_stop(stopped: Stopped, sig: signal.Signals) -> None:
    assert stopped.returncode == 0, stopped.stderr
    assert f"hookweb: {sig.name}: stopping gracefully" in stopped.stderr
    assert "Traceback" not in stopped.stderr, stopped.stderr


# -- examples/seed_hooks.py -------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
async def test_seed_hooks_run_in_the_documented_order(tmp_path: Path, sig: signal.Signals) -> None:
    async with serve("seed_hooks.py", tmp_path) as server:
        async with aiohttp.ClientSession(server.url) as session:
            async with session.get("/") as resp:
                assert resp.status == 200
                assert resp.headers["X-Powered-By"] == "hookweb"
                assert await resp.text() == "Hello from hookweb\n"
            async with session.get("/missing") as resp:
                assert resp.status == 404
                assert resp.headers["X-Powered-By"] == "hookweb"
                assert resp.headers["X-Content-Type-Options"] == "nosniff"
                assert resp.headers["X-Frame-Options"] == "DENY"
                assert "Strict-Transport-Security" not in resp.headers
        stopped = await server.stop(sig)

    assert_clean_stop(stopped, sig)
    assert stopped.stdout == [
        "pre_start: nothing is listening yet",
        f"post_start: listening on {server.url}",
        "response_prepare: GET / -> 200",
        "response_prepare: GET /missing -> 404",
        "cleanup: the server has stopped",
    ]


# -- examples/notes_api.py ----------------------------------------------------------


def assert_headers(resp: aiohttp.ClientResponse, request_id: str | None = None) -> str:
    """The security headers and an X-Request-Id (``request_id`` if echoed); returns the id."""
    for name, value in SECURITY_HEADERS.items():
        assert resp.headers.get(name) == value, (resp.status, name)
    got = resp.headers["X-Request-Id"]
    if request_id is None:
        assert FRESH_REQUEST_ID.fullmatch(got), got
    else:
        assert got == request_id
    return got


def json_error(text: str) -> str:
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        return f"request body is not valid JSON: {exc}"
    raise AssertionError(f"{text!r} is valid JSON")


async def test_notes_api_routes(tmp_path: Path) -> None:
    async with serve("notes_api.py", tmp_path) as server:
        async with aiohttp.ClientSession(server.url) as session:
            ids: list[str] = []

            # The post_start hook stored the real URL (port 0 resolved) in the state.
            async with session.get("/") as resp:
                assert resp.status == 200
                assert await resp.json() == {"service": "notes", "url": server.url}
                ids.append(assert_headers(resp))

            created = []
            for text in ("buy milk", "call Ada"):
                async with session.post("/notes", json={"text": text}) as resp:
                    assert resp.status == 201
                    ids.append(assert_headers(resp))
                    note = await resp.json()
                    assert note["text"] == text
                    assert resp.headers["Location"] == f"/notes/{note['id']}"
                    created.append(note)
            assert [n["id"] for n in created] == [1, 2]
            assert all(isinstance(n["created"], str) and n["created"] for n in created)

            async with session.get("/notes") as resp:
                assert resp.status == 200
                assert await resp.json() == {"notes": created}
                ids.append(assert_headers(resp))

            async with session.get("/notes/2") as resp:
                assert resp.status == 200
                assert await resp.json() == created[1]
                ids.append(assert_headers(resp))

            async with session.get("/notes/3") as resp:
                assert resp.status == 404
                assert await resp.json() == {"error": "note 3 not found"}
                ids.append(assert_headers(resp))

            async with session.get("/notes/99999999999999999999") as resp:  # > SQLite's max
                assert resp.status == 404
                ids.append(assert_headers(resp))

            async with session.get("/notes/abc") as resp:  # no route: aiohttp's own 404
                assert resp.status == 404
                ids.append(assert_headers(resp))

            async with session.post("/notes", data=b"{not json") as resp:
                assert resp.status == 400
                assert await resp.json() == {"error": json_error("{not json")}
                ids.append(assert_headers(resp))

            bad_text = '"text" is required and must be a non-empty string'
            for body in ({}, {"text": ""}, {"text": "   "}, {"text": 42}, {"note": "x"}):
                async with session.post("/notes", json=body) as resp:
                    assert resp.status == 400, body
                    assert await resp.json() == {"error": bad_text}
                    ids.append(assert_headers(resp))

            async with session.post("/notes", json=["buy milk"]) as resp:
                assert resp.status == 400
                assert await resp.json() == {
                    "error": 'request body must be a JSON object like {"text": "..."}'
                }
                ids.append(assert_headers(resp))

            # A fresh id for every response; a well-formed incoming id is echoed.
            assert len(ids) == 15
            assert len(set(ids)) == len(ids)
            async with session.get("/notes/1", headers={"X-Request-Id": "trace-42"}) as resp:
                assert_headers(resp, request_id="trace-42")
            async with session.get("/notes/1", headers={"X-Request-Id": "not an id!"}) as resp:
                assert_headers(resp)

            # Nothing failed-but-lost: the list still holds exactly the two notes.
            async with session.get("/notes") as resp:
                assert await resp.json() == {"notes": created}
        stopped = await server.stop()

    assert_clean_stop(stopped, signal.SIGTERM)
    assert stopped.stdout == [
        "lifespan: opened notes.db",
        f"post_start: registered {server.url}",
        "lifespan: closed notes.db",
    ]
    assert (tmp_path / "notes.db").is_file()


async def test_notes_survive_a_restart(tmp_path: Path) -> None:
    async with serve("notes_api.py", tmp_path) as server:
        async with aiohttp.ClientSession(server.url) as session:
            created = []
            for text in ("first", "second"):
                async with session.post("/notes", json={"text": text}) as resp:
                    assert resp.status == 201
                    created.append(await resp.json())
        assert_clean_stop(await server.stop(), signal.SIGTERM)

    async with serve("notes_api.py", tmp_path) as server:
        async with aiohttp.ClientSession(server.url) as session:
            async with session.get("/notes") as resp:
                assert await resp.json() == {"notes": created}
            async with session.get(f"/notes/{created[0]['id']}") as resp:
                assert await resp.json() == created[0]
            async with session.post("/notes", json={"text": "third"}) as resp:
                assert resp.status == 201
                assert (await resp.json())["id"] == 3
        assert_clean_stop(await server.stop(), signal.SIGTERM)
