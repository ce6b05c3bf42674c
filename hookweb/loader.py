"""Resolve a CLI TARGET (``module:attribute``) to a hookweb :class:`App`.

Pure of process effects: it imports the user's module (making the current
directory and ``app_dir`` importable), never prints and never exits. Problems
are raised as typed errors that the CLI turns into exit codes at its edge:

- :class:`TargetUsageError` (exit 2): the target *as written* cannot be
  resolved: bad format, no such module, no such attribute, wrong type, a
  function without ``--factory``, a factory that needs arguments.
- :class:`TargetImportError` (exit 3): the target's own code failed: importing
  the module raised, or the factory raised. ``.cause`` is the user's exception,
  whose traceback the user needs.
"""

from __future__ import annotations

import difflib
import inspect
import os
import sys
from dataclasses import dataclass
from types import ModuleType
from typing import ClassVar

from aiohttp import web

from .app import App
from .errors import describe_exception

__all__ = [
    "DEFAULT_ATTRIBUTE",
    "Loaded",
    "TargetError",
    "TargetImportError",
    "TargetSpec",
    "TargetUsageError",
    "load",
    "parse_target",
]

DEFAULT_ATTRIBUTE = "app"
EXAMPLE = "myapp:app"
_FORMAT_HELP = (
    f"expected 'module:attribute', for example '{EXAMPLE}' or 'mypkg.web:app'"
    " ('myapp' alone means 'myapp:app')"
)
_APP_TYPES = "a hookweb.App or an aiohttp.web.Application"


class TargetError(Exception):
    """The target could not be turned into an App; ``str(err)`` is the one-line report."""

    exit_code: ClassVar[int] = 2

    def __init__(self, line: str, target: str) -> None:
        super().__init__(line)
        self.line = line
        self.target = target


class TargetUsageError(TargetError):
    """The target as written cannot be resolved (CLI exit 2, one line, no traceback)."""

    exit_code = 2


class TargetImportError(TargetError):
    """The target's own code failed: its import or its factory (CLI exit 3).

    ``cause`` is the user's exception; its traceback belongs in the report.
    """

    exit_code = 3

    def __init__(self, line: str, target: str, cause: BaseException) -> None:
        super().__init__(line, target)
        self.cause = cause


@dataclass(frozen=True)
class TargetSpec:
    """A parsed target: ``pkg.mod:obj.app`` -> module ``pkg.mod``, attrs ``(obj, app)``."""

    text: str
    module: str
    attrs: tuple[str, ...]

    @property
    def attribute(self) -> str:
        return ".".join(self.attrs)

    @property
    def name(self) -> str:
        """The normalized ``module:attribute`` form (what the serving line shows)."""
        return f"{self.module}:{self.attribute}"


def _valid_dotted(text: str) -> bool:
    return bool(text) and all(part.isidentifier() for part in text.split("."))


def parse_target(text: str) -> TargetSpec:
    """Parse ``module[:attribute]``; raise :class:`TargetUsageError` on a bad format."""
    if not isinstance(text, str) or not text.strip():
        raise TargetUsageError(f"hookweb: missing target: {_FORMAT_HELP}", str(text))
    module, sep, attribute = text.partition(":")
    if not sep:
        attribute = DEFAULT_ATTRIBUTE
    problem = None
    if ":" in attribute:
        problem = "more than one ':'"
    elif not module:
        problem = "no module before ':'"
    elif sep and not attribute:
        problem = "no attribute after ':'"
    elif module.endswith(".py") or "/" in module or "\\" in module:
        problem = "a file path, not a module name"
    elif not _valid_dotted(module):
        problem = f"{module!r} is not a dotted module name"
    elif not _valid_dotted(attribute):
        problem = f"{attribute!r} is not a (dotted) attribute name"
    if problem is not None:
        hint = ""
        if problem.startswith("a file path"):
            stem = os.path.splitext(os.path.basename(module.replace("\\", "/")))[0]
            if stem.isidentifier():
                hint = f" (for {module} write '{stem}:{attribute or DEFAULT_ATTRIBUTE}'"
                hint += " and run from its directory or pass --app-dir)"
        raise TargetUsageError(
            f"hookweb: bad target {text!r}: {problem}; {_FORMAT_HELP}{hint}", text
        )
    return TargetSpec(text, module, tuple(attribute.split(".")))


def _type_name(obj: object) -> str:
    cls = type(obj)
    name = cls.__qualname__
    if isinstance(obj, App):
        name = "hookweb.App"
    elif isinstance(obj, web.Application):
        name = "aiohttp.web.Application"
    elif cls.__module__ not in ("builtins", "__main__"):
        name = f"{cls.__module__}.{name}"
    article = "an" if name[:1].lower() in "aeiou" else "a"
    return f"{article} {name}"


def _short_repr(obj: object, limit: int = 40) -> str:
    try:
        text = repr(obj)
    except Exception:  # a broken __repr__ must not hide the real message
        return "?"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _what(obj: object) -> str:
    """'a function', 'a class', 'an int (5)', ... for messages."""
    if inspect.isclass(obj):
        return f"a class ({obj.__module__}.{obj.__qualname__})"
    if inspect.iscoroutinefunction(obj):
        return "an async function"
    if inspect.isfunction(obj) or inspect.isbuiltin(obj) or inspect.ismethod(obj):
        return "a function"
    if callable(obj):
        return f"a callable {_type_name(obj).split(' ', 1)[1]}"
    return f"{_type_name(obj)} ({_short_repr(obj)})"


def _is_app(obj: object) -> bool:
    return isinstance(obj, (App, web.Application))


def apps_in(module: ModuleType) -> list[str]:
    """Names of the App / aiohttp Application objects a module defines."""
    return [name for name, value in vars(module).items() if _is_app(value)]


def _make_importable(app_dir: str | None) -> None:
    cwd = os.getcwd()
    if "" not in sys.path and cwd not in sys.path:
        sys.path.insert(0, cwd)
    if app_dir is not None:
        path = os.path.abspath(app_dir)
        if not os.path.isdir(path):
            raise TargetUsageError(f"hookweb: --app-dir {app_dir!r} is not a directory", app_dir)
        if path in sys.path:
            sys.path.remove(path)
        sys.path.insert(0, path)


def _import(spec: TargetSpec, app_dir: str | None) -> ModuleType:
    where = os.path.abspath(app_dir) if app_dir else os.getcwd()
    try:
        # The builtin __import__ (not importlib.import_module) so that CPython
        # trims importlib's own frames from the user's traceback.
        __import__(spec.module)
    except (Exception, SystemExit) as exc:  # sys.exit() at import is the module's failure
        parts = spec.module.split(".")
        ours = {".".join(parts[: i + 1]) for i in range(len(parts))}
        if isinstance(exc, ModuleNotFoundError) and exc.name in ours:
            # the target's own module (or a parent package) is missing: usage
            missing = exc.name
            detail = "" if missing == spec.module else f" (no module named {missing!r})"
            raise TargetUsageError(
                f"hookweb: cannot import module {spec.module!r} for target {spec.text!r}"
                f"{detail}: it is not in {where} nor on the Python path",
                spec.text,
            ) from None
        raise TargetImportError(
            f"hookweb: importing module {spec.module!r} for target {spec.text!r} failed:"
            f" {describe_exception(exc)}",
            spec.text,
            exc,
        ) from exc
    return sys.modules[spec.module]


def _suggest(attr: str, owner: object, apps: list[str]) -> list[str]:
    """'Did you mean' candidates: close App names first, else close plain attributes."""
    lowered = attr.lower()
    scored = [(difflib.SequenceMatcher(None, lowered, n.lower()).ratio(), n) for n in apps]
    hits = [name for score, name in sorted(scored, key=lambda x: -x[0]) if score >= 0.6]
    hits = hits or [name for name in apps if lowered in name.lower()]
    if hits:
        return hits[:3]
    if isinstance(owner, ModuleType):
        # Imported modules and classes (``App`` itself) are never what was meant.
        names = [
            name
            for name, value in vars(owner).items()
            if not inspect.ismodule(value) and not inspect.isclass(value)
        ]
    else:
        names = dir(owner)
    public = [name for name in names if not name.startswith("_") and name not in apps]
    return difflib.get_close_matches(attr, public, n=3)


def _missing(spec: TargetSpec, owner: object, index: int) -> TargetUsageError:
    attr = spec.attrs[index]
    if index == 0:
        where = f"module {spec.module!r}"
    else:
        where = f"'{spec.module}:{'.'.join(spec.attrs[:index])}' ({_type_name(owner)})"
    line = f"hookweb: target {spec.text!r}: {where} has no attribute {attr!r}"
    if index == 0 and ":" not in spec.text:
        line += f" ('{spec.module}' alone means '{spec.name}')"
    apps = apps_in(owner) if isinstance(owner, ModuleType) else []
    close = _suggest(attr, owner, apps)
    if close:
        line += "; did you mean " + " or ".join(repr(n) for n in close) + "?"
    if isinstance(owner, ModuleType):
        if apps:
            line += f" (App objects in {spec.module}: {', '.join(apps)})"
        else:
            line += f" ({spec.module} defines no App or aiohttp Application)"
    return TargetUsageError(line, spec.text)


def _resolve(spec: TargetSpec, module: ModuleType) -> object:
    obj: object = module
    for index, attr in enumerate(spec.attrs):
        try:
            obj = getattr(obj, attr)
        except AttributeError:
            raise _missing(spec, obj, index) from None
        except Exception as exc:  # a property or module __getattr__ of the user's raised
            raise TargetImportError(
                f"hookweb: target {spec.text!r}: reading {attr!r} raised {describe_exception(exc)}",
                spec.text,
                exc,
            ) from exc
    return obj


def _required_parameters(fn: object) -> list[str] | None:
    try:
        signature = inspect.signature(fn)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    skip = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    return [
        p.name
        for p in signature.parameters.values()
        if p.default is inspect.Parameter.empty and p.kind not in skip
    ]


def _as_app(obj: object, spec: TargetSpec) -> App:
    if isinstance(obj, App):
        return obj
    assert isinstance(obj, web.Application)
    return App._wrap(obj, spec.name)


@dataclass(frozen=True)
class Loaded:
    """A resolved target: the attribute, and whether it is a factory to call."""

    spec: TargetSpec
    obj: object
    factory: bool

    async def app(self) -> App:
        """The App to serve: the attribute itself, or what the factory returns.

        Called inside the event loop that will serve it, so an ``async def``
        factory (and anything loop-bound it creates) runs on that loop.
        """
        if not self.factory:
            return _as_app(self.obj, self.spec)
        fn = self.obj
        assert callable(fn)
        what = f"factory {self.spec.text!r}"
        try:
            result = fn()
            if inspect.isawaitable(result):
                result = await result
        except Exception as exc:
            raise TargetImportError(
                f"hookweb: {what} raised {describe_exception(exc)}", self.spec.text, exc
            ) from exc
        if not _is_app(result):
            extra = ""
            if inspect.isasyncgen(result) or inspect.isgenerator(result):
                extra = "; a factory must return the App, not yield it"
            raise TargetUsageError(
                f"hookweb: {what} returned {_type_name(result)} ({_short_repr(result)}),"
                f" not {_APP_TYPES}{extra}",
                self.spec.text,
            )
        return _as_app(result, self.spec)


def load(
    target: str,
    *,
    factory: bool = False,
    app_dir: str | None = None,
) -> Loaded:
    """Parse ``target``, import its module and check what the attribute is.

    Raises :class:`TargetUsageError` or :class:`TargetImportError`. The
    factory (with ``factory=True``) is only checked here; :meth:`Loaded.app`
    calls it.
    """
    spec = parse_target(target)
    _make_importable(app_dir)
    module = _import(spec, app_dir)
    obj = _resolve(spec, module)
    if not factory:
        if _is_app(obj):
            return Loaded(spec, obj, factory=False)
        if callable(obj):
            required = _required_parameters(obj)
            if required:  # a request handler or a helper: no factory either
                apps = apps_in(module)
                where = f" (App objects in {spec.module}: {', '.join(apps)})" if apps else ""
                raise TargetUsageError(
                    f"hookweb: target {spec.text!r} is {_what(obj)} taking"
                    f" ({', '.join(required)}), not an App; point the target at the App{where}",
                    spec.text,
                )
            raise TargetUsageError(
                f"hookweb: target {spec.text!r} is {_what(obj)}, not an App; if calling it"
                f" returns the App, add --factory (python -m hookweb {spec.text} --factory)",
                spec.text,
            )
        raise TargetUsageError(
            f"hookweb: target {spec.text!r} is {_what(obj)}, not {_APP_TYPES}", spec.text
        )
    if _is_app(obj):
        raise TargetUsageError(
            f"hookweb: target {spec.text!r} is already {_type_name(obj)}, not a factory;"
            " drop --factory",
            spec.text,
        )
    if not callable(obj):
        raise TargetUsageError(
            f"hookweb: --factory needs a callable, but target {spec.text!r} is {_what(obj)}",
            spec.text,
        )
    required = _required_parameters(obj)
    if required:
        names = ", ".join(required)
        raise TargetUsageError(
            f"hookweb: factory {spec.text!r} needs arguments ({names}), but --factory calls it"
            " with none; give them defaults or point at a function without parameters",
            spec.text,
        )
    return Loaded(spec, obj, factory=True)
