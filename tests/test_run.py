"""``app.run()`` in a real process: signals, graceful stop, failures."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
import traceback
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

import hookweb
from hookweb import App, Registry

SCRIPT = Path(__file__).parent / "scripts" / "served.py"


class Served:
    def __init__(self, tmp_path: Path, mode: str = "normal", port: int = 0) -> None:
        self.markers = tmp_path / "markers.txt"
        self.markers.touch()
        env = dict(
            os.environ,
            HOOKWEB_T_MARKERS=str(self.markers),
            HOOKWEB_T_MODE=mode,
            PYTHONUNBUFFERED="1",
        )
        self.proc = subprocess.Popen(
            [sys.executable, str(SCRIPT), str(port)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.stderr_lines: list[str] = []

    def wait_port(self, timeout: float = 10) -> int:
        assert self.proc.stderr is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break
            self.stderr_lines.append(line)
            found = re.search(
                r"hookweb: serving served on http://127\.0\.0\.1:(\d+) \(Ctrl\+C", line
            )
            if found:
                return int(found.group(1))
        raise AssertionError(f"no serving line: {self.stderr_lines}")

    def wait_marker(self, text: str, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.lines():
                return
            time.sleep(0.02)
        raise AssertionError(f"marker {text!r} never appeared: {self.lines()}")

    def lines(self) -> list[str]:
        return self.markers.read_text().splitlines()

    def finish(self, timeout: float = 15) -> tuple[int, str]:
        _, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, "".join(self.stderr_lines) + err

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[list[Served]]:
    started: list[Served] = []
    yield started
    for s in started:
        s.kill()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_signal_stops_gracefully_and_the_inflight_request_finishes(
    tmp_path: Path, served: list[Served], sig: signal.Signals
) -> None:
    """CASES BR-15, through app.run()."""
    s = Served(tmp_path)
    served.append(s)
    port = s.wait_port()
    async with aiohttp.ClientSession() as session:
        request = asyncio.ensure_future(session.get(f"http://127.0.0.1:{port}/slow"))
        await asyncio.sleep(0.5)
        s.proc.send_signal(sig)
        await asyncio.sleep(0.2)
        with pytest.raises(OSError):
            await asyncio.open_connection("127.0.0.1", port)  # no longer accepting
        response = await request
        assert (response.status, await response.text()) == (200, "done")
    code, err = await asyncio.to_thread(s.finish)
    assert code == 0, err
    assert s.lines() == ["pre_start", "post_start", "shutdown", "slow done", "cleanup"]


def test_signal_while_a_start_hook_hangs_unwinds_and_exits_0(
    tmp_path: Path, served: list[Served]
) -> None:
    s = Served(tmp_path, mode="hang_start")
    served.append(s)
    s.wait_marker("pre_start")
    s.proc.send_signal(signal.SIGINT)
    code, err = s.finish()
    assert code == 0, err
    assert s.lines() == ["pre_start", "cleanup"]
    assert "hookweb: SIGINT during start: cancelling the start and unwinding" in err
    assert "Traceback" not in err


def test_a_second_signal_during_the_stop_stops_at_once(
    tmp_path: Path, served: list[Served]
) -> None:
    s = Served(tmp_path, mode="slow_shutdown")
    served.append(s)
    s.wait_port()
    s.proc.send_signal(signal.SIGINT)
    s.wait_marker("shutdown")
    time.sleep(0.3)  # a repeat within REPEAT_WINDOW (0.1 s) would count once
    started = time.monotonic()
    s.proc.send_signal(signal.SIGINT)
    code, err = s.finish()
    assert time.monotonic() - started < 3
    assert code == 1
    assert s.lines() == ["pre_start", "post_start", "shutdown"]
    assert "hookweb: SIGINT again: stopping at once, skipping the remaining stop steps" in err
    assert err.rstrip().endswith(
        "hookweb: stopped at once by a second signal; the remaining stop steps were skipped"
    )


def test_port_in_use_raises_with_the_address_and_cleanup_ran(
    tmp_path: Path, served: list[Served]
) -> None:
    """CASES BR-02 through app.run(): the programmatic API raises the OSError."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        s = Served(tmp_path, port=port)
        served.append(s)
        started = time.monotonic()
        code, err = s.finish()
    assert time.monotonic() - started < 5
    assert code == 1  # an uncaught exception; the CLI turns this into exit 3
    assert err.rstrip().endswith(
        f"hookweb: cannot listen on http://127.0.0.1:{port}: Address already in use"
    )
    assert s.lines() == ["pre_start", "cleanup"]
    assert "Task was destroyed" not in err


def test_an_empty_host_is_refused_never_all_interfaces(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from hookweb import cli
    from hookweb._serve import make_options

    message = (
        "hookweb: the host (--host, HOOKWEB_HOST, host=) is empty; hookweb never listens on"
        " every interface unless asked: give 127.0.0.1 (the default), or 0.0.0.0 / :: for"
        " every interface"
    )
    with pytest.raises(ValueError) as info:
        make_options({"host": " "})
    assert str(info.value) == message
    monkeypatch.setenv("HOOKWEB_HOST", "")
    assert cli.main(["tests.scripts.served:reg", "--port", "0"]) == 2
    assert capsys.readouterr().err == message + "\n"


# -- misuse of run_app / App.run: the error, with the caller's frames only ---------------


def frames_of(exc: BaseException) -> list[str]:
    return [frame.filename for frame in traceback.extract_tb(exc.__traceback__)]


def test_run_app_misuse_errors_show_only_the_callers_frames() -> None:
    with pytest.raises(TypeError, match="unknown run option 'prot'") as unknown:
        hookweb.run_app(App(Registry()), prot=0)
    with pytest.raises(TypeError, match=r"takes a hookweb\.App, got object") as not_app:
        hookweb.run_app(object())
    assert frames_of(unknown.value) == frames_of(not_app.value) == [__file__]


async def test_run_inside_a_running_loop_says_to_use_the_test_client() -> None:
    for run in (lambda: hookweb.run_app(App(Registry())), lambda: App(Registry()).run()):
        with pytest.raises(RuntimeError, match="in async code use 'async with") as info:
            run()
        assert set(frames_of(info.value)) == {__file__}
