"""docs/testing.md shows the example file the suite runs, and the real error messages."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from hookweb import App, Registry

ROOT = Path(__file__).resolve().parent.parent
DOC = (ROOT / "docs" / "testing.md").read_text()


def flat(text: str) -> str:
    return " ".join(text.split())


def test_the_complete_example_is_the_file_the_suite_runs() -> None:
    match = re.search(r"<!-- example: (\S+) -->\n```python\n(.*?)```\n", DOC, re.DOTALL)
    assert match is not None
    path, block = match.groups()
    assert path == "tests/test_docs_testing_example.py"
    assert block == (ROOT / path).read_text()


async def test_the_misuse_messages_in_the_doc_are_the_real_ones() -> None:
    app = App(Registry(), name="documented")
    with pytest.raises(RuntimeError) as never_entered:
        app.test_client().get("/")
    with pytest.raises(TypeError) as plain_with:
        with app.test_client():
            pass  # pragma: no cover
    with pytest.raises(TypeError) as awaited:
        await app.test_client()
    for info in (never_entered, plain_with, awaited):
        assert f"`{info.type.__name__}: {info.value}`" in DOC, info.value


def test_the_loop_mismatch_message_in_the_doc_is_the_real_one() -> None:
    app = App(Registry(), name="...")
    with asyncio.Runner() as entering, asyncio.Runner() as other:
        context = app.test_client()
        client = entering.run(context.__aenter__())
        try:
            with pytest.raises(RuntimeError) as info:
                other.run(client.get("/ping"))
        finally:
            entering.run(context.__aexit__(None, None, None))
    assert str(info.value).startswith("hookweb: cannot request GET /ping: the test client")
    assert flat(str(info.value)) in flat(DOC)
