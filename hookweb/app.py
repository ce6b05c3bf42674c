"""The :class:`App` facade: registries in, a real ``aiohttp.web.Application`` out."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, overload

from aiohttp import web

from . import registry as _registry
from ._lifecycle import Plan, Run, prepare_signal
from .errors import prune_traceback
from .registry import (
    CLEANUP,
    POST_START,
    PRE_START,
    RESPONSE_PREPARE,
    SHUTDOWN,
    DecoratorsMixin,
    Hook,
    Registry,
    caller_location,
    check_timeout,
    describe,
)

if TYPE_CHECKING:
    from .proxy import AllowedPeers
    from .testing import TestClientContext

__all__ = ["App"]


def _parse_forwarded(value: str | Sequence[str] | AllowedPeers | None) -> AllowedPeers | None:
    if value is None:
        return None
    from . import proxy

    return proxy.parse_allowed(value)

_T = TypeVar("_T")


class HookList:
    """The seed article's signal lists: ``app.on_pre_start.append(fn)``.

    Appending registers ``fn`` in the App's own registry exactly as the
    decorator would (same checks, ``order=0``), so appended and decorated hooks
    mix in registration order. Iterating gives the functions of that kind.
    """

    __slots__ = ("_app", "_kind")

    def __init__(self, app: App, kind: str) -> None:
        self._app = app
        self._kind = kind

    def append(self, fn: Callable[..., Any]) -> None:
        self._app._registry.add_hook(self._kind, fn)

    def extend(self, fns: Any) -> None:
        for fn in fns:
            self.append(fn)

    def _functions(self) -> list[Callable[..., Any]]:
        return [h.fn for h in self._app._hooks() if h.kind == self._kind]

    def __iter__(self) -> Iterator[Callable[..., Any]]:
        return iter(self._functions())

    def __len__(self) -> int:
        return len(self._functions())

    def __contains__(self, fn: object) -> bool:
        return fn in self._functions()

    def __repr__(self) -> str:
        names = ", ".join(describe(fn) for fn in self._functions())
        return f"<hookweb on_{self._kind} [{names}]>"


def _origin() -> str:
    frame = sys._getframe(2)
    module = frame.f_globals.get("__name__", "?")
    if module == "__main__":
        return os.path.basename(frame.f_code.co_filename)
    return str(module)


class App(DecoratorsMixin):
    """The hookweb application.

    ``App(registry=None, **aiohttp_application_kwargs)``: with no registry the
    default registry (what the module-level decorators fill) is used. The same
    decorators exist on the App itself (``@app.pre_start``), bound to its
    registry.
    """

    def __init__(
        self,
        registry: Registry | None = None,
        *,
        hook_timeout: float | None = None,
        name: str | None = None,
        health_path: str | None = None,
        forwarded_allow_ips: str | Sequence[str] | None = None,
        **aiohttp_kwargs: Any,
    ) -> None:
        if registry is not None and not isinstance(registry, Registry):
            raise TypeError(
                "hookweb: App(registry=...) takes a hookweb.Registry,"
                f" got {type(registry).__name__}"
            )
        self._registry = registry if registry is not None else _registry.default_registry()
        self._includes: list[tuple[Registry, str]] = []
        self._web_app = web.Application(**aiohttp_kwargs)
        self.hook_timeout = check_timeout("App(hook_timeout=...)", hook_timeout)
        self.name = name or _origin()
        if health_path is not None and (
            not isinstance(health_path, str) or not health_path.startswith("/")
        ):
            raise ValueError(
                f"hookweb: App(health_path={health_path!r}) must be a path starting with '/',"
                " for example '/healthz'"
            )
        #: The opt-in health route (docs/deploy.md): 200 while serving, else 503.
        self.health_path = health_path
        self._health = "starting"  # "serving" after post_start, "stopping" from the stop on
        self._forwarded = _parse_forwarded(forwarded_allow_ips)
        self._plan: Plan | None = None
        self._built_at: str | None = None
        self._run: Run | None = None
        self._saved_state: dict[Any, Any] | None = None
        #: The real bound addresses of the current run (``getsockname()`` results;
        #: port 0 resolved); set before ``post_start`` hooks run, empty otherwise.
        self.addresses: list[Any] = []
        self.on_pre_start = HookList(self, PRE_START)
        self.on_post_start = HookList(self, POST_START)
        self.on_shutdown = HookList(self, SHUTDOWN)
        self.on_cleanup = HookList(self, CLEANUP)
        self.on_response_prepare = HookList(self, RESPONSE_PREPARE)

    @classmethod
    def _wrap(cls, web_app: web.Application, name: str) -> App:
        """An App around an existing aiohttp Application (the CLI serves those too)."""
        app = cls(Registry(f"wrapped {name}"), name=name)
        app._web_app = web_app
        return app

    def __call__(self) -> App:
        """The App itself: gunicorn checks that an app object is callable (as aiohttp's)."""
        return self

    def __repr__(self) -> str:
        state = "running" if self._run else ("built" if self._built_at else "not built")
        return f"<hookweb.App {self.name!r} ({state})>"

    def _hookweb_registry(self) -> Registry:
        return self._registry

    # -- composition -----------------------------------------------------------

    def include(self, registry: Registry, prefix: str = "") -> None:
        """Merge ``registry``'s hooks, middleware and routes (under ``prefix``)."""
        if not isinstance(registry, Registry):
            raise TypeError(f"hookweb: include() takes a Registry, got {type(registry).__name__}")
        if prefix and (not prefix.startswith("/") or prefix.endswith("/")):
            raise ValueError(
                f"hookweb: include(prefix={prefix!r}) must start with '/' and not end with it,"
                " for example prefix='/api'"
            )
        if registry is self._registry or any(r is registry for r, _ in self._includes):
            raise ValueError(f"hookweb: registry {registry.name!r} is already part of {self!r}")
        if self._built_at is not None:
            raise RuntimeError(
                f"hookweb: cannot include {registry.name!r} at {caller_location()}: App"
                f" {self.name!r} was already built ({self._built_at}). Include registries"
                " before the first run, test client or web_app access"
            )
        self._includes.append((registry, prefix))

    def _registries(self) -> list[tuple[Registry, str]]:
        return [(self._registry, ""), *self._includes]

    def _hooks(self) -> list[_registry.Hook]:
        hooks = [h for reg, _ in self._registries() for h in reg.hooks()]
        hooks.sort(key=lambda h: h.index)
        return hooks

    # -- building ----------------------------------------------------------------

    @property
    def web_app(self) -> web.Application:
        """The underlying ``aiohttp.web.Application`` (building the App first).

        hookweb's steps are installed on it as aiohttp signals, so aiohttp's own
        tools drive pre_start, lifespan, shutdown, cleanup and response_prepare;
        post_start and background need hookweb's runner (see docs/lifecycle.md).
        """
        self._build()
        return self._web_app

    def _build(self) -> Plan:
        if self._plan is not None:
            return self._plan
        where = f"App {self.name!r} built at {caller_location()}"
        for reg, _ in self._registries():
            reg.freeze(where)
        internal = [_HEALTH_READY] if self.health_path is not None else []
        plan = Plan([*self._hooks(), *internal])
        web_app = self._web_app
        if self.health_path is not None:
            web_app.router.add_get(self.health_path, self._health_route, allow_head=True)
        for reg, prefix in self._registries():
            for route in reg.routes:
                try:
                    if route.method == "GET":  # answers HEAD too, as aiohttp's add_get
                        web_app.router.add_get(prefix + route.path, route.handler, **route.kwargs)
                    else:
                        web_app.router.add_route(
                            route.method, prefix + route.path, route.handler, **route.kwargs
                        )
                except (RuntimeError, ValueError, TypeError) as exc:
                    exc.add_note(
                        f"hookweb: while adding route {route.method} {prefix + route.path}"
                        f" -> {describe(route.handler)}"
                    )
                    raise
            for static in reg.statics:
                web_app.router.add_static(prefix + static.prefix, static.path, **static.kwargs)
        web_app.middlewares.extend(h.fn for h in plan.middleware)
        web_app.on_startup.append(self._on_startup)
        web_app.on_shutdown.insert(0, self._on_shutdown)
        web_app.on_cleanup.insert(0, self._on_cleanup)
        web_app.on_cleanup.append(self._on_cleanup_done)
        receiver = prepare_signal(plan.response_prepare)
        if receiver is not None:
            web_app.on_response_prepare.append(receiver)
        self._plan = plan
        self._install_forwarded()
        self._built_at = where
        return plan

    # -- aiohttp signal receivers (installed by _build) ------------------------------

    async def _on_startup(self, web_app: web.Application) -> None:
        run = self._run
        if run is None:  # aiohttp's own runner or test server drives this App
            run = Run(self, hook_timeout=self.hook_timeout, managed=False, where="aiohttp's runner")
            self._begin_run(run)
        try:
            await run.start_steps()
        except BaseException as exc:
            await run.unwind(exc)
            if not run.managed:
                self._end_run(run)
            raise

    async def _on_shutdown(self, web_app: web.Application) -> None:
        self._health = "stopping"
        if self._run is not None:
            await self._run.shutdown_steps()

    async def _on_cleanup(self, web_app: web.Application) -> None:
        if self._run is not None:
            await self._run.cleanup_steps()

    async def _on_cleanup_done(self, web_app: web.Application) -> None:
        run = self._run
        if run is None or run.managed:
            return
        self._end_run(run)
        error = run.cleanup_error()
        if error is not None:
            raise error

    # -- runs ----------------------------------------------------------------------

    def _begin_run(self, run: Run) -> None:
        if self._run is not None:
            raise RuntimeError(
                f"hookweb: App {self.name!r} is already running (started by {self._run.where});"
                " an App runs one lifecycle at a time. Exit the running test client or stop"
                " the server first, or make a second App on the same registry: App(registry)"
            )
        self._run = run
        self._health = "starting"
        self._saved_state = dict(self._state())

    def _end_run(self, run: Run) -> None:
        if self._run is not run:
            return
        self._run = None
        self._health = "starting"
        self.addresses = []
        state = self._state()
        state.clear()
        state.update(self._saved_state or {})
        self._saved_state = None
        # Let the next run use a new event loop (a module-level app shared by
        # several tests, or app.run() twice).
        if hasattr(self._web_app, "_loop"):
            self._web_app._loop = None

    # -- health and proxies (docs/deploy.md) ---------------------------------------------

    async def _health_route(self, request: web.Request) -> web.Response:
        serving = self._health == "serving" and self._run is not None
        return web.Response(
            status=200 if serving else 503,
            text="ok" if serving else self._health,
            headers={"Cache-Control": "no-store"},
        )

    def _drain(self) -> None:
        """The stop began (or a drain): the health route answers 503 from now on."""
        self._health = "stopping"

    def _trust_forwarded(
        self, forwarded_allow_ips: str | Sequence[str] | AllowedPeers | None
    ) -> None:
        """Override ``App(forwarded_allow_ips=...)`` (the CLI's --forwarded-allow-ips)."""
        self._forwarded = _parse_forwarded(forwarded_allow_ips)
        if self._plan is not None:
            self._install_forwarded()

    def _install_forwarded(self) -> None:
        # hookweb.proxy (and ipaddress) is imported only by Apps that trust a proxy.
        if self._forwarded is None and "_make_request" not in vars(self._web_app):
            return
        from . import proxy

        proxy.install(self._web_app, self._forwarded or proxy.AllowedPeers())

    @property
    def running(self) -> bool:
        return self._run is not None

    @property
    def urls(self) -> list[str]:
        """``http://host:port`` for each bound address of the current run."""
        run = self._run
        scheme = run.scheme if run is not None else "http"
        urls = []
        for addr in self.addresses:
            if isinstance(addr, str):
                urls.append(f"{scheme}://unix:{addr}")
            else:
                host, port = addr[0], addr[1]
                host = f"[{host}]" if ":" in host else host
                urls.append(f"{scheme}://{host}:{port}")
        return urls

    def run(self, **options: Any) -> None:
        """Serve until SIGINT/SIGTERM (blocking). Options as for :func:`hookweb.run_app`."""
        from ._serve import run_app

        try:
            run_app(self, **options)
        except Exception as exc:
            prune_traceback(exc)  # an uncaught error shows the user's frames, not hookweb's
            raise

    def test_client(self, **options: Any) -> TestClientContext:
        """``async with app.test_client() as client:`` -- the whole lifecycle, once.

        Yields an ``aiohttp.test_utils.TestClient`` on a real loopback port.
        Options: ``hook_timeout``, ``shutdown_timeout``, ``stop_timeout`` and
        ClientSession kwargs (see docs/testing.md).
        """
        from .testing import TestClientContext

        return TestClientContext(self, **options)

    # -- state -------------------------------------------------------------------------

    def _state(self) -> dict[Any, Any]:
        state = getattr(self._web_app, "_state", None)
        if isinstance(state, dict):
            return state
        raise RuntimeError("hookweb: this aiohttp version keeps Application state elsewhere")

    @overload
    def __getitem__(self, key: web.AppKey[_T]) -> _T: ...
    @overload
    def __getitem__(self, key: str) -> Any: ...
    def __getitem__(self, key: Any) -> Any:
        return self._state()[key]

    @overload
    def __setitem__(self, key: web.AppKey[_T], value: _T) -> None: ...
    @overload
    def __setitem__(self, key: str, value: Any) -> None: ...
    def __setitem__(self, key: Any, value: Any) -> None:
        # Straight into the application's state: hooks may store what they
        # open at any step, without aiohttp's "frozen application" warning.
        self._state()[key] = value

    def __delitem__(self, key: Any) -> None:
        del self._state()[key]

    def __contains__(self, key: object) -> bool:
        return key in self._state()


def _health_ready(app: App) -> None:
    """The last post_start step of an App with a health route: it answers 200 from now."""
    if app._health == "starting":
        app._health = "serving"


_HEALTH_READY = Hook(POST_START, _health_ready, sys.maxsize, None, sys.maxsize, False)
