"""Start-up and footprint: import time, process start to first 200, RSS under load."""

from __future__ import annotations

import statistics
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

from bench.loadgen import LoadGen
from bench.procs import HOST, Server, child_env, pinned

IMPORTS = {
    "aiohttp.web": "import aiohttp.web",
    "hookweb": "import hookweb",
    # hookweb's own share in one interpreter: what `import hookweb` adds once aiohttp.web
    # is imported. Free of the interpreter-to-interpreter noise of aiohttp.web's own import
    # (tens of ms here), which the difference of the two rows above carries.
    "hookweb after aiohttp.web": "import aiohttp.web; import hookweb",
}


def parse_importtime(stderr: str, exclude: set[str]) -> tuple[float, set[str]]:
    """Milliseconds of the top-level imports of ``-X importtime`` not in ``exclude``.

    Returns that sum and every module name seen. A top-level line's cumulative time
    holds everything it imported first, so the sum is the cost of the statement.
    """
    total_us = 0
    seen: set[str] = set()
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        fields = line[len("import time:") :].split("|")
        if len(fields) != 3 or not fields[1].strip().isdigit():
            continue  # the header line
        name = fields[2].rstrip()
        module = name.strip()
        seen.add(module)
        top_level = name.startswith(" ") and not name.startswith("  ")
        if top_level and module not in exclude:
            total_us += int(fields[1])
    return total_us / 1000, seen


def _importtime(python: str, cpu: int | None, code: str) -> str:
    cmd = pinned(cpu, [python, "-X", "importtime", "-c", code])
    done = subprocess.run(
        cmd, capture_output=True, text=True, timeout=60, check=True, env=child_env()
    )
    return done.stderr


def import_times(python: str, cpu: int | None, repeat: int) -> dict[str, list[float]]:
    """ms per statement in fresh interpreters, interleaved, startup imports excluded."""
    _, baseline = parse_importtime(_importtime(python, cpu, "pass"), set())
    for code in IMPORTS.values():  # warm the bytecode cache
        _importtime(python, cpu, code)
    times: dict[str, list[float]] = {name: [] for name in IMPORTS}
    aiohttp_web: set[str] = set()
    for _ in range(repeat):
        for name, code in IMPORTS.items():
            exclude = baseline | aiohttp_web if name == "hookweb after aiohttp.web" else baseline
            ms, seen = parse_importtime(_importtime(python, cpu, code), exclude)
            if name == "aiohttp.web":
                aiohttp_web = seen
            times[name].append(ms)
    return times


@dataclass(frozen=True)
class StartCase:
    key: str
    label: str
    argv: tuple[str, ...]


START_CASES = (
    StartCase("aiohttp", "raw aiohttp (web.run_app)", ("aiohttp_server.py",)),
    StartCase("hookweb", "hookweb (loop=asyncio)", ("hookweb_server.py", "--loop", "asyncio")),
    StartCase("hookweb-auto", "hookweb default (loop=auto)", ("hookweb_server.py",)),
)


def start_times(
    cases: Sequence[StartCase], python: str, cpu: int | None, repeat: int
) -> dict[str, list[float]]:
    """Seconds from spawning the process to the first 200 on ``/``, interleaved."""
    times: dict[str, list[float]] = {c.key: [] for c in cases}
    for case in cases:  # warm the bytecode cache
        with Server(case.argv, python, cpu) as server:
            server.wait_ready("/")
    for _ in range(repeat):
        for case in cases:
            with Server(case.argv, python, cpu) as server:
                times[case.key].append(server.wait_ready("/", interval=0.001))
    return times


def rss_after(
    cases: Sequence[StartCase],
    python: str,
    cpu: int | None,
    load: LoadGen,
    requests: int,
    repeat: int,
) -> dict[str, list[tuple[int, int]]]:
    """(RSS when ready, RSS after ``requests`` requests) in KiB, per case, interleaved."""
    rss: dict[str, list[tuple[int, int]]] = {c.key: [] for c in cases}
    for _ in range(repeat):
        for case in cases:
            with Server(case.argv, python, cpu) as server:
                server.wait_ready("/")
                before = server.rss_kib()
                result = load.count(f"http://{HOST}:{server.port}/", requests)
                after = server.rss_kib()
                if before is None or after is None:
                    return {}
                if result.requests != requests:
                    raise RuntimeError(
                        f"bench: {case.key}: {result.requests} of {requests} requests answered"
                    )
                rss[case.key].append((before, after))
    return rss


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")
