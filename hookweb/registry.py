"""Registries: ordered collections of hooks, routes and middleware.

A :class:`Registry` only *collects*. Nothing runs until an :class:`~hookweb.App`
built on it runs. Every decorator is checked when it is applied, so a wrong
signature fails at import time, not at start-up.
"""

from __future__ import annotations

import inspect
import itertools
import os
import re
import sys
from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar, overload

from aiohttp import web

from .errors import is_internal_file

__all__ = ["Hook", "Registry", "Route", "default_registry"]

# Kinds of hook, in the order they first run.
PRE_START: Final = "pre_start"
LIFESPAN: Final = "lifespan"
POST_START: Final = "post_start"
BACKGROUND: Final = "background"
SHUTDOWN: Final = "shutdown"
CLEANUP: Final = "cleanup"
RESPONSE_PREPARE: Final = "response_prepare"
MIDDLEWARE: Final = "middleware"

STEP_KINDS: Final = (PRE_START, LIFESPAN, POST_START, BACKGROUND, SHUTDOWN, CLEANUP)

# What each kind expects, for the error messages.
_EXPECTED: Final[dict[str, str]] = {
    PRE_START: "'async def hook(app)' or 'def hook(app)'",
    POST_START: "'async def hook(app)' or 'def hook(app)'",
    SHUTDOWN: "'async def hook(app)' or 'def hook(app)'",
    CLEANUP: "'async def hook(app)' or 'def hook(app)'",
    LIFESPAN: "'async def hook(app)' that yields once",
    BACKGROUND: "'async def task(app)'",
    RESPONSE_PREPARE: "'async def hook(request, response)' or 'def hook(request, response)'",
    MIDDLEWARE: "'async def middleware(request, handler)'",
    "route": "'async def handler(request)'",
}
_ARITY: Final[dict[str, int]] = {RESPONSE_PREPARE: 2, MIDDLEWARE: 2}

_METHOD: Final = re.compile(r"[0-9A-Za-z!#$%&'*+.^_`|~-]+")  # an HTTP token, as aiohttp
_counter = itertools.count()  # registration index, process-wide and monotonic


def describe(fn: object) -> str:
    """``module:qualname`` of a function, the way every hookweb message names it."""
    target = fn
    while hasattr(target, "func"):  # functools.partial
        target = target.func
    module = getattr(target, "__module__", None) or "?"
    qualname = getattr(target, "__qualname__", None) or type(target).__qualname__
    return f"{module}:{qualname}"


def _signature(fn: Callable[..., Any]) -> str:
    """The parameter list without annotations: ``(app, extra=1)``."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return "(...)"
    params = [p.replace(annotation=inspect.Parameter.empty) for p in sig.parameters.values()]
    return str(sig.replace(parameters=params, return_annotation=inspect.Signature.empty))


def caller_location() -> str:
    """``file:line`` of the first frame outside hookweb, aiohttp and asyncio.

    That is where the user called us, even when the call came through aiohttp
    (for example its test server starting the App).
    """
    frame = sys._getframe(1)
    while frame is not None:
        if not is_internal_file(frame.f_code.co_filename):
            return f"{frame.f_code.co_filename}:{frame.f_lineno}"
        frame = frame.f_back  # type: ignore[assignment]
    return "<unknown>"


def _is_async_callable(fn: Callable[..., Any]) -> bool:
    if inspect.iscoroutinefunction(fn):
        return True
    call = getattr(fn, "__call__", None)  # noqa: B004 - an object with async __call__
    return call is not None and inspect.iscoroutinefunction(call)


def _is_async_gen(fn: Callable[..., Any]) -> bool:
    if inspect.isasyncgenfunction(fn):
        return True
    call = getattr(fn, "__call__", None)  # noqa: B004
    return call is not None and inspect.isasyncgenfunction(call)


def _is_gen(fn: Callable[..., Any]) -> bool:
    if inspect.isgeneratorfunction(fn):
        return True
    call = getattr(fn, "__call__", None)  # noqa: B004
    return call is not None and inspect.isgeneratorfunction(call)


def check_callable(kind: str, fn: object, decorator: str | None = None) -> bool:
    """Check ``fn`` for ``kind`` at decoration time; return whether it is async.

    Raises :class:`TypeError` naming the function, the kind and the expected
    signature.
    """
    label = "route handler" if kind == "route" else f"{kind} hook"
    expected = _EXPECTED[kind]
    at = decorator or f"@{kind}"
    if not callable(fn):
        raise TypeError(
            f"hookweb: {at} got {fn!r}, which is not callable; a {label} must be {expected}"
        )
    name = f"{describe(fn)}{_signature(fn)}"
    if kind == LIFESPAN:
        if not _is_async_gen(fn):
            what = "a coroutine function" if _is_async_callable(fn) else "not a generator"
            if _is_gen(fn):
                what = "a plain generator"
            raise TypeError(
                f"hookweb: @lifespan got {name}, which is {what}; a lifespan hook must be"
                f" {expected} (code before 'yield' starts, code after it cleans up)"
            )
    elif _is_async_gen(fn) or _is_gen(fn):
        hint = "; for paired start and cleanup code use @lifespan" if kind in STEP_KINDS else ""
        raise TypeError(
            f"hookweb: {at} got {name}, which is a generator function; a {label} must be"
            f" {expected}{hint}"
        )
    elif kind in (BACKGROUND, MIDDLEWARE, "route") and not _is_async_callable(fn):
        raise TypeError(
            f"hookweb: {at} got {name}, which is not a coroutine function;"
            f" a {label} must be {expected}"
        )
    arity = _ARITY.get(kind, 1)
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):  # some builtins cannot be introspected
        sig = None
    if sig is not None:
        try:
            sig.bind(*range(arity))
        except TypeError:
            noun = "one positional argument" if arity == 1 else f"{arity} positional arguments"
            raise TypeError(
                f"hookweb: {at} got {name}, which cannot be called with {noun};"
                f" a {label} must be {expected}"
            ) from None
    return kind == LIFESPAN or _is_async_callable(fn)


def check_order(kind: str, order: object) -> int:
    if isinstance(order, bool) or not isinstance(order, int):
        raise TypeError(f"hookweb: @{kind}(order=...) takes an int, got {order!r}")
    return order


def check_timeout(what: str, timeout: object) -> float | None:
    """Check a timeout option; ``what`` names it as the user wrote it."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"hookweb: {what} takes seconds as a number, got {timeout!r}")
    if not timeout > 0 or timeout == float("inf"):
        raise ValueError(
            f"hookweb: {what} must be a positive number of seconds, or None for no timeout;"
            f" got {timeout!r}"
        )
    return float(timeout)


class Hook:
    """One registered hook (internal record; the function itself is unchanged).

    Plain classes with slots, not dataclasses: ``import hookweb`` stays cheap.
    """

    __slots__ = ("kind", "fn", "order", "timeout", "index", "is_async")

    def __init__(
        self,
        kind: str,
        fn: Callable[..., Any],
        order: int,
        timeout: float | None,
        index: int,
        is_async: bool,
    ) -> None:
        self.kind, self.fn, self.order, self.timeout = kind, fn, order, timeout
        self.index, self.is_async = index, is_async

    def __repr__(self) -> str:
        return f"<Hook {self.label()} order={self.order} timeout={self.timeout}>"

    @property
    def name(self) -> str:
        return describe(self.fn)

    def label(self) -> str:
        return f"{self.kind} hook {self.name}"


def sort_key(hook: Hook) -> tuple[int, int]:
    """The one ordering rule: ``(order, registration index)``."""
    return (hook.order, hook.index)


class Route:
    __slots__ = ("method", "path", "handler", "kwargs", "index")

    def __init__(
        self,
        method: str,
        path: str,
        handler: Callable[..., Any],
        kwargs: dict[str, Any],
        index: int,
    ) -> None:
        self.method, self.path, self.handler = method, path, handler
        self.kwargs, self.index = kwargs, index


class Static:
    __slots__ = ("prefix", "path", "kwargs", "index")

    def __init__(self, prefix: str, path: str, kwargs: dict[str, Any], index: int) -> None:
        self.prefix, self.path, self.kwargs, self.index = prefix, path, kwargs, index


_Step = TypeVar("_Step", bound=Callable[[Any], object])
_Prepare = TypeVar("_Prepare", bound=Callable[[Any, Any], object])
_Middleware = TypeVar("_Middleware", bound=Callable[[Any, Any], Awaitable[Any]])
_Handler = TypeVar("_Handler", bound=Callable[[Any], Awaitable[Any]])


class _Decorator:
    """Shared machinery: a decorator bound to a way of finding its registry."""

    __slots__ = ("_kind", "_get_registry")

    def __init__(self, kind: str, get_registry: Callable[[], Registry]) -> None:
        self._kind = kind
        self._get_registry = get_registry

    def __repr__(self) -> str:
        return f"<hookweb @{self._kind} decorator>"

    def _apply(self, fn: Any, order: int, timeout: float | None, *, with_timeout: bool) -> Any:
        if fn is not None:
            self._get_registry().add_hook(self._kind, fn, order=order, timeout=timeout)
            return fn
        check_order(self._kind, order)
        if with_timeout:
            check_timeout(f"@{self._kind}(timeout=...)", timeout)

        def decorate(func: Any) -> Any:
            self._get_registry().add_hook(self._kind, func, order=order, timeout=timeout)
            return func

        return decorate


class StepDecorator(_Decorator):
    """``@pre_start``, ``@post_start``, ``@shutdown``, ``@cleanup``, ``@background``.

    Bare (``@pre_start``) or with keyword-only options
    (``@pre_start(order=-10, timeout=5.0)``); returns the function unchanged.
    """

    __slots__ = ()

    @overload
    def __call__(self, fn: _Step, /) -> _Step: ...
    @overload
    def __call__(
        self, *, order: int = 0, timeout: float | None = None
    ) -> Callable[[_Step], _Step]: ...
    def __call__(self, fn: Any = None, *, order: int = 0, timeout: float | None = None) -> Any:
        return self._apply(fn, order, timeout, with_timeout=True)


class PrepareDecorator(_Decorator):
    """``@response_prepare``: ``hook(request, response)``, bare or ``(order=...)``."""

    __slots__ = ()

    @overload
    def __call__(self, fn: _Prepare, /) -> _Prepare: ...
    @overload
    def __call__(self, *, order: int = 0) -> Callable[[_Prepare], _Prepare]: ...
    def __call__(self, fn: Any = None, *, order: int = 0) -> Any:
        return self._apply(fn, order, None, with_timeout=False)


class MiddlewareDecorator(_Decorator):
    """``@middleware``: aiohttp new-style middleware, bare or ``(order=...)``.

    Lower ``order`` is outermost; equal orders keep registration order.
    """

    __slots__ = ()

    @overload
    def __call__(self, fn: _Middleware, /) -> _Middleware: ...
    @overload
    def __call__(self, *, order: int = 0) -> Callable[[_Middleware], _Middleware]: ...
    def __call__(self, fn: Any = None, *, order: int = 0) -> Any:
        return self._apply(fn, order, None, with_timeout=False)


class RouteDecorator:
    """``@get(path)`` and friends: register an aiohttp handler for one method."""

    __slots__ = ("_method", "_get_registry")

    def __init__(self, method: str, get_registry: Callable[[], Registry]) -> None:
        self._method = method
        self._get_registry = get_registry

    def __repr__(self) -> str:
        return f"<hookweb @{self._method.lower()} route decorator>"

    def __call__(self, path: str, /, **kwargs: Any) -> Callable[[_Handler], _Handler]:
        return self._get_registry().route(self._method, path, **kwargs)


class _Attr:
    """Descriptor giving each Registry/App a decorator bound to its registry."""

    __slots__ = ("_factory",)

    def __init__(self, factory: Callable[[Callable[[], Registry]], Any]) -> None:
        self._factory = factory


class _StepAttr(_Attr):
    __slots__ = ()

    def __get__(self, obj: Any, owner: Any = None) -> StepDecorator:
        if obj is None:
            return self  # type: ignore[return-value]
        return self._factory(obj._hookweb_registry)  # type: ignore[no-any-return]


class _PrepareAttr(_Attr):
    __slots__ = ()

    def __get__(self, obj: Any, owner: Any = None) -> PrepareDecorator:
        if obj is None:
            return self  # type: ignore[return-value]
        return self._factory(obj._hookweb_registry)  # type: ignore[no-any-return]


class _MiddlewareAttr(_Attr):
    __slots__ = ()

    def __get__(self, obj: Any, owner: Any = None) -> MiddlewareDecorator:
        if obj is None:
            return self  # type: ignore[return-value]
        return self._factory(obj._hookweb_registry)  # type: ignore[no-any-return]


class _RouteAttr(_Attr):
    __slots__ = ()

    def __get__(self, obj: Any, owner: Any = None) -> RouteDecorator:
        if obj is None:
            return self  # type: ignore[return-value]
        return self._factory(obj._hookweb_registry)  # type: ignore[no-any-return]


def _step(kind: str) -> _StepAttr:
    return _StepAttr(lambda get: StepDecorator(kind, get))


def _route(method: str) -> _RouteAttr:
    return _RouteAttr(lambda get: RouteDecorator(method, get))


class DecoratorsMixin:
    """Every decorator, bound to ``self._hookweb_registry()``.

    Shared by :class:`Registry` and :class:`~hookweb.App` so the option lists
    are written once.
    """

    def _hookweb_registry(self) -> Registry:
        raise NotImplementedError

    pre_start = _step(PRE_START)
    post_start = _step(POST_START)
    shutdown = _step(SHUTDOWN)
    cleanup = _step(CLEANUP)
    lifespan = _step(LIFESPAN)
    background = _step(BACKGROUND)
    response_prepare = _PrepareAttr(lambda get: PrepareDecorator(RESPONSE_PREPARE, get))
    middleware = _MiddlewareAttr(lambda get: MiddlewareDecorator(MIDDLEWARE, get))
    get = _route("GET")
    post = _route("POST")
    put = _route("PUT")
    patch = _route("PATCH")
    delete = _route("DELETE")

    def route(self, method: str, path: str, /, **kwargs: Any) -> Callable[[_Handler], _Handler]:
        """Register a handler for ``method`` (``"*"`` for any) at ``path``.

        Extra keyword arguments go to aiohttp's ``router.add_route``
        (``name=...``, ``expect_handler=...``).
        """
        return self._hookweb_registry().add_route_decorator(method, path, kwargs)

    def static(self, prefix: str, path: str | os.PathLike[str], /, **kwargs: Any) -> None:
        """Serve the directory ``path`` under ``prefix`` (aiohttp's ``add_static``).

        ``response_prepare`` hooks run for its 200, 304 and 404 responses too.
        """
        self._hookweb_registry().add_static(prefix, path, kwargs)


class Registry(DecoratorsMixin):
    """An ordered set of hooks, routes and middleware.

    ``Registry()`` gives a private registry; the module-level decorators use the
    default one. Every module-level decorator is also a method here::

        api = Registry()

        @api.pre_start
        async def connect(app): ...

        @api.get("/items")
        async def items(request): ...
    """

    def __init__(self, name: str | None = None) -> None:
        self.name = name or f"Registry@{caller_location()}"
        self._hooks: list[Hook] = []
        self._routes: list[Route] = []
        self._statics: list[Static] = []
        self._frozen_by: str | None = None

    def __repr__(self) -> str:
        state = f"frozen by {self._frozen_by}" if self._frozen_by else "open"
        return (
            f"<hookweb.Registry {self.name!r}: {len(self._hooks)} hooks,"
            f" {len(self._routes)} routes, {state}>"
        )

    def _hookweb_registry(self) -> Registry:
        return self

    # -- registration --------------------------------------------------------

    def _check_open(self, what: str) -> None:
        if self._frozen_by is not None:
            raise RuntimeError(
                f"hookweb: cannot register {what} at {caller_location()}: registry"
                f" {self.name!r} is frozen since the App using it was built ({self._frozen_by})."
                " Register every hook, route and middleware before the first run,"
                " test client or web_app access, or use a new Registry()"
            )

    def add_hook(self, kind: str, fn: Any, *, order: int = 0, timeout: float | None = None) -> Hook:
        """Register ``fn`` as a ``kind`` hook (what every hook decorator calls)."""
        is_async = check_callable(kind, fn)
        order = check_order(kind, order)
        timeout = check_timeout(f"@{kind}(timeout=...)", timeout)
        if kind in (RESPONSE_PREPARE, MIDDLEWARE) and timeout is not None:
            raise TypeError(f"hookweb: @{kind} takes no timeout")
        self._check_open(f"{kind} hook {describe(fn)}")
        if kind == MIDDLEWARE:
            web.middleware(fn)  # marks it new-style; returns fn itself
        hook = Hook(kind, fn, order, timeout, next(_counter), is_async)
        self._hooks.append(hook)
        return hook

    def add_route_decorator(
        self, method: str, path: str, kwargs: dict[str, Any]
    ) -> Callable[[_Handler], _Handler]:
        if not isinstance(method, str) or not _METHOD.fullmatch(method):
            raise ValueError(
                f"hookweb: route method must be an HTTP method like 'GET', or '*' for any,"
                f" got {method!r}"
            )
        if callable(path):
            raise TypeError(
                f"hookweb: a route decorator needs a path: write @get('/items'), not bare @get"
                f" (got {describe(path)})"
            )
        if not isinstance(path, str) or not path.startswith("/"):
            raise ValueError(
                f"hookweb: route path must be a string starting with '/', got {path!r}"
                " (for example @get('/items'))"
            )

        def decorate(handler: _Handler) -> _Handler:
            check_callable("route", handler, decorator=f"@{method.lower()}")
            self._check_open(f"route {method.upper()} {path} -> {describe(handler)}")
            self._routes.append(Route(method.upper(), path, handler, dict(kwargs), next(_counter)))
            return handler

        return decorate

    def add_static(self, prefix: str, path: str | os.PathLike[str], kwargs: dict[str, Any]) -> None:
        if not isinstance(prefix, str) or not prefix.startswith("/"):
            raise ValueError(f"hookweb: static prefix must start with '/', got {prefix!r}")
        directory = os.fspath(path)
        if not os.path.isdir(directory):
            what = "is not a directory" if os.path.exists(directory) else "does not exist"
            raise ValueError(f"hookweb: static directory {directory!r} {what}")
        self._check_open(f"static route {prefix} -> {directory}")
        self._statics.append(Static(prefix, directory, dict(kwargs), next(_counter)))

    # -- reading -------------------------------------------------------------

    @property
    def frozen(self) -> bool:
        return self._frozen_by is not None

    def hooks(self, kind: str | None = None) -> list[Hook]:
        """Registered hooks (of one kind), in registration order."""
        return [h for h in self._hooks if kind is None or h.kind == kind]

    @property
    def routes(self) -> list[Route]:
        return list(self._routes)

    @property
    def statics(self) -> list[Static]:
        return list(self._statics)

    def freeze(self, where: str) -> None:
        if self._frozen_by is None:
            self._frozen_by = where


_default: Registry = Registry("default")


def default_registry() -> Registry:
    """The registry the module-level decorators and ``App()`` use right now."""
    return _default


def _set_default(registry: Registry) -> Registry:
    """Swap the default registry; return the previous one (see hookweb.testing)."""
    global _default
    previous, _default = _default, registry
    return previous


class _DefaultDecorators(DecoratorsMixin):
    """Decorators that look the default registry up at call time."""

    def _hookweb_registry(self) -> Registry:
        return _default


_defaults = _DefaultDecorators()
