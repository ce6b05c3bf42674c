"""hookweb's benchmark harness.

Starts each server pinned to one core and the load generator pinned to the other,
runs interleaved rounds (A B C ... A B C ...), and prints requests/s, p50 and p99
latency and each row's ratio to raw aiohttp measured in the same round; then
start-up and footprint against raw aiohttp, and the bars of issue 6.

    python -m bench                       # full run: 5 rounds, 5 s per server
    python -m bench --quick               # smoke run: 1 round, 1 s, two servers
    python bench/run.py --rounds 7 --chart docs/performance.png --markdown out.md
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
import importlib.util
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # python bench/run.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import inproc, loadgen, micro, startup
from bench.loadgen import LoadGen, Result
from bench.procs import HOST, Server, ServerError, can_pin, pin_self

BASELINE = "aiohttp"


@dataclass(frozen=True)
class Case:
    key: str
    label: str
    argv: tuple[str, ...]
    path: str = "/"
    baseline: str = BASELINE  # the row its ratio is taken against, same round
    requires: tuple[str, ...] = ()


CASES: tuple[Case, ...] = (
    Case("aiohttp", "raw aiohttp (web.run_app)", ("aiohttp_server.py",)),
    Case("hookweb", "hookweb", ("hookweb_server.py", "--loop", "asyncio")),
    Case(
        "aiohttp-json",
        "raw aiohttp",
        ("aiohttp_server.py",),
        path="/json",
        baseline="aiohttp-json",
    ),
    Case(
        "hookweb-json",
        "hookweb",
        ("hookweb_server.py", "--loop", "asyncio"),
        path="/json",
        baseline="aiohttp-json",
    ),
    Case(
        "aiohttp-callback",
        "raw aiohttp + 1 on_response_prepare",
        ("aiohttp_server.py", "--callback"),
    ),
    Case(
        "hookweb-hook",
        "hookweb + 1 @response_prepare",
        ("hookweb_server.py", "--loop", "asyncio", "--hook"),
    ),
    Case(
        "hookweb-1",
        "hookweb + 1 no-op hook",
        ("hookweb_server.py", "--loop", "asyncio", "--hooks", "1"),
    ),
    Case(
        "hookweb-5",
        "hookweb + 5 no-op hooks",
        ("hookweb_server.py", "--loop", "asyncio", "--hooks", "5"),
    ),
    Case(
        "hookweb-20",
        "hookweb + 20 no-op hooks",
        ("hookweb_server.py", "--loop", "asyncio", "--hooks", "20"),
    ),
    Case(
        "hookweb-middleware",
        "hookweb + 1 pass-through middleware",
        ("hookweb_server.py", "--loop", "asyncio", "--middleware"),
    ),
    Case(
        "aiohttp-uvloop",
        "raw aiohttp on uvloop",
        ("aiohttp_server.py", "--loop", "uvloop"),
        requires=("uvloop",),
    ),
    Case(
        "hookweb-speed",
        "hookweb[speed] (loop=auto: uvloop)",
        ("hookweb_server.py", "--loop", "auto"),
        requires=("uvloop",),
    ),
    Case("sanic", "Sanic (single process)", ("sanic_server.py",), requires=("sanic",)),
    Case(
        "starlette",
        "Starlette on uvicorn (httptools, uvloop)",
        ("starlette_server.py",),
        requires=("starlette", "uvicorn", "httptools", "uvloop"),
    ),
)
QUICK_CASES = ("aiohttp", "hookweb")
HOOK_SERIES = {0: "hookweb", 1: "hookweb-1", 5: "hookweb-5", 20: "hookweb-20"}


@dataclass
class Row:
    case: Case
    results: list[Result | None] = field(default_factory=list)
    ratios: list[float] = field(default_factory=list)
    cpu_ratios: list[float] = field(default_factory=list)
    note: str = ""

    def ok(self) -> list[Result]:
        return [r for r in self.results if r is not None]

    def rps(self) -> float:
        return _median([r.rps for r in self.ok()])

    def p50(self) -> float:
        return _median([r.p50_ms for r in self.ok()])

    def p99(self) -> float:
        return _median([r.p99_ms for r in self.ok()])

    def cpu_us(self) -> float:
        return _median([r.cpu_us for r in self.ok() if not math.isnan(r.cpu_us)])

    def ratio(self) -> float:
        return _median(self.ratios)

    def cpu_ratio(self) -> float:
        return _median(self.cpu_ratios)


@dataclass(frozen=True)
class Bar:
    name: str
    figure: str
    target: str
    met: bool | None  # None: not measured in this run


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


def _fmt(value: float, spec: str) -> str:
    return "-" if math.isnan(value) else format(value, spec)


def _available(modules: Sequence[str]) -> list[str]:
    return [m for m in modules if importlib.util.find_spec(m) is None]


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


# -- throughput --------------------------------------------------------------------------


def throughput(
    cases: Sequence[Case],
    load: LoadGen,
    *,
    python: str,
    server_cpu: int | None,
    rounds: int,
    seconds: float,
    warmup: float,
    say: Callable[[str], None],
) -> list[Row]:
    rows = [Row(c) for c in cases]
    for row in rows:
        missing = _available(row.case.requires)
        if missing:
            row.note = f"skipped: {', '.join(missing)} not installed"
    live = [row for row in rows if not row.note]
    for n in range(rounds if live else 0):
        say(f"round {n + 1}/{rounds}")
        this_round: dict[str, Result] = {}
        for row in live:
            result = _measure(row, load, python, server_cpu, seconds, warmup)
            row.results.append(result)
            if result is not None:
                this_round[row.case.key] = result
                say(
                    f"  {row.case.key:<20} {result.rps:>10,.0f} req/s"
                    f"  p50 {result.p50_ms:6.2f} ms  p99 {result.p99_ms:6.2f} ms"
                )
        for row in live:
            mine, base = this_round.get(row.case.key), this_round.get(row.case.baseline)
            if mine is not None and base is not None and base.rps > 0:
                row.ratios.append(mine.rps / base.rps)
                if mine.cpu_us > 0 and base.cpu_us > 0:  # NaN compares False
                    row.cpu_ratios.append(base.cpu_us / mine.cpu_us)
    return rows


def _measure(
    row: Row, load: LoadGen, python: str, cpu: int | None, seconds: float, warmup: float
) -> Result | None:
    try:
        with Server(row.case.argv, python, cpu) as server:
            server.wait_ready(row.case.path)
            url = f"http://{HOST}:{server.port}{row.case.path}"
            if warmup > 0:
                load.run(url, warmup)
            cpu_before = server.cpu_seconds()
            result = load.run(url, seconds)
            cpu_after = server.cpu_seconds()
            if cpu_before is not None and cpu_after is not None and result.requests:
                cpu_us = (cpu_after - cpu_before) / result.requests * 1e6
                result = dataclasses.replace(result, cpu_us=cpu_us)
    except (ServerError, RuntimeError, OSError) as exc:
        row.note = f"failed: {exc}"[:200]
        return None
    if result.errors or result.non2xx:
        row.note = f"{result.errors} socket errors, {result.non2xx} non-2xx in a round"
    return result


def per_round_ratios(rows: dict[str, Row], key: str, base: str, cpu: bool = False) -> list[float]:
    """Per round: req/s of ``key`` over ``base`` (``cpu``: base's CPU/request over key's)."""
    a, b = rows.get(key), rows.get(base)
    if a is None or b is None:
        return []
    out = []
    for x, y in zip(a.results, b.results, strict=False):
        if x is None or y is None:
            continue
        if cpu and x.cpu_us > 0 and y.cpu_us > 0:
            out.append(y.cpu_us / x.cpu_us)
        elif not cpu and y.rps > 0:
            out.append(x.rps / y.rps)
    return out


def hook_slopes(rows: dict[str, Row]) -> list[float]:
    """Per round: least-squares µs per request per hook over the 0/1/5/20 series."""
    series = [(n, rows[k]) for n, k in HOOK_SERIES.items() if k in rows]
    if len(series) < 2:
        return []
    slopes = []
    for i in range(len(series[0][1].results)):
        points = []
        for n, row in series:
            result = row.results[i] if i < len(row.results) else None
            if result is not None and result.rps > 0:
                points.append((float(n), 1e6 / result.rps))
        if len(points) >= 2:
            mx = statistics.fmean(x for x, _ in points)
            my = statistics.fmean(y for _, y in points)
            sxx = sum((x - mx) ** 2 for x, _ in points)
            slopes.append(sum((x - mx) * (y - my) for x, y in points) / sxx)
    return slopes


# -- report ------------------------------------------------------------------------------


def table(rows: Sequence[Row], markdown: bool = False) -> str:
    head = [
        "server",
        "path",
        "req/s",
        "p50 ms",
        "p99 ms",
        "ratio to aiohttp",
        "ratio range",
        "CPU µs/req",
        "CPU ratio",
    ]
    lines: list[list[str]] = []
    for row in rows:
        ratios = row.ratios
        spread = f"{min(ratios):.3f}-{max(ratios):.3f}" if len(ratios) > 1 else "-"
        if row.note.startswith("skipped"):
            cells = [row.case.label, row.case.path, "-", "-", "-", row.note, "-", "-", "-"]
        else:
            cells = [
                row.case.label,
                row.case.path,
                _fmt(row.rps(), ",.0f"),
                _fmt(row.p50(), ".2f"),
                _fmt(row.p99(), ".2f"),
                _fmt(row.ratio(), ".3f"),
                spread,
                _fmt(row.cpu_us(), ".1f"),
                _fmt(row.cpu_ratio(), ".3f"),
            ]
        lines.append(cells)
    if markdown:
        out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        out += ["| " + " | ".join(cells) + " |" for cells in lines]
        return "\n".join(out)
    widths = [max(len(x) for x in col) for col in zip(head, *lines, strict=True)]
    fmt = "  ".join(f"{{:<{w}}}" if i < 2 else f"{{:>{w}}}" for i, w in enumerate(widths))
    out = [fmt.format(*head), fmt.format(*("-" * w for w in widths))]
    out += [fmt.format(*cells) for cells in lines]
    return "\n".join(out)


def bars(report: dict[str, Any], rows: dict[str, Row]) -> list[Bar]:
    out: list[Bar] = []

    def ratio_bar(name: str, key: str, base: str, target: float) -> None:
        ratios = per_round_ratios(rows, key, base)
        if not ratios:
            out.append(Bar(name, "not measured", f">= {target}", None))
            return
        value = _median(ratios)
        cpu = _median(per_round_ratios(rows, key, base, cpu=True))
        figure = f"{value:.3f} (CPU {_fmt(cpu, '.3f')})"
        out.append(Bar(name, figure, f">= {target}", value >= target))

    ratio_bar("hookweb / raw aiohttp, /", "hookweb", "aiohttp", 0.97)
    ratio_bar("hookweb / raw aiohttp, /json", "hookweb-json", "aiohttp-json", 0.97)
    ratio_bar(
        "hookweb 1 hook / aiohttp 1 native callback", "hookweb-hook", "aiohttp-callback", 0.97
    )
    slopes = hook_slopes(rows)
    if slopes:
        value = _median(slopes)
        out.append(
            Bar("each extra hook, end to end (µs/request)", f"{value:.2f}", "< 1", value < 1)
        )
    overhead = report.get("micro", {}).get("per_hook_overhead_us")
    if overhead is not None:
        out.append(
            Bar(
                "each extra hook beyond its own work, in-process (µs)",
                f"{overhead:.3f}",
                "< 1",
                overhead < 1,
            )
        )
    ratio_bar("hookweb[speed] / raw aiohttp default", "hookweb-speed", "aiohttp", 1.2)
    for peer in ("sanic", "starlette"):
        ratio_bar(
            f"hookweb[speed] / {rows[peer].case.label if peer in rows else peer}",
            "hookweb-speed",
            peer,
            1.0,
        )
    st = report.get("startup", {})
    if "import_ms" in st:
        imports = st["import_ms"]
        diff = imports["hookweb"] - imports["aiohttp.web"]
        own = imports.get("hookweb after aiohttp.web", diff)
        out.append(
            Bar(
                "import hookweb - import aiohttp.web (ms)",
                f"+{own:.1f} (the two medians: {diff:+.1f})",
                "<= 15",
                own <= 15,
            )
        )
    for key in ("hookweb", "hookweb-auto"):
        if key in st.get("first_200_ms", {}):
            diff = st["first_200_ms"][key] - st["first_200_ms"]["aiohttp"]
            out.append(
                Bar(
                    f"start to first 200, {key} - aiohttp (ms)", f"{diff:+.1f}", "<= 50", diff <= 50
                )
            )
        if key in st.get("rss_after_kib", {}):
            diff_mb = (st["rss_after_kib"][key] - st["rss_after_kib"]["aiohttp"]) / 1024
            out.append(
                Bar(
                    f"RSS after load, {key} - aiohttp (MB)", f"{diff_mb:+.2f}", "<= 3", diff_mb <= 3
                )
            )
    return out


def bars_table(items: Sequence[Bar], markdown: bool = False) -> str:
    def verdict(b: Bar) -> str:
        return "not measured" if b.met is None else ("met" if b.met else "MISSED")

    if markdown:
        out = ["| bar | measured | target | |", "|---|---|---|---|"]
        out += [f"| {b.name} | {b.figure} | {b.target} | {verdict(b)} |" for b in items]
        return "\n".join(out)
    width = max((len(b.name) for b in items), default=10)
    return "\n".join(
        f"{b.name:<{width}}  {b.figure:>12}  {b.target:>7}  {verdict(b)}" for b in items
    )


def startup_tables(st: dict[str, Any], markdown: bool = False) -> str:
    rows: list[tuple[str, str, str]] = []
    for name, ms in st.get("import_ms", {}).items():
        rows.append((f"import {name} (ms, -X importtime)", f"{ms:.1f}", ""))
    labels = {c.key: c.label for c in startup.START_CASES}
    for key, ms in st.get("first_200_ms", {}).items():
        rows.append((f"start to first 200 (ms): {labels[key]}", f"{ms:.0f}", ""))
    for key, kib in st.get("rss_after_kib", {}).items():
        ready = st.get("rss_ready_kib", {}).get(key, math.nan)
        rows.append(
            (
                f"RSS (MB): {labels[key]}",
                f"{kib / 1024:.1f}",
                f"{ready / 1024:.1f} when ready",
            )
        )
    if markdown:
        out = ["| measure | median | note |", "|---|---|---|"]
        out += [f"| {a} | {b} | {c} |" for a, b, c in rows]
        return "\n".join(out)
    width = max((len(a) for a, _, _ in rows), default=10)
    return "\n".join(f"{a:<{width}}  {b:>8}  {c}" for a, b, c in rows)


def details_markdown(report: dict[str, Any]) -> str:
    out: list[str] = []
    if "micro" in report:
        out += [
            "| no-op hooks | hookweb's receiver (µs/response) | the hooks alone (µs) |",
            "|---|---|---|",
        ]
        for n, v in report["micro"]["us_per_response"].items():
            out.append(f"| {n} | {v['hookweb']:.3f} | {v['hooks_alone']:.3f} |")
        out.append("")
    if "inproc" in report:
        out += ["| request path, in-process | best µs/request | median paired difference |"]
        out += ["|---|---|---|"]
        for key, v in report["inproc"].items():
            out.append(f"| {key} | {v['best_us']:.2f} | {v['paired_diff_us']:+.2f} |")
    return "\n".join(out)


def chart(rows: Sequence[Row], path: Path, title: str) -> str:
    """A horizontal bar chart of median req/s, annotated with the ratio; '' or a note."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "chart skipped: matplotlib is not installed (pip install -e '.[bench]')"
    measured = [r for r in rows if r.ok()]
    labels = [f"{r.case.label}  {r.case.path}" for r in measured]
    values = [r.rps() for r in measured]
    lows = [r.rps() - min(x.rps for x in r.ok()) for r in measured]
    highs = [max(x.rps for x in r.ok()) - r.rps() for r in measured]
    colours = [
        "#2a7ab9"
        if r.case.key.startswith("hookweb")
        else "#999999"
        if r.case.key.startswith("aiohttp")
        else "#d98b2b"
        for r in measured
    ]
    fig, ax = plt.subplots(figsize=(10, 0.45 * len(measured) + 1.6))
    ypos = list(range(len(measured)))[::-1]
    ax.barh(ypos, values, xerr=[lows, highs], color=colours, capsize=3)
    ax.set_yticks(ypos, labels, fontsize=9)
    ax.set_xlabel("requests/s (median of rounds; whiskers: min-max)")
    ax.set_title(title, fontsize=10)
    for y, row, value in zip(ypos, measured, values, strict=True):
        ax.text(value * 1.01, y, f" {_fmt(row.ratio(), '.2f')}x", va="center", fontsize=8)
    ax.set_xlim(0, max(values) * 1.25 if values else 1)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return ""


# -- main --------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="1 round, 1 s, raw aiohttp and hookweb")
    p.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 5)")
    p.add_argument("--duration", type=float, default=None, help="seconds per server (default 5)")
    p.add_argument("--warmup", type=float, default=None, help="discarded seconds (default 1)")
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--only", default="", help="comma-separated case keys (see --list)")
    p.add_argument("--list", action="store_true", help="list the cases and exit")
    p.add_argument("--loadgen", choices=("auto", "wrk", "python"), default="auto")
    p.add_argument("--server-cpu", type=int, default=0)
    p.add_argument("--client-cpu", type=int, default=1)
    p.add_argument("--no-pin", action="store_true", help="do not pin processes to cores")
    p.add_argument("--skip-throughput", action="store_true", help="skip the req/s rounds")
    p.add_argument("--skip-startup", action="store_true", help="skip start-up and footprint")
    p.add_argument("--skip-micro", action="store_true", help="skip the in-process hook timing")
    p.add_argument("--python", default=sys.executable, help="interpreter for the servers")
    p.add_argument("--json", type=Path, help="write every measurement here")
    p.add_argument("--markdown", type=Path, help="write the tables here (for the docs)")
    p.add_argument("--chart", type=Path, help="write a PNG chart here (needs matplotlib)")
    args = p.parse_args(argv)
    quick = args.quick
    args.rounds = args.rounds or (1 if quick else 5)
    args.duration = args.duration or (1.0 if quick else 5.0)
    if args.warmup is None:
        args.warmup = 0.0 if quick else 1.0
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list:
        for case in CASES:
            print(f"{case.key:<20} {case.label} {case.path}")
        return 0

    def say(line: str) -> None:
        print(line, flush=True)

    wanted = set(args.only.split(",")) - {""} if args.only else set()
    if args.quick and not wanted:
        wanted = set(QUICK_CASES)
    unknown = wanted - {c.key for c in CASES}
    if unknown:
        raise SystemExit(f"bench: unknown case {sorted(unknown)[0]!r}; see --list")
    cases = [c for c in CASES if not wanted or c.key in wanted]
    if args.skip_throughput:
        cases = []

    server_cpu: int | None = args.server_cpu
    client_cpu: int | None = args.client_cpu
    if args.no_pin or not can_pin(args.server_cpu, args.client_cpu):
        if not args.no_pin:
            say(
                "bench: WARNING: cannot pin to CPUs"
                f" {args.server_cpu} and {args.client_cpu} (taskset missing or too few cores);"
                " server and load generator share the CPUs"
            )
        server_cpu = client_cpu = None
    pin_self(client_cpu)
    load, warning = loadgen.make(args.loadgen, args.python, client_cpu, args.connections)
    if warning:
        say(warning)

    env = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "aiohttp": _version("aiohttp"),
        "hookweb": _version("hookweb"),
        "uvloop": _version("uvloop"),
        "sanic": _version("sanic"),
        "starlette": _version("starlette"),
        "uvicorn": _version("uvicorn"),
        "loadgen": getattr(load, "version", load.name),
        "connections": args.connections,
        "rounds": args.rounds,
        "seconds": args.duration,
        "warmup": args.warmup,
        "pinned": server_cpu is not None,
        "loadavg_start": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }
    say(
        f"bench: {len(cases)} servers x {args.rounds} rounds x {args.duration:g} s;"
        f" load: {env['loadgen']} -c{args.connections}; server on CPU {server_cpu},"
        f" load generator on CPU {client_cpu}"
    )
    started = time.monotonic()
    rows = throughput(
        cases,
        load,
        python=args.python,
        server_cpu=server_cpu,
        rounds=args.rounds,
        seconds=args.duration,
        warmup=args.warmup,
        say=say,
    )
    by_key = {r.case.key: r for r in rows}
    report: dict[str, Any] = {"env": env}

    if not args.skip_micro:
        costs = micro.hook_costs(loops=5_000 if args.quick else 100_000)
        report["micro"] = {
            "us_per_response": {n: {"hookweb": a, "hooks_alone": b} for n, (a, b) in costs.items()},
            "per_hook_overhead_us": micro.per_hook_overhead(costs),
        }
        say("in-process request path")
        paths = inproc.request_costs(
            requests=500 if args.quick else 2_000, rounds=2 if args.quick else 30
        )
        report["inproc"] = {k: {"best_us": a, "paired_diff_us": b} for k, (a, b) in paths.items()}

    if not args.skip_startup:
        say("start-up and footprint")
        repeat = 1 if args.quick else 7
        requests = 1_000 if args.quick else 10_000
        imports = startup.import_times(args.python, server_cpu, repeat)
        starts = startup.start_times(startup.START_CASES, args.python, server_cpu, repeat)
        rss = startup.rss_after(
            startup.START_CASES, args.python, server_cpu, load, requests, 1 if args.quick else 3
        )
        report["startup"] = {
            "import_ms": {k: startup.median(v) for k, v in imports.items()},
            "first_200_ms": {k: startup.median(v) * 1000 for k, v in starts.items()},
            "rss_ready_kib": {k: startup.median([a for a, _ in v]) for k, v in rss.items()},
            "rss_after_kib": {k: startup.median([b for _, b in v]) for k, v in rss.items()},
            "rss_requests": requests,
            "raw": {"import_ms": imports, "first_200_s": starts, "rss_kib": rss},
        }

    env["loadavg_end"] = os.getloadavg() if hasattr(os, "getloadavg") else None
    env["wall_seconds"] = round(time.monotonic() - started, 1)
    bar_list = bars(report, by_key)

    say("")
    if rows:
        say(table(rows))
    notes = [f"{r.case.key}: {r.note}" for r in rows if r.note]
    for note in notes:
        say(f"  note: {note}")
    if "micro" in report:
        m = report["micro"]["us_per_response"]
        say("")
        say("hookweb's response_prepare receiver, in-process (µs per response):")
        for n, v in m.items():
            say(
                f"  {n:>2} no-op hooks: {v['hookweb']:.3f}"
                f"  (the hooks alone: {v['hooks_alone']:.3f})"
            )
    if "inproc" in report:
        say("")
        say("request path in-process, no sockets (µs of CPU per request):")
        for key, v in report["inproc"].items():
            say(
                f"  {key:<18} best {v['best_us']:6.2f}"
                f"  median paired difference {v['paired_diff_us']:+5.2f}"
            )
    if "startup" in report:
        say("")
        say(startup_tables(report["startup"]))
    say("")
    say(bars_table(bar_list))

    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(
            "\n\n".join(
                [
                    table(rows, markdown=True),
                    startup_tables(report.get("startup", {}), markdown=True),
                    details_markdown(report),
                    bars_table(bar_list, markdown=True),
                ]
            )
            + "\n"
        )
    if args.json:
        report["rows"] = [
            {
                "case": asdict(r.case),
                "results": [asdict(x) if x else None for x in r.results],
                "ratios": r.ratios,
                "note": r.note,
            }
            for r in rows
        ]
        report["bars"] = [asdict(b) for b in bar_list]
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2, default=str) + "\n")
    if args.chart:
        title = (
            f"Hello, World! on one core, {env['loadgen']} -c{args.connections} on the other;"
            f" median of {args.rounds} interleaved rounds"
        )
        note = chart(rows, args.chart, title)
        if note:
            say(f"bench: {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
