"""Processes of a benchmark: pinning, free ports, start, readiness, stop, RSS."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
SERVERS = HERE / "servers"
HOST = "127.0.0.1"
STOP_TIMEOUT = 10.0


def child_env() -> dict[str, str]:
    """The environment of every process the harness starts.

    Bytecode is cached (in a temporary directory, never in the work tree) even when
    PYTHONDONTWRITEBYTECODE is set: otherwise an editable hookweb is compiled from
    source at every start while aiohttp's bytecode was written at install time.
    """
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.setdefault(
        "PYTHONPYCACHEPREFIX", str(Path(tempfile.gettempdir()) / "hookweb-bench-pycache")
    )
    return env


def can_pin(*cpus: int) -> bool:
    """taskset exists and the CPUs are ours (Linux, at least two cores)."""
    if shutil.which("taskset") is None or not hasattr(os, "sched_getaffinity"):
        return False
    return set(cpus) <= os.sched_getaffinity(0)


def pinned(cpu: int | None, argv: Sequence[str]) -> list[str]:
    """``taskset -c CPU argv...`` (taskset execs: the pid stays the program's)."""
    if cpu is None:
        return list(argv)
    return ["taskset", "-c", str(cpu), *argv]


def pin_self(cpu: int | None) -> None:
    """Keep the harness (readiness polls, micro-benchmarks) off the server's core."""
    if cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cpu})


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def http_status(port: int, path: str = "/", timeout: float = 1.0) -> int | None:
    """One ``GET`` on a fresh connection: the status, or None if nothing answers yet."""
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as sock:
            sock.sendall(
                f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode()
            )
            head = sock.recv(64)
    except OSError:
        return None
    parts = head.split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
        return None
    try:
        return int(parts[1])
    except ValueError:
        return None


class ServerError(RuntimeError):
    pass


class Server:
    """One benchmark server process on a free loopback port, pinned to a core."""

    def __init__(self, argv: Sequence[str], python: str, cpu: int | None) -> None:
        self.argv = list(argv)
        self.python = python
        self.cpu = cpu
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.started = 0.0
        self._log = tempfile.TemporaryFile()

    def start(self) -> None:
        self.port = free_port()
        script = str(SERVERS / self.argv[0])
        cmd = pinned(self.cpu, [self.python, script, *self.argv[1:], "--port", str(self.port)])
        env = child_env()
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT, env=env
        )

    def wait_ready(self, path: str = "/", timeout: float = 20.0, interval: float = 0.001) -> float:
        """Poll until ``GET path`` answers 200; seconds from process start to that answer."""
        assert self.proc is not None
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                raise ServerError(
                    f"{self.argv[0]} exited with {self.proc.returncode}: {self.log()}"
                )
            status = http_status(self.port, path)
            if status == 200:
                return time.perf_counter() - self.started
            if status is not None:
                raise ServerError(f"{self.argv[0]} answered {status} on {path}")
            time.sleep(interval)
        raise ServerError(f"{self.argv[0]} did not answer within {timeout:g} s: {self.log()}")

    def rss_kib(self) -> int | None:
        """Resident set size of the server process (Linux), KiB."""
        assert self.proc is not None
        try:
            status = Path(f"/proc/{self.proc.pid}/status").read_text()
        except OSError:
            return None
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return None

    def cpu_seconds(self) -> float | None:
        """User + system CPU time the server process has used so far (Linux)."""
        assert self.proc is not None
        try:
            stat = Path(f"/proc/{self.proc.pid}/stat").read_text()
        except OSError:
            return None
        fields = stat.rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def log(self) -> str:
        self._log.seek(0)
        text = self._log.read().decode(errors="replace").strip()
        return text[-2000:] if text else "(no output)"

    def stop(self) -> None:
        proc = self.proc
        if proc is None:
            return
        self.proc = None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                print(f"bench: {self.argv[0]} ignored SIGTERM; killing it", file=sys.stderr)
                proc.kill()
                proc.wait(timeout=STOP_TIMEOUT)
        self._log.close()

    def __enter__(self) -> Server:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
