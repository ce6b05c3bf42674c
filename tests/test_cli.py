"""SPEC section 3: ``python -m hookweb TARGET`` against the fixture apps in tests/apps/.

Where a server runs, the exit code matters or a signal is sent, the CLI runs as a
real subprocess on 127.0.0.1 (port 0 unless the case needs a known port). Usage
errors and ``--check`` run in-process through ``hookweb.cli.main``.
"""

from __future__ import annotations

import concurrent.futures
import http.client
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import hookweb
from hookweb import cli
from tests.support import (
    APPS,
    HOOKWEB_DIR,
    WAIT,
    Proc,
    can_connect,
    clean_env,
    free_port,
    http_get,
    read_marker_lines,
    read_markers,
    wait_marker,
)

# -- serving and stopping ----------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_stop_signal_lets_inflight_request_finish_br15(
    run_cli: Callable[..., Proc], markers: Path, sig: signal.Signals
) -> None:
    proc = run_cli("cli_basic:app", "--port", "0")
    _, port = proc.serving()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        slow = pool.submit(http_get, port, "/slow")
        time.sleep(0.5)
        proc.signal(sig)
        time.sleep(0.2)
        assert not can_connect(port), "a new connection was accepted after the stop signal"
        assert slow.result(WAIT) == (200, "done")
    assert proc.wait() == 0
    assert read_markers(markers) == [
        "pre_start",
        f"post_start http://127.0.0.1:{port}",
        "shutdown",
        "cleanup",
    ]
    assert (
        proc.lines[0]
        == f"hookweb: serving cli_basic:app on http://127.0.0.1:{port} (Ctrl+C to quit)"
    )
    assert (
        f"hookweb: {sig.name}: stopping gracefully (press Ctrl+C again to stop at once)"
        in proc.lines
    )


def test_shutdown_timeout_cuts_only_the_slow_request_br16(
    run_cli: Callable[..., Proc], markers: Path
) -> None:
    proc = run_cli("cli_basic", "--port", "0", "--shutdown-timeout", "2", "--no-access-log")
    _, port = proc.serving()
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        work = pool.submit(http_get, port, "/work")
        forever = pool.submit(http_get, port, "/forever")
        time.sleep(0.2)
        signalled = time.monotonic()
        proc.signal(signal.SIGTERM)
        assert work.result(WAIT) == (200, "finished")
        with pytest.raises((http.client.HTTPException, ConnectionError)):
            forever.result(WAIT)
        cut_after = time.monotonic() - signalled
    assert proc.wait() == 0
    stopped_after = time.monotonic() - signalled
    # Not at once, not after 30 s: once the timeout (test_shutdown_timeout_is_waited_once).
    assert 1.5 < cut_after < 5, cut_after
    assert stopped_after < 6
    events = read_markers(markers)
    assert events[0] == "pre_start" and events[-1] == "cleanup"
    assert events.index("shutdown") < events.index("cleanup")
    assert events.index("work finished") < events.index("cleanup")
    assert not any(" GET " in line for line in proc.lines)  # --no-access-log


def test_shutdown_timeout_is_waited_once(run_cli: Callable[..., Proc]) -> None:
    proc = run_cli("cli_basic", "--port", "0", "--shutdown-timeout", "1")
    _, port = proc.serving()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        forever = pool.submit(http_get, port, "/forever")
        time.sleep(0.2)
        signalled = time.monotonic()
        proc.signal(signal.SIGTERM)
        assert proc.wait() == 0
        stopped_after = time.monotonic() - signalled
        with pytest.raises((http.client.HTTPException, ConnectionError)):
            forever.result(WAIT)
    assert stopped_after < 1.8, stopped_after


def test_second_sigint_during_stop_stops_at_once(run_cli: Callable[..., Proc]) -> None:
    proc = run_cli("cli_basic:app", "--port", "0")
    _, port = proc.serving()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        forever = pool.submit(http_get, port, "/forever")
        time.sleep(0.2)
        proc.signal(signal.SIGINT)
        proc.wait_for(re.compile("stopping gracefully"))
        time.sleep(0.3)  # a repeat within REPEAT_WINDOW (0.1 s) would count once
        started = time.monotonic()
        proc.signal(signal.SIGINT)
        assert proc.wait() == 1
        assert time.monotonic() - started < 3
        with pytest.raises((http.client.HTTPException, ConnectionError)):
            forever.result(WAIT)
    assert proc.lines[-1] == (
        "hookweb: stopped at once by a second signal; the remaining stop steps were skipped"
    )


def test_one_signal_delivered_twice_at_once_is_one_graceful_stop(
    run_cli: Callable[..., Proc], markers: Path
) -> None:
    # `timeout` and some supervisors send SIGTERM to the process and to its group:
    # that is one request to stop, not a second Ctrl+C that skips the stop steps.
    proc = run_cli("cli_repeat:app", "--port", "0")
    _, port = proc.serving()
    assert http_get(port, "/term-twice") == (200, "served")
    assert proc.wait() == 0
    assert read_markers(markers) == ["cleanup"]
    assert sum("SIGTERM" in line for line in proc.lines) == 1, proc.lines
    assert proc.lines[-1] == "hookweb: stopped"


def test_signal_while_start_hook_hangs_cancels_and_unwinds(
    run_cli: Callable[..., Proc], markers: Path
) -> None:
    proc = run_cli("cli_failing:hang_app", "--port", "0")
    wait_marker(markers, "pre_start entered")
    proc.signal(signal.SIGTERM)
    assert proc.wait() == 0
    assert read_markers(markers) == ["pre_start entered", "cleanup"]
    assert proc.lines == [
        "hookweb: SIGTERM during start: cancelling the start and unwinding",
        "hookweb: stop requested while pre_start hook cli_failing:wait_forever was running",
        "hookweb: stopped before serving",
    ]


def test_port_zero_logs_real_port_and_plain_aiohttp_application_serves(
    run_cli: Callable[..., Proc], markers: Path
) -> None:
    proc = run_cli("cli_basic:web_app", "--port", "0")
    _, port = proc.serving()
    assert port != 0
    assert http_get(port) == (200, "plain aiohttp")
    proc.signal(signal.SIGINT)
    assert proc.wait() == 0
    assert proc.lines[0] == (
        f"hookweb: serving cli_basic:web_app on http://127.0.0.1:{port} (Ctrl+C to quit)"
    )
    assert read_markers(markers) == ["aiohttp on_startup"]


@pytest.mark.parametrize(
    ("target", "label"),
    [("cli_basic:create_app", "factory"), ("cli_basic:create_app_async", "async factory")],
)
def test_factory_is_called_and_its_app_served_br24(
    run_cli: Callable[..., Proc], markers: Path, target: str, label: str
) -> None:
    proc = run_cli(target, "--factory", "--port", "0")
    _, port = proc.serving()
    assert http_get(port) == (200, label)
    proc.signal(signal.SIGTERM)
    assert proc.wait() == 0
    assert read_markers(markers) == [f"pre_start {label}"]


def test_unix_socket(run_cli: Callable[..., Proc], tmp_path: Path) -> None:
    path = tmp_path / "hw.sock"
    proc = run_cli("clipkg.sub:app", "--unix", str(path))
    proc.wait_for(re.compile(re.escape(f"serving clipkg.sub:app on http://unix:{path} ")))
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(WAIT)
        sock.connect(str(path))
        sock.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 200 OK\r\n")
    assert data.endswith(b"\r\n\r\nsub")
    proc.signal(signal.SIGINT)
    assert proc.wait() == 0


def test_tls_with_options_from_environment(
    run_cli: Callable[..., Proc], certificate: tuple[Path, Path]
) -> None:
    certfile, keyfile = certificate
    proc = run_cli(
        "cli_basic:app",
        HOOKWEB_PORT="0",
        HOOKWEB_SSL_CERTFILE=str(certfile),
        HOOKWEB_SSL_KEYFILE=str(keyfile),
    )
    scheme, port = proc.serving()
    assert scheme == "https"
    context = ssl.create_default_context(cafile=str(certfile))
    assert http_get(port, context=context) == (200, "ok")
    with pytest.raises(ssl.SSLError):  # really TLS: an untrusting client refuses it
        http_get(port, context=ssl.create_default_context())
    proc.signal(signal.SIGINT)
    assert proc.wait() == 0


# -- failures and exit codes -------------------------------------------------------------


def test_start_failure_exits_3_with_traceback_and_never_serves_br05(
    run_cli: Callable[..., Proc], markers: Path
) -> None:
    port = free_port()
    proc = run_cli("cli_failing:app", "--port", str(port))
    answered = []
    deadline = time.monotonic() + 5
    while proc.popen.poll() is None and time.monotonic() < deadline:
        if can_connect(port):
            answered.append(http_get(port))
        time.sleep(0.05)
    assert proc.wait() == 3
    assert answered == []
    assert proc.stderr == (
        "hookweb: pre_start hook cli_failing:load_config failed: ValueError: config missing\n"
        "Traceback (most recent call last):\n"
        f'  File "{APPS / "cli_failing.py"}", line 19, in load_config\n'
        '    raise ValueError("config missing")\n'
        "ValueError: config missing\n"
    )
    assert read_markers(markers) == ["cleanup"]


def test_start_failure_code_is_3_and_distinct_from_usage_br06(
    run_cli: Callable[..., Proc],
) -> None:
    failing = run_cli("cli_failing:db_app", "--port", "0")
    assert failing.wait() == 3
    assert failing.lines[0] == (
        "hookweb: pre_start hook cli_failing:connect failed: ConnectionError: db down"
    )
    with_reload = run_cli("cli_failing:db_app", "--port", "0", "--reload")
    assert with_reload.wait() == 3
    assert failing.lines[0] in with_reload.lines
    usage = run_cli("cli_failing:nope", "--port", "0")
    assert usage.wait() == 2


def test_lifespan_failure_unwinds_entered_lifespans_br01(
    run_cli: Callable[..., Proc], markers: Path
) -> None:
    proc = run_cli("cli_failing:lifespan_app", "--port", "0")
    assert proc.wait() == 3
    assert proc.lines[0] == (
        "hookweb: lifespan hook cli_failing:remote failed: RuntimeError: remote unreachable"
    )
    assert read_markers(markers) == ["db up", "db down"]


def test_port_in_use_exits_3_fast_after_cleanup_br02(
    run_cli: Callable[..., Proc], markers: Path
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        started = time.monotonic()
        proc = run_cli("cli_bind:app", "--port", str(port))
        assert proc.wait() == 3
        assert time.monotonic() - started < 2
    assert proc.stderr == (
        f"hookweb: cannot listen on http://127.0.0.1:{port}: Address already in use\n"
    )
    assert read_markers(markers) == ["pre_start", "cleanup"]  # no post_start


def test_hook_timeout_is_the_default_for_hooks_without_their_own(
    run_cli: Callable[..., Proc],
) -> None:
    proc = run_cli("cli_failing:slow_app", "--port", "0", "--hook-timeout", "0.3")
    assert proc.wait() == 3
    assert proc.stderr == "hookweb: pre_start hook cli_failing:slow_start timed out after 0.3 s\n"


def test_failed_cleanup_exits_1_after_every_stop_step(
    run_cli: Callable[..., Proc], markers: Path
) -> None:
    proc = run_cli("cli_failing:stop_app", "--port", "0")
    proc.serving()
    proc.signal(signal.SIGTERM)
    assert proc.wait() == 1
    assert read_markers(markers) == ["good cleanup"]
    assert "hookweb: cleanup hook cli_failing:broken_cleanup failed: OSError: disk gone" in (
        proc.lines
    )
    assert proc.lines[-1] == (
        "hookweb: stopped with 1 failed stop step:"
        " cleanup hook cli_failing:broken_cleanup failed: OSError: disk gone"
    )


def test_crashed_background_task_stops_gracefully_with_exit_1(
    run_cli: Callable[..., Proc], markers: Path
) -> None:
    proc = run_cli("cli_failing:crash_app", "--port", "0")
    assert proc.wait() == 1
    assert read_markers(markers) == ["cleanup"]
    assert proc.lines[-1] == (
        "hookweb: stopped with 1 failed stop step:"
        " background task cli_failing:ticker crashed: RuntimeError: ticker died"
    )


def test_import_error_of_users_module_shows_its_traceback(run_cli: Callable[..., Proc]) -> None:
    proc = run_cli("cli_missing_dep:app")
    assert proc.wait() == 3
    assert proc.stderr == (
        "hookweb: importing module 'cli_missing_dep' for target 'cli_missing_dep:app' failed:"
        " ModuleNotFoundError: No module named 'hookweb_missing_dependency_xyz'\n"
        "Traceback (most recent call last):\n"
        f'  File "{APPS / "cli_missing_dep.py"}", line 3, in <module>\n'
        "    import hookweb_missing_dependency_xyz  # noqa: F401\n"
        "    ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n"
        "ModuleNotFoundError: No module named 'hookweb_missing_dependency_xyz'\n"
    )


def test_version_through_console_script_and_module() -> None:
    script = shutil.which("hookweb", path=os.path.dirname(sys.executable))
    commands = [[sys.executable, "-m", "hookweb", "--version"]]
    if script is not None:
        commands.append([script, "--version"])
    for command in commands:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=WAIT, env=clean_env(), check=False
        )
        assert (done.returncode, done.stdout, done.stderr) == (
            0,
            f"hookweb {hookweb.__version__}\n",
            "",
        )


# -- --reload ------------------------------------------------------------------------------


def test_reload_stops_old_process_before_starting_new_one(
    run_cli: Callable[..., Proc], markers: Path, tmp_path: Path
) -> None:
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    source = (APPS / "cli_reload_app.py").read_text()
    (app_dir / "cli_reload_app.py").write_text(source)
    proc = run_cli("cli_reload_app", "--app-dir", str(app_dir), "--port", "0", "--reload")
    _, port = proc.serving()
    assert http_get(port, "/version") == (200, "v1")
    (app_dir / "cli_reload_app.py").write_text(source.replace('"v1"', '"v2"'))
    _, new_port = proc.serving(count=2)
    assert http_get(new_port, "/version") == (200, "v2")
    proc.signal(signal.SIGINT)
    assert proc.wait() == 0
    lines = [line.split(" ", 1) for line in read_marker_lines(markers)]
    pids = [pid for pid, _ in lines]
    assert [event for _, event in lines] == [
        "pre_start v1",
        "cleanup v1",
        "pre_start v2",
        "cleanup v2",
    ]
    assert pids[0] == pids[1] != pids[2] == pids[3]
    assert "hookweb: cli_reload_app.py changed: restarting cli_reload_app" in proc.lines


# -- in-process: usage errors, --check, options ----------------------------------------------


FORMAT_HELP = (
    "expected 'module:attribute', for example 'myapp:app' or 'mypkg.web:app'"
    " ('myapp' alone means 'myapp:app')"
)

USAGE_CASES = [
    (["app:"], f"hookweb: bad target 'app:': no attribute after ':'; {FORMAT_HELP}"),
    ([":app"], f"hookweb: bad target ':app': no module before ':'; {FORMAT_HELP}"),
    (["a:b:c"], f"hookweb: bad target 'a:b:c': more than one ':'; {FORMAT_HELP}"),
    (
        ["nope_missing:app"],
        "hookweb: cannot import module 'nope_missing' for target 'nope_missing:app':"
        f" it is not in {APPS} nor on the Python path",
    ),
    (
        ["clipkg.nope:app"],
        "hookweb: cannot import module 'clipkg.nope' for target 'clipkg.nope:app':"
        f" it is not in {APPS} nor on the Python path",
    ),
    (
        ["cli_basic:ap"],
        "hookweb: target 'cli_basic:ap': module 'cli_basic' has no attribute 'ap';"
        " did you mean 'app'? (App objects in cli_basic: app, other, web_app)",
    ),
    (
        ["cli_basic:holder.ap"],
        "hookweb: target 'cli_basic:holder.ap': 'cli_basic:holder' (a cli_basic.Holder)"
        " has no attribute 'ap'; did you mean 'app'?",
    ),
    (
        ["cli_basic:number"],
        "hookweb: target 'cli_basic:number' is an int (5),"
        " not a hookweb.App or an aiohttp.web.Application",
    ),
    (
        ["cli_basic:create_app"],
        "hookweb: target 'cli_basic:create_app' is a function, not an App; if calling it"
        " returns the App, add --factory (python -m hookweb cli_basic:create_app --factory)",
    ),
    (
        ["cli_basic:index"],
        "hookweb: target 'cli_basic:index' is an async function taking (request), not an App;"
        " point the target at the App (App objects in cli_basic: app, other, web_app)",
    ),
    (
        ["cli_basic:needs_args", "--factory"],
        "hookweb: factory 'cli_basic:needs_args' needs arguments (config), but --factory calls"
        " it with none; give them defaults or point at a function without parameters",
    ),
    (
        ["cli_basic:returns_int", "--factory"],
        "hookweb: factory 'cli_basic:returns_int' returned an int (5),"
        " not a hookweb.App or an aiohttp.web.Application",
    ),
    (
        ["cli_basic:app", "--factory"],
        "hookweb: target 'cli_basic:app' is already a hookweb.App, not a factory; drop --factory",
    ),
    (
        ["cli_basic:app", "--workers", "3", "--reload"],
        "hookweb: --workers and --reload cannot be combined; use --reload while developing"
        " and --workers in production",
    ),
    (
        ["cli_basic:app", "--port", "x"],
        "hookweb: argument --port: invalid int value: 'x' (see python -m hookweb --help)",
    ),
    (
        ["cli_basic:app", "--port", "70000"],
        "hookweb: port must be an int from 0 to 65535, got 70000",
    ),
    (
        ["cli_basic:app", "--loop", "trio"],
        "hookweb: argument --loop: expected one of auto, asyncio, uvloop, got 'trio'"
        " (see python -m hookweb --help)",
    ),
    (
        ["cli_basic:app", "--ssl-certfile", "/nonexistent/cert.pem"],
        "hookweb: cannot load the TLS certificate /nonexistent/cert.pem: No such file or directory",
    ),
    (
        ["cli_basic:app", "--app-dir", "/nonexistent/dir"],
        "hookweb: --app-dir '/nonexistent/dir' is not a directory",
    ),
]


@pytest.mark.parametrize(("args", "line"), USAGE_CASES, ids=[" ".join(a) for a, _ in USAGE_CASES])
def test_usage_errors_exit_2_with_one_line(
    in_apps: None, capsys: pytest.CaptureFixture[str], args: list[str], line: str
) -> None:
    assert cli.main(args) == 2
    out, err = capsys.readouterr()
    assert (out, err) == ("", line + "\n")


def test_usage_error_from_environment_names_the_variable(
    in_apps: None, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOKWEB_PORT", "eighty")
    assert cli.main(["cli_basic:app", "--check"]) == 2
    assert capsys.readouterr().err == (
        "hookweb: HOOKWEB_PORT='eighty' is not a valid --port value:"
        " invalid literal for int() with base 10: 'eighty'\n"
    )
    assert cli.main(["cli_basic:app", "--check", "--port", "1"]) == 0  # the flag wins


def test_workers_from_environment_with_reload_is_rejected_too_br08(
    in_apps: None, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOKWEB_WORKERS", "3")
    monkeypatch.setenv("HOOKWEB_RELOAD", "1")
    assert cli.main(["cli_basic:app"]) == 2
    assert capsys.readouterr().err.startswith("hookweb: --workers and --reload cannot be")


@pytest.mark.parametrize(
    ("target", "cause"),
    [
        (
            "cli_circular",
            "ImportError: cannot import name 'app' from partially initialized module"
            f" 'cli_circular' (most likely due to a circular import) ({APPS / 'cli_circular.py'})",
        ),
        ("cli_attr_error:app", "AttributeError: boom"),
    ],
)
def test_users_own_import_error_is_shown_with_traceback_br23(
    in_apps: None, capsys: pytest.CaptureFixture[str], target: str, cause: str
) -> None:
    assert cli.main([target, "--check"]) == 3
    out, err = capsys.readouterr()
    module = target.split(":")[0]
    name = target if ":" in target else f"{target}:app"
    lines = err.splitlines()
    assert out == ""
    assert lines[0] == (
        f"hookweb: importing module '{module}' for target '{target}' failed: {cause}"
    )
    assert lines[1] == "Traceback (most recent call last):"
    assert lines[-1] == cause
    assert HOOKWEB_DIR not in err and "importlib" not in err
    assert "has no attribute" not in err and name  # never the short "not found" message


def test_circular_import_traceback_names_both_modules_br23(
    in_apps: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["cli_circular:app", "--check"]) == 3
    err = capsys.readouterr().err
    assert f'File "{APPS / "cli_circular.py"}", line 3, in <module>' in err
    assert f'File "{APPS / "cli_circular_helpers.py"}", line 1, in <module>' in err


def test_factory_that_raises_exits_3_with_its_traceback(
    in_apps: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["cli_basic:factory_raises", "--factory", "--check"]) == 3
    assert capsys.readouterr().err == (
        "hookweb: factory 'cli_basic:factory_raises' raised RuntimeError: factory broke\n"
        "Traceback (most recent call last):\n"
        f'  File "{APPS / "cli_basic.py"}", line 113, in factory_raises\n'
        '    raise RuntimeError("factory broke")\n'
        "RuntimeError: factory broke\n"
    )


def test_check_prints_the_plan_and_binds_nothing(
    in_apps: None, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as taken:  # a run would fail on this port; --check never binds
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        assert cli.main(["cli_basic", "--check", "--port", str(taken.getsockname()[1])]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert out == (
        "hookweb: lifecycle plan of cli_basic:app, in run order:\n"
        "   1. pre_start     cli_basic:open_db   order=0 timeout=5s\n"
        "      -- sockets bound --\n"
        "   2. post_start    cli_basic:announce  order=0 timeout=none\n"
        "      -- serving until a stop signal --\n"
        "   3. shutdown      cli_basic:say_bye   order=-1 timeout=none\n"
        "   4. cleanup       cli_basic:close_db  order=0 timeout=none\n"
        "routes:\n"
        "  GET,HEAD /        -> cli_basic:index\n"
        "  GET,HEAD /slow    -> cli_basic:slow\n"
        "  GET,HEAD /work    -> cli_basic:work\n"
        "  GET,HEAD /forever -> cli_basic:forever\n"
        "middleware (outermost first):\n"
        "  cli_basic:tag\n"
    )


def test_check_with_lifespans_default_timeout_and_async_factory(
    in_apps: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["cli_failing:lifespan_app", "--check", "--hook-timeout", "2.5"]) == 0
    assert capsys.readouterr().out == (
        "hookweb: lifecycle plan of cli_failing:lifespan_app, in run order:\n"
        "   1. lifespan      cli_failing:database  order=0 timeout=2.5s (default)\n"
        "   2. lifespan      cli_failing:remote    order=0 timeout=2.5s (default)\n"
        "      -- sockets bound --\n"
        "   3. post_start    cli_failing:post      order=0 timeout=2.5s (default)\n"
        "      -- serving until a stop signal --\n"
        "   4. lifespan exit cli_failing:remote    order=0 timeout=2.5s (default)\n"
        "   5. lifespan exit cli_failing:database  order=0 timeout=2.5s (default)\n"
        "routes:\n"
        "  (none)\n"
        "middleware (outermost first):\n"
        "  (none)\n"
    )
    assert cli.main(["cli_basic:create_app_async", "--factory", "--check"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[1] == (
        "   1. pre_start     cli_basic:_factory_app.<locals>.factory_start  order=0 timeout=none"
    )


def test_check_of_plain_aiohttp_application_lists_its_signals(
    in_apps: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["cli_basic:web_app", "--check"]) == 0
    assert capsys.readouterr().out == (
        "hookweb: lifecycle plan of cli_basic:web_app, in run order:\n"
        "  (no lifecycle hooks)\n"
        "routes:\n"
        "  GET,HEAD / -> cli_basic:plain\n"
        "middleware (outermost first):\n"
        "  (none)\n"
        "aiohttp signal receivers (run by aiohttp, around hookweb's steps):\n"
        "  on_startup           cli_basic:aiohttp_startup\n"
    )


WINDOWS_ARGV0 = r"C:\venv\Lib\site-packages\hookweb\__main__.py"


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["cli_basic:app", "--check"], 0),
        (["clipkg.sub:app", "--check"], 0),
        (["cli_basic", "--check"], 0),  # SPEC: 'module' alone means 'module:app'
        (["cli_basic:", "--check"], 2),
        ([":app", "--check"], 2),
        ([], 2),
    ],
)
def test_windows_argv0_is_never_the_target_br26(
    in_apps: None,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    code: int,
) -> None:
    monkeypatch.setattr(sys, "argv", [WINDOWS_ARGV0, *args])
    assert cli.main(None) == code
    out, err = capsys.readouterr()
    assert "'C'" not in out + err and "module C" not in out + err
    if code == 0:
        assert out.startswith("hookweb: lifecycle plan of ")
    elif args:
        assert err.endswith(f"; {FORMAT_HELP}\n") and err.count("\n") == 1
    else:
        assert err.startswith("usage: python -m hookweb [-h]")
        assert err.endswith(
            "hookweb: missing TARGET, for example: python -m hookweb myapp:app"
            " (see python -m hookweb --help)\n"
        )


def test_help_documents_defaults_and_environment(
    in_apps: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "default: 127.0.0.1" in text
    assert "default: 60; env HOOKWEB_SHUTDOWN_TIMEOUT" in text
    assert "default: 0; env HOOKWEB_DRAIN_DELAY" in text  # a default of 0 is shown too
    for opt in cli.OPTIONS:
        assert opt.flag in text and opt.env in text
    assert "--no-access-log" in text and "--version" in text


def test_reload_without_watchfiles_says_how_to_install(
    in_apps: None, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "watchfiles", None)
    assert cli.main(["cli_basic:app", "--reload"]) == 2
    assert capsys.readouterr().err == (
        "hookweb: --reload needs the watchfiles package: pip install 'hookweb[reload]'\n"
    )


def test_option_table_maps_onto_serve_options() -> None:
    import dataclasses

    from hookweb._serve import ServeOptions

    fields = {f.name for f in dataclasses.fields(ServeOptions)}
    assert {o.name for o in cli.OPTIONS if o.serve} <= fields
    assert fields - {o.name for o in cli.OPTIONS} == {"ssl_context", "target"}
    assert len({o.env for o in cli.OPTIONS}) == len(cli.OPTIONS)


def test_resolve_options_flag_beats_environment_beats_default() -> None:
    parser = cli.build_parser("hookweb")
    env = {"HOOKWEB_PORT": "9000", "HOOKWEB_ACCESS_LOG": "off", "HOOKWEB_LOG_LEVEL": "debug"}
    values = cli.resolve_options(parser.parse_args(["x", "--port", "7000"]), env)
    assert values["port"] == 7000
    assert values["access_log"] is False
    assert values["log_level"] == "debug"
    assert values["host"] == "127.0.0.1"
    assert values["shutdown_timeout"] == 60.0
    values = cli.resolve_options(parser.parse_args(["x", "--access-log"]), env)
    assert (values["port"], values["access_log"]) == (9000, True)
    with pytest.raises(cli.UsageError, match="HOOKWEB_LOOP='trio' is not a valid --loop value"):
        cli.resolve_options(parser.parse_args(["x"]), {"HOOKWEB_LOOP": "trio"})


def test_docs_list_every_option_and_variable() -> None:
    docs = (Path(__file__).parent.parent / "docs" / "cli.md").read_text()
    for opt in cli.OPTIONS:
        assert f"`{opt.flag}" in docs and f"`{opt.env}`" in docs, opt.name
    for code in ("| 0 |", "| 1 |", "| 2 |", "| 3 |"):
        assert code in docs
