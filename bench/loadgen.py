"""Load generators: wrk (Debian's ``wrk`` package) or the pure-Python fallback."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
from dataclasses import dataclass

from bench.procs import HERE, child_env, pinned


@dataclass(frozen=True)
class Result:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int = 0
    non2xx: int = 0
    cpu_us: float = math.nan  # server CPU time per request (user + system), µs


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(value: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value.strip())
    if match is None:
        raise ValueError(f"bench: cannot read wrk latency {value!r}")
    return float(match.group(1)) * _UNITS_MS[match.group(2)]


def parse_wrk(output: str) -> Result:
    """Read ``wrk --latency`` output."""
    rps = re.search(r"Requests/sec:\s*([\d.]+)", output)
    total = re.search(r"(\d+) requests in", output)
    if rps is None or total is None:
        raise ValueError(f"bench: unexpected wrk output:\n{output}")
    percentiles = dict(re.findall(r"^\s*(50|99)(?:\.0+)?%\s+(\S+)\s*$", output, re.MULTILINE))
    errors = 0
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    if socket_errors:
        # wrk counts the close of a keep-alive connection at the end as a read error
        # now and then; connect errors and timeouts are the real failures.
        errors = int(socket_errors.group(1)) + int(socket_errors.group(4))
    non2xx = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", output)
    return Result(
        rps=float(rps.group(1)),
        p50_ms=_ms(percentiles["50"]) if "50" in percentiles else math.nan,
        p99_ms=_ms(percentiles["99"]) if "99" in percentiles else math.nan,
        requests=int(total.group(1)),
        errors=errors,
        non2xx=int(non2xx.group(1)) if non2xx else 0,
    )


class LoadGen:
    name = "?"

    def __init__(self, python: str, cpu: int | None, connections: int) -> None:
        self.python = python
        self.cpu = cpu
        self.connections = connections

    def run(self, url: str, seconds: float) -> Result:
        raise NotImplementedError

    def count(self, url: str, requests: int) -> Result:
        """Exactly ``requests`` requests (pure Python: wrk has no request count)."""
        return self._python(url, ["--requests", str(requests), "--connections", "8"], 600)

    def _python(self, url: str, extra: list[str], timeout: float) -> Result:
        cmd = pinned(self.cpu, [self.python, str(HERE / "pyload.py"), url, *extra])
        done = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, check=True, env=child_env()
        )
        data = json.loads(done.stdout)
        return Result(
            rps=data["rps"],
            p50_ms=data["p50_ms"],
            p99_ms=data["p99_ms"],
            requests=int(data["requests"]),
            errors=int(data["errors"]),
            non2xx=int(data["non2xx"]),
        )


class Wrk(LoadGen):
    name = "wrk"

    def __init__(self, python: str, cpu: int | None, connections: int) -> None:
        super().__init__(python, cpu, connections)
        self.version = _wrk_version()

    def run(self, url: str, seconds: float) -> Result:
        duration = max(1, math.ceil(seconds))  # wrk takes whole seconds
        cmd = pinned(
            self.cpu,
            [
                "wrk",
                "-t1",
                f"-c{self.connections}",
                f"-d{duration}s",
                "--timeout",
                "5s",
                "--latency",
                url,
            ],
        )
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 30)
        if done.returncode != 0:
            raise RuntimeError(f"bench: wrk failed ({done.returncode}): {done.stderr.strip()}")
        return parse_wrk(done.stdout)


class PyLoad(LoadGen):
    name = "python (fallback)"

    def run(self, url: str, seconds: float) -> Result:
        extra = ["--duration", str(seconds), "--connections", str(self.connections)]
        return self._python(url, extra, seconds + 60)


def _wrk_version() -> str:
    done = subprocess.run(["wrk", "-v"], capture_output=True, text=True, timeout=10)
    match = re.search(r"wrk\s+\S*?(\d+\.\d+\.\d+)", done.stdout + done.stderr)
    return f"wrk {match.group(1)}" if match else "wrk"


def make(choice: str, python: str, cpu: int | None, connections: int) -> tuple[LoadGen, str]:
    """The load generator and a warning ('' if none)."""
    if choice in ("auto", "wrk") and shutil.which("wrk"):
        return Wrk(python, cpu, connections), ""
    if choice == "wrk":
        raise SystemExit("bench: wrk is not installed: apt-get install wrk (Debian/Ubuntu)")
    warning = ""
    if choice == "auto":
        warning = (
            "bench: WARNING: wrk is not installed (apt-get install wrk); using the pure-Python"
            " load generator, which is slower than the servers: ratios are squeezed towards 1"
            " and the numbers are not comparable with wrk runs"
        )
    return PyLoad(python, cpu, connections), warning
