"""hookweb's pytest plugin, registered as the ``hookweb`` ``pytest11`` entry point.

It adds two fixtures (disable it with ``-p no:hookweb``):

``hookweb_registry``
    a fresh default registry for the test (:func:`hookweb.testing.isolated_registry`):
    module-level decorators used during the test, and ``App()`` without a
    registry, go into it; the previous default registry is restored afterwards.

``hookweb_client``
    a factory: ``client = await hookweb_client(app)`` enters ``app.test_client()``
    (the whole start side, once) and gives the ``aiohttp.test_utils.TestClient``;
    when the test ends, every client it entered is exited (the stop side, once),
    the newest first. A stop failure is reported as an error in the test's
    teardown, next to the test's own failure if it had one. It needs
    pytest-asyncio and runs on the loop of ``asyncio_default_fixture_loop_scope``
    (``"function"`` in a usual setup); for a client shared by a module, write the
    fixture shown in docs/testing.md.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from aiohttp import web
    from aiohttp.test_utils import TestClient

    from .app import App
    from .registry import Registry
    from .testing import ClientFactory, TestClientContext

__all__ = ["hookweb_registry"]


@pytest.fixture
def hookweb_registry() -> Iterator[Registry]:
    """A fresh default registry for this test (see hookweb.testing.isolated_registry)."""
    from .testing import isolated_registry

    with isolated_registry(name="hookweb_registry fixture") as registry:
        yield registry


async def _clients() -> AsyncIterator[ClientFactory]:
    """``client = await hookweb_client(app, **test_client_options)``; exited at teardown."""
    entered: list[TestClientContext] = []

    async def enter(app: App, /, **options: Any) -> TestClient[web.Request, web.Application]:
        context = app.test_client(**options)
        client = await context.__aenter__()
        entered.append(context)
        return client

    try:
        yield enter
    finally:
        errors: list[Exception] = []
        for context in reversed(entered):
            try:
                await context.__aexit__(None, None, None)
            except Exception as exc:
                errors.append(exc)
        if len(errors) == 1:
            raise errors[0]
        if errors:
            raise ExceptionGroup(f"hookweb: {len(errors)} test clients failed to stop", errors)


try:
    import pytest_asyncio
except ImportError:  # pragma: no cover - without pytest-asyncio there is no client fixture
    pass
else:
    hookweb_client = pytest_asyncio.fixture(_clients, name="hookweb_client")
    __all__ += ["hookweb_client"]
