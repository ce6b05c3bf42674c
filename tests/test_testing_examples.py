"""The examples, tested in-process the way docs/testing.md tells users to test their app.

(tests/test_examples.py runs them as real processes; here they are imported and driven
with ``app.test_client()`` and the plugin's ``hookweb_client`` fixture.)
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from hookweb.testing import ClientFactory, isolated_registry

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def load_example(name: str) -> ModuleType:
    """Import examples/<name>.py.

    seed_hooks.py uses ``App()``, the default registry: it is imported inside
    ``isolated_registry()`` so that its routes and hooks stay in its own App.
    """
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    with isolated_registry(name=f"examples/{name}.py"):
        spec.loader.exec_module(module)
    return module


seed_hooks = load_example("seed_hooks")
notes_api = load_example("notes_api")


# -- examples/seed_hooks.py ---------------------------------------------------------------


async def test_seed_hooks_run_in_order_once(capsys: pytest.CaptureFixture[str]) -> None:
    async with seed_hooks.app.test_client() as client:
        resp = await client.get("/")
        assert (resp.status, await resp.text()) == (200, "Hello from hookweb\n")
        assert resp.headers["X-Powered-By"] == "hookweb"
        missing = await client.get("/missing")
        assert missing.status == 404
        assert missing.headers["X-Powered-By"] == "hookweb"
        url = f"http://127.0.0.1:{client.port}"
    assert capsys.readouterr().out.splitlines() == [
        "pre_start: nothing is listening yet",
        f"post_start: listening on {url}",
        "response_prepare: GET / -> 200",
        "response_prepare: GET /missing -> 404",
        "cleanup: the server has stopped",
    ]


def test_seed_hooks_import_left_the_default_registry_alone() -> None:
    from hookweb.registry import default_registry

    assert seed_hooks.app._registry is not default_registry()


# -- examples/notes_api.py ----------------------------------------------------------------


@pytest.fixture
def notes_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "notes.db"
    monkeypatch.setattr(notes_api, "DB_PATH", str(path))
    return path


async def test_notes_create_read_and_errors(
    notes_db: Path, hookweb_client: ClientFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    client = await hookweb_client(notes_api.app)
    url = f"http://127.0.0.1:{client.port}"
    assert await (await client.get("/")).json() == {"service": "notes", "url": url}

    created = await client.post("/notes", json={"text": "buy milk"})
    assert created.status == 201
    note = await created.json()
    assert note["text"] == "buy milk"
    assert created.headers["Location"] == f"/notes/{note['id']}"
    assert await (await client.get(f"/notes/{note['id']}")).json() == note
    assert await (await client.get("/notes")).json() == {"notes": [note]}

    bad = await client.post("/notes", data="{not json")
    assert bad.status == 400
    assert (await bad.json())["error"].startswith("request body is not valid JSON: ")
    missing = await client.get("/notes/999")
    assert (missing.status, await missing.json()) == (404, {"error": "note 999 not found"})
    for resp in (created, bad, missing):
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert len(resp.headers["X-Request-Id"]) == 32
    assert capsys.readouterr().out.splitlines() == [
        f"lifespan: opened {notes_db}",
        f"post_start: registered {url}",
    ]


async def test_notes_survive_a_restart(notes_db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    async with notes_api.app.test_client() as client:
        resp = await client.post("/notes", json={"text": "kept"}, headers={"X-Request-Id": "r1"})
        assert resp.headers["X-Request-Id"] == "r1"
    async with notes_api.app.test_client() as client:  # a new run: the lifespan reopens the db
        notes = (await (await client.get("/notes")).json())["notes"]
        assert [n["text"] for n in notes] == ["kept"]
    out = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in out] == ["lifespan", "post_start", "lifespan"] * 2
    assert out[2] == f"lifespan: closed {notes_db}"
