"""The pure-Python load generator: the fallback when wrk is not installed.

A keep-alive HTTP/1.1 client loop on plain asyncio streams (one request in flight
per connection, like wrk). It is much slower than wrk, so with it the server is
rarely the bottleneck and every ratio is squeezed towards 1: use it to check that
the harness works, not to compare servers.

``python bench/pyload.py URL --duration 2 --connections 64`` or ``--requests 10000``;
prints one JSON object: requests, seconds, rps, p50_ms, p99_ms, errors, non2xx.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from urllib.parse import urlsplit


class Counter:
    def __init__(self, limit: int | None) -> None:
        self.left = limit

    def take(self) -> bool:
        if self.left is None:
            return True
        if self.left <= 0:
            return False
        self.left -= 1
        return True


async def worker(
    host: str,
    port: int,
    request: bytes,
    deadline: float,
    budget: Counter,
    latencies: list[float],
    stats: dict[str, int],
) -> None:
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError:
        stats["errors"] += 1
        return
    try:
        while time.perf_counter() < deadline and budget.take():
            start = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if length:
                await reader.readexactly(length)
            latencies.append(time.perf_counter() - start)
            if not head.startswith((b"HTTP/1.1 2", b"HTTP/1.0 2")):
                stats["non2xx"] += 1
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
        stats["errors"] += 1
    finally:
        writer.close()


async def run(
    url: str, duration: float, connections: int, requests: int | None
) -> dict[str, float]:
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or 80
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    request = f"GET {target} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
    latencies: list[float] = []
    stats = {"errors": 0, "non2xx": 0}
    budget = Counter(requests)
    start = time.perf_counter()
    deadline = start + (duration if requests is None else 600.0)
    await asyncio.gather(
        *(
            worker(host, port, request, deadline, budget, latencies, stats)
            for _ in range(connections)
        )
    )
    seconds = time.perf_counter() - start
    quantiles = (
        statistics.quantiles(latencies, n=100, method="inclusive")
        if len(latencies) > 1
        else [0.0] * 99
    )
    return {
        "requests": len(latencies),
        "seconds": seconds,
        "rps": len(latencies) / seconds if seconds else 0.0,
        "p50_ms": quantiles[49] * 1000,
        "p99_ms": quantiles[98] * 1000,
        "errors": stats["errors"],
        "non2xx": stats["non2xx"],
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("url")
    p.add_argument("--duration", type=float, default=2.0)
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--requests", type=int, default=None, help="stop after this many requests")
    args = p.parse_args(argv)
    result = asyncio.run(run(args.url, args.duration, args.connections, args.requests))
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
