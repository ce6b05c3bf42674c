"""One run of the lifecycle (SPEC section 2): start steps, stop steps, failures.

A :class:`Run` holds what one run entered (lifespans, background tasks, open
websockets) so that the stop side undoes exactly that, once, each step
isolated from the others.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import weakref
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, cast

from aiohttp import WSCloseCode, web

from ._server import AppRunner
from .errors import (
    CleanupError,
    HookCancelled,
    HookInterrupted,
    ResponsePrepareError,
    StopTimeoutError,
    describe_exception,
    format_error,
    mark,
    one_line,
)
from .registry import (
    BACKGROUND,
    CLEANUP,
    LIFESPAN,
    MIDDLEWARE,
    POST_START,
    PRE_START,
    RESPONSE_PREPARE,
    SHUTDOWN,
    Hook,
    sort_key,
)

if TYPE_CHECKING:
    from .app import App

log = logging.getLogger("hookweb")

_PREPARE_FAILED: Any = (
    web.RequestKey("hookweb.response_prepare_failed", bool)
    if hasattr(web, "RequestKey")
    else "hookweb.response_prepare_failed"
)
BACKGROUND_STOP_TIMEOUT = 10.0
WEBSOCKET_CLOSE_TIMEOUT = 5.0


class Plan:
    """Every hook of a built App, sorted once by ``(order, registration index)``."""

    __slots__ = (
        "ordered",
        "start",
        "post_start",
        "background",
        "shutdown",
        "cleanup",
        "response_prepare",
        "middleware",
    )

    def __init__(self, hooks: Sequence[Hook]) -> None:
        ordered = sorted(hooks, key=sort_key)
        self.ordered: tuple[Hook, ...] = tuple(ordered)

        def of(*kinds: str) -> tuple[Hook, ...]:
            return tuple(h for h in ordered if h.kind in kinds)

        self.start = of(PRE_START, LIFESPAN)
        self.post_start = of(POST_START)
        self.background = of(BACKGROUND)
        # The stop side is the exact mirror: lower order starts first, stops last.
        self.shutdown = tuple(reversed(of(SHUTDOWN)))
        self.cleanup = tuple(reversed(of(CLEANUP, LIFESPAN)))
        self.response_prepare = of(RESPONSE_PREPARE)
        self.middleware = of(MIDDLEWARE)

    def run_order(self) -> list[tuple[str, Hook]]:
        """Every step in the order a clean run executes it (for ``--check``)."""
        steps: list[tuple[str, Hook]] = []
        steps += [("start" if h.kind == PRE_START else "enter", h) for h in self.start]
        steps += [("post_start", h) for h in self.post_start]
        steps += [("background", h) for h in self.background]
        steps += [("shutdown", h) for h in self.shutdown]
        steps += [("cleanup" if h.kind == CLEANUP else "exit", h) for h in self.cleanup]
        return steps


def _summary(exc: BaseException) -> str:
    return one_line(exc).removeprefix("hookweb: ")


def _stop_label(hook: Hook) -> str:
    return f"lifespan exit {hook.name}" if hook.kind == LIFESPAN else hook.label()


def _failure_line(hook: Hook, exc: BaseException, label: str | None = None) -> str:
    return f"hookweb: {label or hook.label()} failed: {describe_exception(exc)}"


def _interrupted(label: str, exc: BaseException) -> HookInterrupted:
    """A hook's own CancelledError, SystemExit or KeyboardInterrupt, as its failure."""
    if isinstance(exc, asyncio.CancelledError):
        err: HookInterrupted = HookCancelled(f"{label} was cancelled")
        line = f"hookweb: {label} ended with CancelledError"
    else:
        err = HookInterrupted(f"{label} raised {describe_exception(exc)}")
        line = f"hookweb: {label} failed: {describe_exception(exc)}"
    err.__cause__ = exc
    mark(err, line, brief=False)
    return err


def _cancelled_by_others(task: asyncio.Task[Any] | None, baseline: int) -> bool:
    """Whether a CancelledError is a real cancellation of ``task`` (not a hook's own)."""
    return task is None or task.cancelling() > baseline


class Run:
    """The state of one run of one App."""

    def __init__(
        self,
        app: App,
        *,
        hook_timeout: float | None,
        managed: bool,
        where: str = "",
        scheme: str = "http",
    ) -> None:
        self.app = app
        self.plan: Plan = app._build()
        self.hook_timeout = hook_timeout
        self.managed = managed  # False: aiohttp's own runner drives the signals
        self.where = where
        self.scheme = scheme
        self.bound = False
        self.errors: list[Exception] = []
        self.crashed: BaseException | None = None
        self.on_crash: Callable[[], None] | None = None
        self.websockets: weakref.WeakSet[web.WebSocketResponse] = weakref.WeakSet()
        self._entered: dict[int, AsyncGenerator[Any, None]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._shutdown_done = False
        self._cleanup_done = False
        #: The start hook running now, what the stop is doing now ("" before it
        #: begins), and which stop hooks it began: named in the report when the
        #: stop (or the unwinding of a cancelled start) exceeds its bound.
        self.start_step = ""
        self.stop_step = ""
        #: A stop signal came during the start (set by the runner that handles signals):
        #: no further start step begins, even if the one running swallowed the cancel.
        self.stop_requested = False
        self._stop_begun: set[int] = set()
        self.runner: web.AppRunner

    # -- calling one hook ------------------------------------------------------

    def _timeout(self, hook: Hook) -> float | None:
        return hook.timeout if hook.timeout is not None else self.hook_timeout

    async def _bounded(self, hook: Hook, awaitable: Awaitable[Any], phase: str = "") -> Any:
        seconds = self._timeout(hook)
        if seconds is None:
            return await awaitable
        timer = asyncio.timeout(seconds)
        try:
            async with timer:
                return await awaitable
        except TimeoutError:
            if not timer.expired():
                raise
            what = f"{hook.label()}{phase}"
            err = TimeoutError(f"{what} timed out after {seconds:g} s")
            raise mark(err, f"hookweb: {what} timed out after {seconds:g} s", brief=True) from None

    async def _call(self, hook: Hook) -> None:
        result = hook.fn(self.app)
        if inspect.isawaitable(result):
            await self._bounded(hook, result)

    async def _enter(self, hook: Hook) -> None:
        gen = hook.fn(self.app)
        if not inspect.isasyncgen(gen):
            text = (
                f"lifespan hook {hook.name} returned {type(gen).__name__}, not an async"
                " generator; it must be 'async def hook(app): ... yield ...'"
            )
            raise mark(TypeError(text), f"hookweb: {text}", brief=True)
        try:
            await self._bounded(hook, anext(gen), " (before yield)")
        except StopAsyncIteration:
            text = f"lifespan hook {hook.name} returned without yielding; it must yield once"
            raise mark(RuntimeError(text), f"hookweb: {text}", brief=True) from None
        self._entered[hook.index] = cast(AsyncGenerator[Any, None], gen)

    async def _exit(self, hook: Hook, gen: AsyncGenerator[Any, None]) -> None:
        try:
            await self._bounded(hook, anext(gen), " (after yield)")
        except StopAsyncIteration:
            return
        await gen.aclose()
        text = f"lifespan hook {hook.name} yielded more than once; it must yield exactly once"
        raise mark(RuntimeError(text), f"hookweb: {text}", brief=True)

    # -- start side ----------------------------------------------------------

    async def start_steps(self) -> None:
        """pre_start hooks and lifespan entries, in one sorted sequence."""
        await self._start_side(self.plan.start)

    async def post_start_steps(self) -> None:
        await self._start_side(self.plan.post_start)

    async def _start_side(self, hooks: Sequence[Hook]) -> None:
        """Run start-side hooks in order; the first failure stops them, with a note."""
        task = asyncio.current_task()
        baseline = task.cancelling() if task is not None else 0
        for hook in hooks:
            self._check_stop_requested()
            self.start_step = hook.label()
            try:
                if hook.kind == LIFESPAN:
                    await self._enter(hook)
                else:
                    await self._call(hook)
            except asyncio.CancelledError as exc:
                if _cancelled_by_others(task, baseline):
                    log.info("hookweb: stop requested while %s was running", hook.label())
                    raise
                raise _interrupted(hook.label(), exc) from exc  # the hook's own
            except (KeyboardInterrupt, SystemExit) as exc:
                raise _interrupted(hook.label(), exc) from exc
            except BaseException as exc:
                mark(exc, _failure_line(hook, exc), brief=False)
                raise

    def _check_stop_requested(self) -> None:
        if self.stop_requested:
            raise asyncio.CancelledError("hookweb: a stop was asked for during the start")

    async def unwind(self, exc: BaseException) -> None:
        """After a failed start: run every cleanup step; note failures on ``exc``."""
        before = len(self.errors)
        await self.cleanup_steps()
        for err in self.errors[before:]:
            exc.add_note(f"hookweb: while unwinding, {_summary(err)}")

    def start_background(self) -> None:
        for hook in self.plan.background:
            task = asyncio.get_running_loop().create_task(self._supervise(hook), name=hook.name)
            self._tasks.append(task)

    async def _supervise(self, hook: Hook) -> None:
        task = asyncio.current_task()
        try:
            await hook.fn(self.app)
        except asyncio.CancelledError as exc:
            if _cancelled_by_others(task, 0):
                raise  # the stop cancelled it
            crash: Exception = _interrupted(f"background task {hook.name}", exc)
        except (KeyboardInterrupt, SystemExit) as exc:
            crash = _interrupted(f"background task {hook.name}", exc)
        except Exception as exc:
            crash = exc
        else:
            return
        mark(crash, f"hookweb: background task {hook.name} crashed: {describe_exception(crash)}",
             brief=False)
        self._fail(crash)
        if self.crashed is None:
            self.crashed = crash
            if self.on_crash is not None:
                self.on_crash()

    # -- stop side -----------------------------------------------------------

    def _fail(self, exc: Exception) -> None:
        log.error(format_error(exc))
        self.errors.append(exc)

    async def _stop_step(self, hook: Hook, step: Callable[[], Awaitable[None]]) -> None:
        """Run one stop step isolated: its failure is recorded, never propagated."""
        task = asyncio.current_task()
        baseline = task.cancelling() if task is not None else 0
        self._stop_begun.add(hook.index)
        self.stop_step = _stop_label(hook)
        label = _stop_label(hook)
        try:
            await step()
        except asyncio.CancelledError as exc:
            if _cancelled_by_others(task, baseline):
                raise  # somebody cancelled *us* (a second Ctrl+C): stop at once
            self._fail(_interrupted(hook.label(), exc))
        except (KeyboardInterrupt, SystemExit) as exc:
            self._fail(_interrupted(label, exc))
        except Exception as exc:
            mark(exc, _failure_line(hook, exc, label), brief=False)
            self._fail(exc)

    async def _stop_background(self) -> None:
        tasks = [t for t in self._tasks if not t.done()]
        self._tasks = []
        for task in tasks:
            task.cancel()
        if not tasks:
            return
        self.stop_step = "stopping background tasks"
        # Each task gets its own timeout= (else the App-wide hook_timeout, else
        # BACKGROUND_STOP_TIMEOUT) to finish after the cancellation.
        bounds = {hook.name: self._timeout(hook) for hook in self.plan.background}
        default = BACKGROUND_STOP_TIMEOUT
        await asyncio.gather(
            *(asyncio.wait((t,), timeout=bounds.get(t.get_name()) or default) for t in tasks)
        )
        for task in (t for t in tasks if not t.done()):
            err = TimeoutError(f"background task {task.get_name()} ignored cancellation")
            self._fail(
                mark(
                    err,
                    f"hookweb: background task {task.get_name()} did not stop"  # type: ignore[arg-type]
                    " after cancellation; it was left running",
                    brief=True,
                )
            )

    async def shutdown_steps(self) -> None:
        """Step 6: background tasks, shutdown hooks (reversed), websockets."""
        if self._shutdown_done:
            return
        self._shutdown_done = True
        await self._stop_background()
        if self.managed and not self.bound:
            return  # shutdown hooks run only when sockets were bound
        for hook in self.plan.shutdown:
            await self._stop_step(hook, lambda hook=hook: self._call(hook))  # type: ignore[misc]
        await self._close_websockets()
        self.stop_step = "waiting for in-flight requests"  # aiohttp does that next

    def step_now(self) -> str:
        """What the run is doing now: the stop step, else the start hook running."""
        return self.stop_step or self.start_step or "the start"

    def stop_timed_out(self, bound: float, cancelled: str) -> StopTimeoutError:
        """The error for a stop cut short at ``bound`` seconds while doing ``cancelled``."""
        skipped = ", ".join(self.skipped_steps()) or "nothing"
        line = (
            f"hookweb: the stop took longer than stop_timeout ({bound:g} s): cancelled"
            f" {cancelled}; skipped the remaining stop steps: {skipped}"
        )
        err = StopTimeoutError(line.removeprefix("hookweb: "))
        mark(err, line, brief=True)
        err._hookweb_exit = 1  # type: ignore[attr-defined]
        return err

    def skipped_steps(self) -> list[str]:
        """The stop hooks that have not begun (for the report of a cut-short stop)."""
        hooks = [*(self.plan.shutdown if self.bound else ()), *self.plan.cleanup]
        return [
            _stop_label(hook)
            for hook in hooks
            if hook.index not in self._stop_begun
            and (hook.kind != LIFESPAN or hook.index in self._entered)
        ]

    async def _close_websockets(self) -> None:
        sockets = [ws for ws in self.websockets if not ws.closed]
        if not sockets:
            return
        self.stop_step = "closing websockets"
        closing = [
            asyncio.ensure_future(ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown"))
            for ws in sockets
        ]
        _, pending = await asyncio.wait(closing, timeout=WEBSOCKET_CLOSE_TIMEOUT)
        for fut in pending:
            fut.cancel()
        for fut in closing:
            if not fut.cancelled() and fut.done() and fut.exception() is not None:
                log.debug("hookweb: closing a websocket failed", exc_info=fut.exception())

    async def cleanup_steps(self) -> None:
        """Step 7: cleanup hooks and lifespan exits, together, in reverse start order."""
        if self._cleanup_done:
            return
        self._cleanup_done = True
        await self._stop_background()
        for hook in self.plan.cleanup:
            if hook.kind == LIFESPAN:
                gen = self._entered.pop(hook.index, None)
                if gen is not None:  # exits only if it entered
                    await self._stop_step(hook, lambda hook=hook, gen=gen: self._exit(hook, gen))  # type: ignore[misc]
            else:
                await self._stop_step(hook, lambda hook=hook: self._call(hook))  # type: ignore[misc]

    # -- a whole run, driven by hookweb (app.run, the CLI, the test client) ---------

    async def start(
        self,
        make_sites: Callable[[web.AppRunner], Sequence[web.BaseSite]],
        **runner_kwargs: Any,
    ) -> None:
        """Steps 1-4. On failure everything started is unwound before raising."""
        self.app._begin_run(self)
        try:
            self.runner = AppRunner(
                self.app._web_app,
                handle_signals=False,
                websockets=self.websockets,
                **runner_kwargs,
            )
            try:
                await self.runner.setup()  # on_startup: start_steps (unwinds on failure)
            except BaseException:
                await self.runner.cleanup()
                raise
            self._check_stop_requested()
            for site in make_sites(self.runner):
                try:
                    await site.start()
                except BaseException as exc:  # a bind failure, or a stop signal meanwhile
                    if isinstance(exc, OSError):
                        reason = os.strerror(exc.errno) if exc.errno else str(exc)
                        mark(exc, f"hookweb: cannot listen on {site.name}: {reason}", brief=True)
                    await self._stop_after_failure(exc)
                    raise
            self.bound = True
            self.app.addresses = self.runner.addresses
            try:
                await self.post_start_steps()
            except BaseException as exc:
                await self._stop_after_failure(exc)
                raise
            self.start_background()
        except BaseException:
            self.app._end_run(self)
            raise

    async def _stop_after_failure(self, exc: BaseException) -> None:
        before = len(self.errors)
        try:
            await self.runner.cleanup()
        except Exception as other:  # an aiohttp-level on_cleanup receiver of the user's
            self._fail(other)
        for err in self.errors[before:]:
            exc.add_note(f"hookweb: while stopping, {_summary(err)}")

    async def stop(self) -> None:
        """Steps 6-7; raises CleanupError after every step ran, if some failed."""
        self.stop_step = self.stop_step or "stopping the listeners"
        try:
            await self.runner.cleanup()
        finally:
            self.app._end_run(self)
        error = self.cleanup_error()
        if error is not None:
            raise error

    def cleanup_error(self) -> CleanupError | None:
        if not self.errors:
            return None
        n = len(self.errors)
        err = CleanupError(f"hookweb: {n} stop step{'s' if n != 1 else ''} failed", self.errors)
        return err


def prepare_signal(
    hooks: Sequence[Hook],
) -> Callable[[web.BaseRequest, web.StreamResponse], Awaitable[None]] | None:
    """The one aiohttp ``on_response_prepare`` receiver that runs every hook.

    None without hooks: aiohttp then sends no signal at all, and a request costs
    what it costs in aiohttp. A hook that raises turns the response into a plain
    500 (see ``_server.RequestHandler``), never a dropped connection.
    """
    from ._server import may_fail

    calls = tuple((h.fn, h.is_async, h) for h in hooks)
    if not calls:
        return None

    async def on_response_prepare(request: web.BaseRequest, response: web.StreamResponse) -> None:
        for fn, is_async, hook in calls:
            try:
                if is_async:
                    await fn(request, response)
                else:
                    result = fn(request, response)
                    if result is not None and inspect.isawaitable(result):
                        await result
            except Exception as exc:
                _prepare_failed(request, hook, exc)

    may_fail.add(on_response_prepare)
    return on_response_prepare


def _prepare_failed(request: web.BaseRequest, hook: Hook, exc: Exception) -> None:
    line = _failure_line(hook, exc)
    if request.get(_PREPARE_FAILED):
        # It failed again on the 500 that replaces the first failure: send that 500.
        log.error("%s (again, while preparing the 500 that replaces a failed response)", line)
        return
    request[_PREPARE_FAILED] = True
    mark(exc, line, brief=False)
    log.error(format_error(exc))  # the one report; hookweb's handler keeps aiohttp quiet
    # Headers are not written yet; undo what preparing the failed response set up
    # on the connection's writer so the 500 goes out with its own framing.
    writer = request.writer
    for attr, value in (("chunked", False), ("length", None), ("_compress", None)):
        if hasattr(writer, attr):
            setattr(writer, attr, value)
    raise ResponsePrepareError(line.removeprefix("hookweb: ")) from exc
