"""Issue 7: gunicorn workers (``--workers N`` and ``-k hookweb.worker.GunicornWorker``).

Real gunicorn arbiters with real worker processes on 127.0.0.1, every wait
bounded, every process killed in ``finally``. The fixture app is
tests/apps/scale_app.py; its hooks write ``<pid> <text>`` marker lines.
"""

from __future__ import annotations

import collections
import http.client
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hookweb import cli

pytest.importorskip("gunicorn")

APPS = Path(__file__).parent / "apps"
WAIT = 15.0
WORKER_SERVING = re.compile(
    r"hookweb: serving (\S+) on http://127\.0\.0\.1:(\d+) \(worker pid (\d+)\)"
)
GUNICORN = [sys.executable, "-c", "from gunicorn.app.wsgiapp import run; run()"]


# -- helpers (test_deploy.py uses them too) ------------------------------------------------


def clean_env(markers: Path | None = None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HOOKWEB_", "SCALE_"))}
    env.pop("GUNICORN_CMD_ARGS", None)
    if markers is not None:
        env["HOOKWEB_TEST_MARKERS"] = str(markers)
    env["PYTHONPATH"] = str(APPS)
    env.update(extra)
    return env


class Server:
    """A server process; stderr is collected line by line by a thread."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: Path = APPS) -> None:
        self.popen = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # signals reach only the process we name
        )
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.popen.stderr is not None
        with self.popen.stderr as stream:
            for line in stream:
                with self._changed:
                    self.lines.append(line.rstrip("\n"))
                    self._changed.notify_all()

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def stderr(self) -> str:
        with self._changed:
            return "\n".join(self.lines)

    def matches(self, pattern: re.Pattern[str]) -> list[re.Match[str]]:
        with self._changed:
            return [m for m in map(pattern.search, self.lines) if m]

    def wait_for(
        self, pattern: re.Pattern[str], count: int = 1, timeout: float = WAIT
    ) -> list[re.Match[str]]:
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = [m for m in map(pattern.search, self.lines) if m]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0 or (self.popen.poll() is not None and not self._reader.is_alive()):
                    raise AssertionError(
                        f"{count} line(s) matching {pattern.pattern!r} expected;"
                        f" exit={self.popen.poll()} stderr:\n{self.stderr}"
                    )
                self._changed.wait(min(left, 0.1))

    def signal(self, sig: int) -> None:
        self.popen.send_signal(sig)

    def wait(self, timeout: float = WAIT) -> int:
        code = self.popen.wait(timeout)
        self._reader.join(timeout)
        return code

    def kill(self) -> None:
        if self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, signal.SIGKILL)  # the arbiter and its workers
            except ProcessLookupError:
                pass
            self.popen.wait(WAIT)
        else:
            try:  # workers left behind by a dead arbiter
                os.killpg(self.popen.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        self._reader.join(WAIT)


@pytest.fixture
def servers() -> Iterator[Callable[..., Server]]:
    started: list[Server] = []

    def start(argv: list[str], env: dict[str, str], cwd: Path = APPS) -> Server:
        server = Server(argv, env, cwd)
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in started:
            server.kill()


def hookweb_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "hookweb", *args]


def get(port: int, path: str = "/", timeout: float = 5.0) -> tuple[int, str]:
    """One request on a new connection (closed after the response)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


class Load:
    """``clients`` threads sending GET requests to ``port`` until stopped; counts all."""

    def __init__(self, port: int, clients: int = 4, path: str = "/") -> None:
        self.port, self.path = port, path
        self.sent = 0
        self.failures: list[str] = []
        self.bodies: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._client, daemon=True) for _ in range(clients)]

    def _client(self) -> None:
        while not self._stop.is_set():
            try:
                status, body = get(self.port, self.path)
                failure = None if status == 200 else f"HTTP {status}: {body[:80]}"
            except (OSError, http.client.HTTPException) as exc:
                failure, body = f"{type(exc).__name__}: {exc}", ""
            with self._lock:
                self.sent += 1
                if failure is not None:
                    self.failures.append(failure)
                else:
                    self.bodies[body] += 1

    def __enter__(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(WAIT)


def markers_by_pid(path: Path) -> dict[int, list[str]]:
    found: dict[int, list[str]] = collections.defaultdict(list)
    if path.exists():
        for line in path.read_text().splitlines():
            pid, text = line.split(" ", 1)
            found[int(pid)].append(text.split(" ", 1)[0])
    return dict(found)


def serving_pids(server: Server, count: int) -> tuple[int, set[int]]:
    """(port, worker pids) once ``count`` workers logged their serving line."""
    found = server.wait_for(WORKER_SERVING, count)
    ports = {int(m.group(2)) for m in found}
    assert len(ports) == 1, ports
    return ports.pop(), {int(m.group(3)) for m in found}


def pids_answering(port: int, want: set[int], timeout: float = 10.0) -> set[int]:
    """Send requests (new connections) until every pid in ``want`` answered or time is up."""
    seen: set[int] = set()
    deadline = time.monotonic() + timeout
    while not want <= seen and time.monotonic() < deadline:
        status, body = get(port)
        assert status == 200, body
        seen.add(int(body.removeprefix("pid=")))
    return seen


# -- python -m hookweb --workers N ---------------------------------------------------------


def test_two_workers_serve_hup_swaps_them_without_a_failed_request(
    servers: Callable[..., Server], tmp_path: Path
) -> None:
    markers = tmp_path / "markers.txt"
    server = servers(
        hookweb_argv("scale_app:app", "--workers", "2", "--port", "0", "--no-access-log"),
        clean_env(markers),
    )
    port, first = serving_pids(server, 2)
    assert len(first) == 2 and server.pid not in first
    # Both workers serve; the response names the pid of the worker that answered.
    assert pids_answering(port, first) == first

    with Load(port, clients=4) as load:
        time.sleep(0.3)
        server.signal(signal.SIGHUP)
        _, after = serving_pids(server, 4)
        new = after - first
        assert len(new) == 2
        deadline = time.monotonic() + WAIT
        while not all("cleanup" in markers_by_pid(markers).get(p, []) for p in first):
            assert time.monotonic() < deadline, markers.read_text()
            time.sleep(0.05)
        time.sleep(0.3)
    assert load.failures == [], f"{len(load.failures)} of {load.sent} failed: {load.failures[:5]}"
    answered = {int(body.removeprefix("pid=")) for body in load.bodies}
    assert answered & new, "the new workers never answered"
    print(f"SIGHUP swap under load: {load.sent} requests sent, {len(load.failures)} failed")

    server.signal(signal.SIGTERM)
    assert server.wait() == 0
    by_pid = markers_by_pid(markers)
    assert set(by_pid) == first | new  # the arbiter ran no hook
    for pid, events in by_pid.items():
        assert events == ["start", "post_start", "stop", "cleanup"], (pid, events)


def test_each_worker_starts_and_stops_once_br08(
    servers: Callable[..., Server], tmp_path: Path
) -> None:
    markers = tmp_path / "markers.txt"
    server = servers(
        hookweb_argv("scale_app:app", "--workers", "3", "--port", "0"), clean_env(markers)
    )
    _, pids = serving_pids(server, 3)
    server.signal(signal.SIGTERM)
    assert server.wait() == 0
    # No Ctrl+C hint in a worker: gunicorn's arbiter decides what a second signal does.
    assert server.stderr.splitlines().count("hookweb: SIGTERM: stopping gracefully") == 3
    lines = markers.read_text().splitlines()
    starts = [line.split()[0] for line in lines if line.endswith(" start")]
    stops = [line.split()[0] for line in lines if line.endswith(" stop")]
    assert sorted(starts) == sorted(stops) == sorted(str(p) for p in pids)
    assert len(set(starts)) == 3
    assert str(server.pid) not in starts


def test_start_failure_stops_the_arbiter_with_exit_3_br06(
    servers: Callable[..., Server], tmp_path: Path
) -> None:
    markers = tmp_path / "markers.txt"
    began = time.monotonic()
    server = servers(
        hookweb_argv("scale_app:app", "--workers", "2", "--port", "0"),
        clean_env(markers, SCALE_FAIL="pre_start"),
    )
    assert server.wait() == 3  # SPEC: the app's own code failed, as without --workers
    assert time.monotonic() - began < 10
    assert "hookweb: pre_start hook scale_app:open_pool failed: ConnectionError: db down" in (
        server.stderr
    )
    assert "Worker failed to boot" in server.stderr
    by_pid = markers_by_pid(markers)
    assert 1 <= len(by_pid) <= 2  # no boot loop
    for events in by_pid.values():
        assert events == ["start", "cleanup"]  # cleanup ran, post_start and stop did not


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGQUIT])
def test_a_failed_worker_stop_makes_the_arbiter_exit_1(
    servers: Callable[..., Server], tmp_path: Path, stop_signal: signal.Signals
) -> None:
    markers = tmp_path / "markers.txt"
    server = servers(
        hookweb_argv("scale_app:app", "--workers", "2", "--port", "0"),
        clean_env(markers, SCALE_FAIL="cleanup"),
    )
    _, pids = serving_pids(server, 2)
    server.signal(stop_signal)
    assert server.wait() == 1  # SPEC section 3: a stop step failed, as without --workers
    failed = (
        "hookweb: cleanup hook scale_app:close_pool failed:"
        " ConnectionError: pool close timed out"
    )
    assert server.stderr.count(failed) == 2, server.stderr  # each worker logs it as it happens
    summary = "hookweb: stopped with 1 failed stop step: " + failed.removeprefix("hookweb: ")
    assert server.stderr.count(summary) == 2, server.stderr  # and sums up as the CLI does
    shown = ", ".join(str(p) for p in sorted(pids))
    assert server.stderr.endswith(
        f"hookweb: the stop of worker pid {shown} failed or did not finish (see above): exit 1"
    ), server.stderr
    for pid in pids:
        assert markers_by_pid(markers)[pid] == ["start", "post_start", "stop", "cleanup"]


def test_bind_failure_exits_3_with_one_line(servers: Callable[..., Server]) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = servers(
            hookweb_argv("scale_app:app", "--workers", "2", "--port", str(port)), clean_env()
        )
        assert server.wait() == 3
    assert server.stderr == (
        f"hookweb: cannot listen on http://127.0.0.1:{port}: Address already in use"
    )


def test_drain_delay_with_workers_keeps_serving_with_health_503(
    servers: Callable[..., Server], tmp_path: Path
) -> None:
    server = servers(
        hookweb_argv("scale_app:app", "--workers", "2", "--port", "0", "--drain-delay", "1.5"),
        clean_env(tmp_path / "markers.txt"),
    )
    port, _ = serving_pids(server, 2)
    assert get(port, "/healthz") == (200, "ok")
    server.signal(signal.SIGTERM)
    time.sleep(0.5)
    assert get(port, "/healthz") == (503, "stopping")
    assert get(port, "/")[0] == 200  # still serving during the drain
    assert server.wait() == 0


# -- plain gunicorn: gunicorn myapp:app -k hookweb.worker.GunicornWorker -------------------


@pytest.mark.parametrize(
    ("target", "body"),
    [
        # scale_app:app: the commands of docs/deploy.md (test_deploy.py)
        ("scale_app:create_app", "pid="),  # a factory
        ("scale_app:web_app", "aiohttp pid="),  # a plain aiohttp Application
    ],
)
def test_gunicorn_command_with_the_hookweb_worker(
    servers: Callable[..., Server], tmp_path: Path, target: str, body: str
) -> None:
    markers = tmp_path / "markers.txt"
    server = servers(
        [
            *GUNICORN,
            target,
            "-k",
            "hookweb.worker.GunicornWorker",
            "-b",
            "127.0.0.1:0",
            "-w",
            "2",
            "--no-control-socket",
        ],
        clean_env(markers),
    )
    port, pids = serving_pids(server, 2)
    status, text = get(port)
    assert status == 200 and text.startswith(body)
    server.signal(signal.SIGTERM)
    assert server.wait() == 0
    if target != "scale_app:web_app":
        by_pid = markers_by_pid(markers)
        assert set(by_pid) == pids
        assert all(e == ["start", "post_start", "stop", "cleanup"] for e in by_pid.values())


def test_gunicorn_graceful_timeout_bounds_the_stop(
    servers: Callable[..., Server], tmp_path: Path
) -> None:
    server = servers(
        [
            *GUNICORN,
            "scale_app:app",
            "-k",
            "hookweb.worker.GunicornWorker",
            "-b",
            "127.0.0.1:0",
            "--graceful-timeout",
            "2",
            "--no-control-socket",
        ],
        clean_env(tmp_path / "markers.txt"),
    )
    port, _ = serving_pids(server, 1)
    result: list[object] = []
    slow = threading.Thread(target=lambda: result.append(_try_get(port, "/slow?s=30")))
    slow.start()
    time.sleep(0.5)
    signalled = time.monotonic()
    server.signal(signal.SIGTERM)
    assert server.wait() == 0
    took = time.monotonic() - signalled
    slow.join(WAIT)
    # In-flight requests get 0.8 * graceful_timeout, the stop hooks the rest.
    assert 1.2 < took < 3.0, took
    assert result and isinstance(result[0], Exception)  # cut off, not answered


def _try_get(port: int, path: str) -> object:
    try:
        return get(port, path, timeout=WAIT)
    except (OSError, http.client.HTTPException) as exc:
        return exc


def test_gunicorn_start_failure_halts_the_arbiter(
    servers: Callable[..., Server], tmp_path: Path
) -> None:
    began = time.monotonic()
    server = servers(
        [
            *GUNICORN,
            "scale_app:app",
            "-k",
            "hookweb.worker.GunicornWorker",
            "-b",
            "127.0.0.1:0",
            "-w",
            "2",
            "--no-control-socket",
        ],
        clean_env(tmp_path / "markers.txt", SCALE_FAIL="pre_start"),
    )
    # Non-zero: 3 from gunicorn's "Worker failed to boot"; gunicorn itself exits 1 (with
    # a HaltServer traceback) when both workers fail at the same moment.
    assert server.wait() in (1, 3)
    assert time.monotonic() - began < 10
    assert "Worker failed to boot." in server.stderr


# -- in-process: usage and --check ---------------------------------------------------------


def test_workers_without_gunicorn_is_a_one_line_usage_error(
    in_apps: None, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "gunicorn", None)
    assert cli.main(["scale_app:app", "--workers", "2"]) == 2
    assert capsys.readouterr().err == (
        "hookweb: --workers needs gunicorn: pip install 'hookweb[gunicorn]'\n"
    )


def test_workers_and_reload_cannot_be_combined(
    in_apps: None, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOKWEB_WORKERS", "2")
    assert cli.main(["scale_app:app", "--reload"]) == 2
    assert capsys.readouterr().err == (
        "hookweb: --workers and --reload cannot be combined; use --reload while developing"
        " and --workers in production\n"
    )


def test_check_with_workers_says_which_process_runs_what(
    in_apps: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["scale_app:app", "--check", "--workers", "4"]) == 0
    out = capsys.readouterr().out
    assert out.endswith(
        "health: GET /healthz: 503 until the post_start hooks finished, 200 while serving,"
        " 503 from the stop signal on (the drain included)\n"
        "processes:\n"
        "  gunicorn arbiter (1 process): binds the sockets, starts and replaces 4 worker(s);"
        " runs none of the steps above\n"
        "  each of the 4 workers: every step above, once per worker process (a replaced worker"
        " runs its stop steps; its successor its start steps)\n"
    )
    assert "_health_ready" not in out  # the health switch is not one of the user's steps
    assert cli.main(["scale_app:app", "--check"]) == 0
    assert "processes:" not in capsys.readouterr().out
