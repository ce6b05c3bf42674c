"""In-process micro-benchmark: what each response_prepare hook costs hookweb's dispatch.

hookweb installs one aiohttp ``on_response_prepare`` receiver that runs every
hook. This times that receiver with 0, 1, 5 and 20 no-op ``async`` hooks, and the
hooks' own work (calling and awaiting the same functions in a bare loop), without
an event loop (the coroutines never suspend), so the difference is hookweb's.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from aiohttp import web

import hookweb

Receiver = Callable[[Any, Any], Awaitable[None]]


def _drive(coro: Coroutine[Any, Any, None]) -> None:
    try:
        coro.send(None)
    except StopIteration:
        return
    raise RuntimeError("bench: a hook suspended in the micro-benchmark")


def _receivers(n: int) -> tuple[list[Receiver], list[Receiver]]:
    reg = hookweb.Registry(f"micro-{n}")
    fns: list[Receiver] = []
    for _ in range(n):

        async def noop(request: web.BaseRequest, response: web.StreamResponse) -> None:
            return None

        reg.response_prepare(noop)
        fns.append(noop)
    app = hookweb.App(reg, name=f"micro-{n}")
    return list(app.web_app.on_response_prepare), fns


def _per_call(receivers: list[Receiver], loops: int, repeat: int) -> float:
    request, response = object(), object()

    async def call() -> None:
        for receiver in receivers:
            await receiver(request, response)

    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(loops):
            _drive(call())
        best = min(best, time.perf_counter() - start)
    return best / loops * 1e6


def hook_costs(
    counts: tuple[int, ...] = (0, 1, 5, 20), loops: int = 50_000, repeat: int = 5
) -> dict[int, tuple[float, float]]:
    """{n: (µs per response through hookweb's receiver, µs for the n hooks alone)}."""
    out: dict[int, tuple[float, float]] = {}
    for n in counts:
        receivers, fns = _receivers(n)
        out[n] = (_per_call(receivers, loops, repeat), _per_call(fns, loops, repeat))
    return out


def per_hook_overhead(costs: dict[int, tuple[float, float]]) -> float:
    """µs hookweb adds per extra hook beyond the hook's own work (largest n vs 0)."""
    n = max(costs)
    if n == 0:
        return float("nan")
    dispatch = costs[n][0] - costs[0][0]
    own = costs[n][1] - costs[0][1]
    return (dispatch - own) / n
