"""hookweb.loader: TARGET -> App, as typed errors (never printing, never exiting)."""

from __future__ import annotations

import asyncio
import itertools
import os
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from aiohttp import web

from hookweb import App
from hookweb.loader import (
    TargetImportError,
    TargetSpec,
    TargetUsageError,
    load,
    parse_target,
)
from hookweb.testing import isolated_registry

_names = itertools.count()


@pytest.fixture
def module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], str]]:
    """Write a uniquely named module into tmp_path; yield its maker; unload afterwards."""
    monkeypatch.chdir(tmp_path)
    saved_path = list(sys.path)
    made: list[str] = []

    def make(source: str) -> str:
        name = f"ldr_mod_{os.getpid()}_{next(_names)}"
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
        made.append(name)
        return name

    try:
        with isolated_registry():
            yield make
    finally:
        sys.path[:] = saved_path
        for name in made:
            sys.modules.pop(name, None)


@pytest.mark.parametrize(
    ("text", "module", "attrs"),
    [
        ("myapp", "myapp", ("app",)),
        ("myapp:app", "myapp", ("app",)),
        ("pkg.mod:obj.app", "pkg.mod", ("obj", "app")),
        ("_private:_x", "_private", ("_x",)),
    ],
)
def test_parse_valid_targets(text: str, module: str, attrs: tuple[str, ...]) -> None:
    assert parse_target(text) == TargetSpec(text, module, attrs)
    assert parse_target(text).name == f"{module}:{'.'.join(attrs)}"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("app:", "no attribute after ':'"),
        (":app", "no module before ':'"),
        ("a:b:c", "more than one ':'"),
        ("my-app:app", "'my-app' is not a dotted module name"),
        ("pkg..mod:app", "'pkg..mod' is not a dotted module name"),
        ("myapp:1app", "'1app' is not a (dotted) attribute name"),
        ("myapp.py", "a file path, not a module name"),
        (r"C:\venv\Lib\hookweb\__main__.py", "'C' is not"),
    ],
)
def test_parse_bad_targets_is_usage_error(text: str, problem: str) -> None:
    with pytest.raises(TargetUsageError) as info:
        parse_target(text)
    assert info.value.exit_code == 2
    assert info.value.target == text
    assert str(info.value).startswith(f"hookweb: bad target {text!r}: ")
    assert "expected 'module:attribute', for example 'myapp:app'" in str(info.value)
    if not problem.startswith("'C'"):
        assert problem in str(info.value)


def test_windows_path_target_is_a_bad_format_not_a_module_named_c() -> None:
    with pytest.raises(TargetUsageError) as info:
        parse_target(r"C:\venv\Lib\hookweb\__main__.py")
    assert "more than one ':'" not in str(info.value)
    assert "module 'C'" not in str(info.value)


def test_file_path_hint(tmp_path: Path) -> None:
    with pytest.raises(TargetUsageError) as info:
        parse_target("src/myapp.py")
    assert str(info.value).endswith(
        "(for src/myapp.py write 'myapp:app' and run from its directory or pass --app-dir)"
    )


def test_app_and_application_and_dotted_attribute(module: Callable[[str], str]) -> None:
    name = module(
        """
        from aiohttp import web
        from hookweb import App, Registry
        app = App(Registry())
        raw = web.Application()
        class Box:
            inner = app
        box = Box()
        """
    )
    loaded = load(name)
    app = asyncio.run(loaded.app())
    assert app is sys.modules[name].app
    assert asyncio.run(load(f"{name}:box.inner").app()) is app
    wrapped = asyncio.run(load(f"{name}:raw").app())
    assert isinstance(wrapped, App)
    assert wrapped.web_app is sys.modules[name].raw
    assert wrapped.name == f"{name}:raw"


def test_the_current_directory_and_app_dir_are_importable(
    module: Callable[[str], str], tmp_path: Path
) -> None:
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "ldr_elsewhere_app.py").write_text(
        "from hookweb import App, Registry\napp = App(Registry())\n"
    )
    try:
        with pytest.raises(TargetUsageError, match="cannot import module 'ldr_elsewhere_app'"):
            load("ldr_elsewhere_app")
        assert load("ldr_elsewhere_app", app_dir=str(other)).spec.module == "ldr_elsewhere_app"
    finally:
        sys.modules.pop("ldr_elsewhere_app", None)
    name = module("from hookweb import App, Registry\napp = App(Registry())\n")
    sys.path[:] = [p for p in sys.path if p not in ("", str(tmp_path))]
    assert load(name).spec.module == name  # cwd is put back on sys.path


def test_missing_module_vs_missing_dependency(module: Callable[[str], str]) -> None:
    with pytest.raises(TargetUsageError) as usage:
        load("ldr_does_not_exist:app")
    assert str(usage.value).startswith(
        "hookweb: cannot import module 'ldr_does_not_exist' for target 'ldr_does_not_exist:app'"
    )
    name = module("import ldr_missing_dependency\n")
    with pytest.raises(TargetImportError) as failed:
        load(name)
    assert failed.value.exit_code == 3
    assert isinstance(failed.value.cause, ModuleNotFoundError)
    assert failed.value.cause.name == "ldr_missing_dependency"


def test_missing_parent_package_is_usage_error() -> None:
    with pytest.raises(TargetUsageError) as info:
        load("ldr_nopkg.sub:app")
    assert str(info.value) == (
        "hookweb: cannot import module 'ldr_nopkg.sub' for target 'ldr_nopkg.sub:app'"
        f" (no module named 'ldr_nopkg'): it is not in {os.getcwd()} nor on the Python path"
    )


def test_error_raised_while_importing_is_the_users(module: Callable[[str], str]) -> None:
    name = module("raise AttributeError('boom')\n")
    with pytest.raises(TargetImportError) as info:
        load(f"{name}:app")
    assert str(info.value.cause) == "boom"
    assert type(info.value.cause) is AttributeError


def test_attribute_getter_that_raises_is_the_users(module: Callable[[str], str]) -> None:
    name = module(
        """
        def __getattr__(name):
            raise KeyError(name)
        """
    )
    with pytest.raises(TargetImportError) as info:
        load(f"{name}:app")
    assert isinstance(info.value.cause, KeyError)


def test_missing_attribute_lists_apps_and_suggestions(module: Callable[[str], str]) -> None:
    name = module(
        """
        from aiohttp import web
        from hookweb import App, Registry
        application = App(Registry())
        admin = web.Application()
        """
    )
    with pytest.raises(TargetUsageError) as info:
        load(name)
    assert str(info.value) == (
        f"hookweb: target {name!r}: module {name!r} has no attribute 'app'"
        f" ('{name}' alone means '{name}:app'); did you mean 'application'?"
        f" (App objects in {name}: application, admin)"
    )
    empty = module("x = 1\n")
    with pytest.raises(TargetUsageError) as info:
        load(f"{empty}:app")
    assert str(info.value) == (
        f"hookweb: target '{empty}:app': module {empty!r} has no attribute 'app'"
        f" ({empty} defines no App or aiohttp Application)"
    )


@pytest.mark.parametrize(
    ("source", "what"),
    [
        ("app = 5", "an int (5)"),
        ("app = None", "a NoneType (None)"),
        ("app = 'x' * 100", "a str ('xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...)"),
    ],
)
def test_wrong_type_names_the_type(module: Callable[[str], str], source: str, what: str) -> None:
    name = module(source)
    with pytest.raises(TargetUsageError) as info:
        load(name)
    assert str(info.value) == (
        f"hookweb: target '{name}' is {what}, not a hookweb.App or an aiohttp.web.Application"
    )


def test_callables_need_factory_flag(module: Callable[[str], str]) -> None:
    name = module(
        """
        from hookweb import App, Registry
        def make(): return App(Registry())
        async def amake(): return App(Registry())
        class Maker:
            def __init__(self, debug=False): pass
        """
    )
    for attr, what in [
        ("make", "a function"),
        ("amake", "an async function"),
        ("Maker", f"a class ({name}.Maker)"),
    ]:
        with pytest.raises(TargetUsageError) as info:
            load(f"{name}:{attr}")
        assert str(info.value) == (
            f"hookweb: target '{name}:{attr}' is {what}, not an App; if calling it returns the"
            f" App, add --factory (python -m hookweb {name}:{attr} --factory)"
        )


async def test_factories_sync_async_and_loop(module: Callable[[str], str]) -> None:
    name = module(
        """
        import asyncio
        from aiohttp import web
        from hookweb import App, Registry
        LOOPS = []
        def make(*args, verbose=False, **kwargs):
            return App(Registry(), name="sync")
        async def amake():
            LOOPS.append(asyncio.get_running_loop())
            return App(Registry(), name="async")
        def raw():
            return web.Application()
        """
    )
    assert (await load(f"{name}:make", factory=True).app()).name == "sync"
    assert (await load(f"{name}:amake", factory=True).app()).name == "async"
    assert sys.modules[name].LOOPS == [asyncio.get_running_loop()]
    wrapped = await load(f"{name}:raw", factory=True).app()
    assert isinstance(wrapped, App) and isinstance(wrapped.web_app, web.Application)


async def test_factory_errors(module: Callable[[str], str]) -> None:
    name = module(
        """
        from hookweb import App, Registry
        app = App(Registry())
        number = 3
        def needs(config, port, *, debug, verbose=False): ...
        def returns_none(): return None
        async def agen():
            yield App(Registry())
        async def broken():
            raise LookupError("no config")
        """
    )
    cases = [
        ("app", "is already a hookweb.App, not a factory; drop --factory"),
        ("number", "--factory needs a callable, but target"),
        ("needs", "needs arguments (config, port, debug), but --factory calls it with none"),
    ]
    for attr, text in cases:
        with pytest.raises(TargetUsageError, match=text.replace("(", r"\(").replace(")", r"\)")):
            load(f"{name}:{attr}", factory=True)
    with pytest.raises(TargetUsageError) as info:
        await load(f"{name}:returns_none", factory=True).app()
    assert str(info.value) == (
        f"hookweb: factory '{name}:returns_none' returned a NoneType (None),"
        " not a hookweb.App or an aiohttp.web.Application"
    )
    with pytest.raises(TargetUsageError, match="a factory must return the App, not yield it"):
        await load(f"{name}:agen", factory=True).app()
    with pytest.raises(TargetImportError) as failed:
        await load(f"{name}:broken", factory=True).app()
    assert str(failed.value) == (
        f"hookweb: factory '{name}:broken' raised LookupError: no config"
    )
    assert isinstance(failed.value.cause, LookupError)


def test_sys_exit_while_importing_is_the_modules_failure(module: Callable[[str], str]) -> None:
    name = module("import sys\nsys.exit(7)\n")
    with pytest.raises(TargetImportError) as info:
        load(name)
    assert info.value.line == (
        f"hookweb: importing module {name!r} for target {name!r} failed: SystemExit: 7"
    )
    assert info.value.exit_code == 3
