"""Helpers shared by the subprocess tests: the CLI as a real process, markers, ports."""

from __future__ import annotations

import http.client
import os
import re
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

APPS = Path(__file__).parent / "apps"
#: hookweb's own package directory and aiohttp's, with a trailing separator: a traceback
#: line naming a file under them is a framework frame. (Not "hookweb/": the clone itself
#: may live in a directory called hookweb.)
HOOKWEB_DIR = str(Path(__import__("hookweb").__file__).parent) + os.sep
AIOHTTP_DIR = str(Path(__import__("aiohttp").__file__).parent) + os.sep
SERVING = re.compile(r"hookweb: serving (\S+) on (https?)://(\S+?) \(Ctrl\+C to quit\)")
WAIT = 15.0  # upper bound for any single wait; real cases take well under a second


# -- helpers -----------------------------------------------------------------------------


def clean_env(markers: Path | None = None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKWEB_")}
    if markers is not None:
        env["HOOKWEB_TEST_MARKERS"] = str(markers)
    env.update(extra)
    return env


class Proc:
    """``python -m hookweb ...`` with stderr collected line by line by a thread."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path = APPS) -> None:
        self.args = args
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "hookweb", *args],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self.stdout = ""
        self._changed = threading.Condition()
        self._threads = [
            threading.Thread(target=self._read_err, daemon=True),
            threading.Thread(target=self._read_out, daemon=True),
        ]
        for t in self._threads:
            t.start()

    def _read_err(self) -> None:
        assert self.popen.stderr is not None
        with self.popen.stderr as stream:
            for line in stream:
                with self._changed:
                    self.lines.append(line.rstrip("\n"))
                    self._changed.notify_all()

    def _read_out(self) -> None:
        assert self.popen.stdout is not None
        with self.popen.stdout as stream:
            self.stdout = stream.read()

    @property
    def stderr(self) -> str:
        with self._changed:
            return "".join(line + "\n" for line in self.lines)

    def wait_for(self, pattern: re.Pattern[str], count: int = 1) -> re.Match[str]:
        """The ``count``-th stderr line matching ``pattern`` (waits up to WAIT s)."""
        deadline = time.monotonic() + WAIT
        with self._changed:
            while True:
                found = [m for m in map(pattern.search, self.lines) if m]
                if len(found) >= count:
                    return found[count - 1]
                left = deadline - time.monotonic()
                if left <= 0 or (self.popen.poll() is not None and not self._reading()):
                    raise AssertionError(
                        f"no line matching {pattern.pattern!r} (#{count});"
                        f" exit={self.popen.poll()} stderr:\n" + "\n".join(self.lines)
                    )
                self._changed.wait(min(left, 0.1))

    def _reading(self) -> bool:
        return self._threads[0].is_alive()

    def serving(self, count: int = 1) -> tuple[str, int]:
        """(scheme, port) from the ``count``-th serving line."""
        match = self.wait_for(SERVING, count)
        return match.group(2), int(match.group(3).rsplit(":", 1)[1])

    def signal(self, sig: int) -> None:
        self.popen.send_signal(sig)

    def wait(self, timeout: float = WAIT) -> int:
        code = self.popen.wait(timeout)
        for t in self._threads:
            t.join(timeout)
        return code

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(WAIT)
        for t in self._threads:
            t.join(WAIT)


def read_markers(path: Path) -> list[str]:
    """Marker lines without the pid."""
    return [line.split(" ", 1)[1] for line in read_marker_lines(path)]


def read_marker_lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def wait_marker(path: Path, text: str) -> None:
    deadline = time.monotonic() + WAIT
    while text not in read_markers(path):
        assert time.monotonic() < deadline, f"marker {text!r} never appeared: {read_markers(path)}"
        time.sleep(0.02)


def http_get(
    port: int, path: str = "/", *, context: ssl.SSLContext | None = None, timeout: float = WAIT
) -> tuple[int, str]:
    conn: http.client.HTTPConnection
    if context is None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    else:
        conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=timeout, context=context)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def can_connect(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False
