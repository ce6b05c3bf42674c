"""Issue 5, item 6: hostile CLI input always exits 2 with one line, never a traceback.

Runs ``hookweb.cli.main`` in-process (as tests/test_cli.py does for usage
errors) on hypothesis-generated targets, option values and ``HOOKWEB_*``
variables. ``--reload`` is left out: it starts a supervisor process.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hookweb import cli

EXAMPLES = 150
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
# Text as a shell can pass it: no NUL; anything else goes (newlines, quotes, unicode).
argv_text = st.text(alphabet=st.characters(blacklist_characters="\x00"), max_size=24)

# Attributes of tests/apps/cli_basic.py that resolve to something servable.
SERVABLE = {"app", "other", "web_app", "holder", "Holder", "create_app", "create_app_async"}


def not_servable(attr: str) -> bool:
    return attr.split(".")[0].strip() not in SERVABLE and "make_web_app" not in attr


targets = st.one_of(
    st.sampled_from(
        [
            "",
            ":",
            "app:",
            ":app",
            "a:b:c",
            "cli_basic:ap",
            "cli_basic:holder.ap",
            "cli_basic:number",
            "cli_basic:needs_args",
            "cli_basic:returns_int",
            "cli_basic:factory_raises",  # with --factory: exit 3, so only without it
            "clipkg.nope:app",
            "C:\\venv\\app.py",
            "-",
            "..:app",
            "zz_missing.:app",
        ]
    ),
    argv_text.map(lambda t: "zz_" + t),  # a module that cannot exist
    argv_text.map(lambda t: "zz_" + t + ":" + t),
    argv_text.filter(not_servable).map(lambda t: "cli_basic:" + t),
)
number_text = st.one_of(
    argv_text,
    st.sampled_from(["nan", "inf", "-inf", "-1", "0", "1e309", "0x10", " 5", "5 ", "٣", "1_0"]),
    st.integers(-(10**6), 10**6).map(str),
)
VALUE_OPTIONS = {
    "--port": number_text,
    "--host": argv_text,
    "--unix": argv_text.map(lambda t: "/nonexistent/" + t),
    "--shutdown-timeout": number_text,
    "--hook-timeout": number_text,
    "--stop-timeout": number_text,
    "--log-level": st.one_of(argv_text, st.sampled_from(["INFO", "debug", "trace"])),
    "--loop": st.one_of(argv_text, st.sampled_from(["trio", "asyncio", "uvloop"])),
    "--backlog": number_text,
    "--workers": number_text,
    "--ssl-certfile": st.sampled_from(["/nonexistent/cert.pem", ".", "cli_basic.py"]),
    "--ssl-keyfile": st.sampled_from(["/nonexistent/key.pem", "cli_basic.py"]),
    "--app-dir": st.one_of(st.sampled_from([".", "/nonexistent", "clipkg"]), argv_text),
}
SWITCHES = ["--factory", "--check", "--access-log", "--no-access-log", "--nope", "-x", "--"]
ENV_OPTIONS = [o for o in cli.OPTIONS if o.name != "reload"]

options = st.lists(
    st.one_of(
        st.sampled_from(sorted(VALUE_OPTIONS)).flatmap(
            lambda flag: VALUE_OPTIONS[flag].map(lambda value: [flag, value])
        ),
        st.sampled_from(SWITCHES).map(lambda s: [s]),
        st.sampled_from(sorted(VALUE_OPTIONS)).map(lambda flag: [flag]),  # value missing
    ),
    max_size=4,
).map(lambda parts: [arg for part in parts for arg in part])
environment = st.dictionaries(
    st.sampled_from([o.env for o in ENV_OPTIONS]), number_text | argv_text, max_size=3
)


@contextlib.contextmanager
def environ(values: dict[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.update(values)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def run_main(args: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with environ(env), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(args)
    return code, out.getvalue(), err.getvalue()


def assert_one_line(err: str, args: list[str], env: dict[str, str]) -> None:
    assert err.startswith("hookweb: ") and err.endswith("\n"), (args, env, err)
    assert err.count("\n") == 1, (args, env, err)
    assert "Traceback" not in err, (args, env, err)


def test_unresolvable_targets_with_any_options_exit_2_with_one_line(
    in_apps: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    def never_serve(*args: Any) -> int:
        raise AssertionError(f"the fuzz reached serving: {args}")

    monkeypatch.setattr(cli, "_run", never_serve)
    tried = 0

    @SETTINGS
    @given(targets, options, environment)
    def one(target: str, opts: list[str], env: dict[str, str]) -> None:
        nonlocal tried
        tried += 1
        if target == "cli_basic:factory_raises" and "--factory" in opts + list(env.values()):
            return
        args = [target, *opts]
        code, out, err = run_main(args, env)
        assert code == 2, (args, env, out, err)
        assert out == ""
        assert_one_line(err, args, env)

    one()
    print(f"\ncli fuzz (unresolvable targets): {tried} command lines")
    assert tried >= EXAMPLES


def test_any_option_value_with_check_exits_0_or_2_with_one_line(in_apps: None) -> None:
    tried = 0
    codes: dict[int, int] = {}

    @SETTINGS
    @given(options, environment)
    def one(opts: list[str], env: dict[str, str]) -> None:
        nonlocal tried
        tried += 1
        args = ["cli_basic:app", "--check", *opts]
        code, out, err = run_main(args, env)
        codes[code] = codes.get(code, 0) + 1
        assert code in (0, 2), (args, env, out, err)
        if code == 2:
            assert_one_line(err, args, env)
        else:
            assert out.startswith("hookweb: lifecycle plan of cli_basic:app"), (args, env, out)
            assert "Traceback" not in err

    one()
    print(f"\ncli fuzz (options with --check): {tried} command lines, exit codes {codes}")
    assert tried >= EXAMPLES
