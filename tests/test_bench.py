"""The benchmark harness still runs: ``python -m bench --quick`` (see docs/performance.md).

Nothing here is about speed: the shared CI machine cannot hold a timing bar. The
harness is run with its pure-Python load generator so that the test needs neither
wrk nor the peers nor matplotlib.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench.loadgen import parse_wrk
from bench.startup import parse_importtime

ROOT = Path(__file__).resolve().parent.parent

WRK_OUTPUT = """\
Running 5s test @ http://127.0.0.1:40123/
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     6.59ms    1.10ms  30.12ms   90.00%
    Req/Sec     9.80k   400.00    10.50k    70.00%
  Latency Distribution
     50%    6.42ms
     75%    6.90ms
     90%    7.80ms
     99%   10.28ms
  49000 requests in 5.00s, 7.50MB read
  Socket errors: connect 0, read 3, write 0, timeout 1
  Non-2xx or 3xx responses: 2
Requests/sec:   9800.12
Transfer/sec:      1.50MB
"""


def test_wrk_output_is_read() -> None:
    result = parse_wrk(WRK_OUTPUT)
    assert result.rps == 9800.12
    assert result.requests == 49000
    assert result.p50_ms == 6.42
    assert result.p99_ms == 10.28
    assert (result.errors, result.non2xx) == (1, 2)


def test_importtime_sums_the_top_level_imports_of_the_statement() -> None:
    stderr = """\
import time: self [us] | cumulative | imported package
import time:       100 |        100 | encodings
import time:        50 |         50 |   aiohttp.helpers
import time:       300 |        350 | aiohttp
import time:       200 |        200 | aiohttp.web
"""
    ms, seen = parse_importtime(stderr, exclude={"encodings"})
    assert ms == 0.55
    assert {"aiohttp", "aiohttp.helpers", "aiohttp.web", "encodings"} <= seen


def test_quick_run_prints_the_table(tmp_path: Path) -> None:
    report = tmp_path / "bench.json"
    markdown = tmp_path / "bench.md"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--quick",
            "--loadgen",
            "python",
            "--json",
            str(report),
            "--markdown",
            str(markdown),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=55,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "raw aiohttp (web.run_app)" in out
    assert "ratio to aiohttp" in out
    assert "start to first 200" in out
    data = json.loads(report.read_text())
    rows = {row["case"]["key"]: row for row in data["rows"]}
    assert set(rows) == {"aiohttp", "hookweb"}
    for row in rows.values():
        assert row["results"][0]["requests"] > 0, row
        assert len(row["ratios"]) == 1, row
    assert rows["aiohttp"]["ratios"] == [1.0]
    assert "| hookweb | / |" in markdown.read_text()
