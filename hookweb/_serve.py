"""Blocking serve: ``run_app(app, **options)`` / ``app.run(**options)``.

hookweb's own runner, not ``web.run_app``: start steps, bind, post_start,
serve until SIGINT/SIGTERM, then the mirrored stop. Exceptions are raised as
SPEC section 2 says; the CLI turns them into exit codes (:func:`exit_code`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import logging
import selectors
import signal
import ssl
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from ._lifecycle import Run
from .errors import CleanupError, mark, prune_traceback
from .registry import caller_location, check_timeout

log = logging.getLogger("hookweb")

LOG_LEVELS = ("critical", "error", "warning", "info", "debug")
LOOPS = ("auto", "asyncio", "uvloop")
#: The default bound on the whole stop is shutdown_timeout plus this margin
#: (for shutdown and cleanup hooks, background tasks and websockets).
STOP_TIMEOUT_MARGIN = 30.0


@dataclass(frozen=True)
class ServeOptions:
    """Every option of a run; the CLI, ``run_app`` and ``App.run`` share this list."""

    host: str | Sequence[str] = "127.0.0.1"
    port: int = 8080
    unix: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_context: ssl.SSLContext | None = None
    shutdown_timeout: float = 60.0
    hook_timeout: float | None = None
    stop_timeout: float | None = None  # None: shutdown_timeout + STOP_TIMEOUT_MARGIN
    access_log: bool = True
    log_level: str = "info"
    loop: str = "auto"
    backlog: int = 128
    drain_delay: float = 0.0  # seconds of serving (health 503) after a stop signal
    forwarded_allow_ips: str | Sequence[str] | None = None  # None: App(forwarded_allow_ips=)
    target: str | None = None  # how the serving line names the app

    def check(self) -> ServeOptions:
        if (
            isinstance(self.port, bool)
            or not isinstance(self.port, int)
            or not 0 <= self.port <= 65535
        ):
            raise ValueError(f"hookweb: port must be an int from 0 to 65535, got {self.port!r}")
        if (
            isinstance(self.shutdown_timeout, bool)
            or not isinstance(self.shutdown_timeout, (int, float))
            or not self.shutdown_timeout >= 0  # also refuses nan
        ):
            raise ValueError(
                "hookweb: the shutdown timeout (--shutdown-timeout, shutdown_timeout=) must be"
                f" seconds >= 0, got {self.shutdown_timeout!r}"
            )
        if not self.unix and (not self.hosts() or not all(h and h.strip() for h in self.hosts())):
            raise ValueError(
                "hookweb: the host (--host, HOOKWEB_HOST, host=) is empty; hookweb never"
                " listens on every interface unless asked: give 127.0.0.1 (the default),"
                " or 0.0.0.0 / :: for every interface"
            )
        check_timeout("the hook timeout (--hook-timeout, hook_timeout=)", self.hook_timeout)
        check_timeout("the stop timeout (--stop-timeout, stop_timeout=)", self.stop_timeout)
        if self.log_level.lower() not in LOG_LEVELS:
            raise ValueError(
                f"hookweb: log_level must be one of {', '.join(LOG_LEVELS)}, got {self.log_level!r}"
            )
        if self.loop not in LOOPS:
            raise ValueError(f"hookweb: loop must be one of {', '.join(LOOPS)}, got {self.loop!r}")
        if self.ssl_keyfile and not self.ssl_certfile:
            raise ValueError(
                "hookweb: --ssl-keyfile (ssl_keyfile=) needs --ssl-certfile (ssl_certfile=) too"
            )
        if (
            isinstance(self.drain_delay, bool)
            or not isinstance(self.drain_delay, (int, float))
            or not 0 <= self.drain_delay < float("inf")
        ):
            raise ValueError(
                f"hookweb: drain_delay must be seconds >= 0, got {self.drain_delay!r}"
            )
        if self.forwarded_allow_ips is not None:
            from .proxy import parse_allowed

            parse_allowed(self.forwarded_allow_ips)  # ValueError naming the bad entry
        return self

    def make_ssl_context(self) -> ssl.SSLContext | None:
        if self.ssl_context is not None:
            return self.ssl_context
        if not self.ssl_certfile:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.ssl_certfile, self.ssl_keyfile)
        return context

    def stop_bound(self) -> float:
        """Seconds the whole stop may take before the rest of it is skipped."""
        if self.stop_timeout is not None:
            return self.stop_timeout
        return self.shutdown_timeout + STOP_TIMEOUT_MARGIN

    def hosts(self) -> list[str]:
        return [self.host] if isinstance(self.host, str) else list(self.host)


def make_options(options: dict[str, Any]) -> ServeOptions:
    names = {f.name for f in dataclasses.fields(ServeOptions)}
    unknown = sorted(set(options) - names)
    if unknown:
        raise TypeError(
            f"hookweb: unknown run option {unknown[0]!r};"
            f" the options are: {', '.join(sorted(names))}"
        )
    return ServeOptions(**options).check()


def exit_code(exc: BaseException) -> int:
    """SPEC section 3: 1 for a stop-side failure, 3 for the app's own code failing."""
    if isinstance(exc, CleanupError) or getattr(exc, "_hookweb_exit", None) == 1:
        return 1
    return 3


def _sites(
    opts: ServeOptions, ssl_context: ssl.SSLContext | None
) -> Callable[[web.AppRunner], list[web.BaseSite]]:
    def make(runner: web.AppRunner) -> list[web.BaseSite]:
        if opts.unix:
            return [web.UnixSite(runner, opts.unix, ssl_context=ssl_context, backlog=opts.backlog)]
        return [
            web.TCPSite(runner, host, opts.port, ssl_context=ssl_context, backlog=opts.backlog)
            for host in opts.hosts()
        ]

    return make


class StopControl:
    """Ask a running :func:`serve` to stop from outside its own signal handlers.

    The gunicorn worker (``hookweb.worker``) uses it: its signals, a changed
    parent or ``max_requests`` call :meth:`request`. ``phase`` is serve()'s
    phase: idle, starting, serving, draining, stopping.
    """

    def __init__(self) -> None:
        self.phase = "idle"
        self._handler: Callable[[str, bool], None] | None = None

    def request(self, why: str, *, drain: bool = True) -> None:
        """What a stop signal named ``why`` does now (``drain``: honour drain_delay)."""
        if self._handler is not None:
            self._handler(why, drain)


#: Bounds the stop's first phase: connections waiting in the accept queue are
#: accepted, and connections accepted just before get this long to send their
#: first request, before aiohttp closes connections that have none.
ACCEPT_GRACE = 1.0
#: The same stop signal again within this many seconds counts once: `timeout` and
#: some supervisors send it to the process and to its process group at once.
REPEAT_WINDOW = 0.1
_POLL = 0.02


def _listening_fds(sites: Sequence[web.BaseSite]) -> list[int]:
    fds: list[int] = []
    for site in sites:
        server = getattr(site, "_server", None)  # aiohttp's BaseSite keeps its asyncio.Server
        fds.extend(sock.fileno() for sock in getattr(server, "sockets", None) or ())
    return fds


async def _stop_accepting(run: Run) -> None:
    """Stop accepting without dropping a connection that already reached the server.

    1. While a listening socket has connections in its accept queue, let the
       loop accept them (closing the only listening socket would reset them).
    2. Stop watching the listening sockets and yield once, so sockets the loop
       accepted in this iteration become transports while their server is still
       open (asyncio silently drops an accepted socket whose server is closed).
    3. Close the listeners, then wait until every connection that has not sent
       its first request yet (or not finished its TLS handshake) has: aiohttp's
       cleanup closes connections without a request in progress.
    All of it is bounded by ACCEPT_GRACE.
    """
    runner = getattr(run, "runner", None)
    if runner is None:
        return
    loop = asyncio.get_running_loop()
    deadline = loop.time() + ACCEPT_GRACE
    sites = list(runner.sites)
    fds = _listening_fds(sites)
    if fds:
        with selectors.DefaultSelector() as queued:
            for fd in fds:
                queued.register(fd, selectors.EVENT_READ)
            spins = 0
            while queued.select(0) and loop.time() < deadline:
                # A few loop iterations accept what is queued; if it stays queued (the
                # loop cannot accept: out of file descriptors), poll instead of spinning.
                spins += 1
                await asyncio.sleep(0 if spins <= 100 else _POLL)
    if isinstance(loop, asyncio.selector_events.BaseSelectorEventLoop):
        # uvloop makes the transport in the accept callback itself: no window there.
        for fd in fds:
            loop.remove_reader(fd)
        await asyncio.sleep(0)
    for site in sites:
        await site.stop()
    await asyncio.sleep(_POLL)  # connection_made of the last transports
    server = runner.server
    if server is None:
        return
    if getattr(server, "handshaking", None):
        # A handler whose TLS handshake failed lingers in reference cycles until the
        # garbage collector runs; it must not make every stop wait ACCEPT_GRACE.
        gc.collect()
    while loop.time() < deadline and (
        any(
            getattr(conn, "_request_count", 1) == 0 and conn.transport is not None
            for conn in server.connections
        )
        or getattr(server, "handshaking", None)  # TLS handshakes still in progress
    ):
        await asyncio.sleep(_POLL)


async def serve(
    app: Any,
    opts: ServeOptions,
    *,
    handle_signals: bool = True,
    control: StopControl | None = None,
    make_sites: Callable[[web.AppRunner], list[web.BaseSite]] | None = None,
    runner_kwargs: dict[str, Any] | None = None,
    tag: str = "Ctrl+C to quit",
    on_serving: Callable[[], None] | None = None,
) -> None:
    """Run the whole lifecycle once in the running loop, until a stop signal.

    With ``opts.drain_delay`` a first stop signal keeps serving that long with
    the health route at 503 before the stop; another signal ends the drain.
    """
    from .app import App

    if not isinstance(app, App):
        raise TypeError(f"hookweb: run_app() takes a hookweb.App, got {type(app).__name__}")
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    assert main is not None
    ssl_context = opts.make_ssl_context()
    hook_timeout = opts.hook_timeout if opts.hook_timeout is not None else app.hook_timeout
    run = Run(
        app,
        hook_timeout=hook_timeout,
        managed=True,
        where=f"a run at {caller_location()}",
        scheme="https" if ssl_context else "http",
    )
    stop = asyncio.Event()
    run.on_crash = stop.set
    phase = "starting"
    control = control if control is not None else StopControl()
    control.phase = phase
    end_drain = asyncio.Event()
    drain_for = 0.0
    asked_to_stop = forced = False
    timed_out = ""  # what the stop was doing when it exceeded its bound

    bound = opts.stop_bound()
    start_timer: asyncio.TimerHandle | None = None

    def on_stop_timeout() -> None:
        nonlocal timed_out
        if not forced and not timed_out:
            timed_out = run.step_now()
            main.cancel()

    # The Ctrl+C hints hold where this process handles the signals itself, not in a
    # gunicorn worker (its arbiter decides what a second signal does).
    to_end_drain = " (press Ctrl+C again to end the drain)" if handle_signals else ""
    to_stop_now = " (press Ctrl+C again to stop at once)" if handle_signals else ""

    def on_signal(signame: str, drain: bool = True) -> None:
        nonlocal asked_to_stop, forced, drain_for, start_timer
        if phase == "serving" and drain and opts.drain_delay > 0:
            log.info(
                "hookweb: %s: draining for %g s (health answers 503, requests are still"
                " served), then stopping gracefully%s",
                signame,
                opts.drain_delay,
                to_end_drain,
            )
            drain_for = opts.drain_delay
            stop.set()
        elif phase == "draining":
            log.info("hookweb: %s during the drain: stopping gracefully now", signame)
            end_drain.set()
        elif phase == "starting" and not asked_to_stop:
            log.info("hookweb: %s during start: cancelling the start and unwinding", signame)
            asked_to_stop = run.stop_requested = True
            start_timer = loop.call_later(bound, on_stop_timeout)  # the unwinding is a stop
            main.cancel()
        elif phase == "serving":
            log.info("hookweb: %s: stopping gracefully%s", signame, to_stop_now)
            stop.set()
        elif not forced:
            log.warning(
                "hookweb: %s again: stopping at once, skipping the remaining stop steps", signame
            )
            forced = True
            main.cancel()

    last_signal = ("", -REPEAT_WINDOW)

    def on_os_signal(signame: str) -> None:
        # One signal sent twice at once, to the process and to its group (`timeout`,
        # some supervisors), is one request to stop, not a second Ctrl+C.
        nonlocal last_signal
        now = loop.time()
        if last_signal[0] == signame and now - last_signal[1] < REPEAT_WINDOW:
            log.debug("hookweb: %s repeated within %g s: counted once", signame, REPEAT_WINDOW)
            return
        last_signal = (signame, now)
        on_signal(signame)

    installed: list[signal.Signals] = []
    if handle_signals:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, on_os_signal, sig.name)
                installed.append(sig)
            except (NotImplementedError, RuntimeError):  # pragma: no cover - not main thread
                pass
    control._handler = on_signal
    trusted = app._forwarded
    if opts.forwarded_allow_ips is not None:
        app._trust_forwarded(opts.forwarded_allow_ips)
    try:
        try:
            await run.start(
                make_sites or _sites(opts, ssl_context),
                **{
                    "shutdown_timeout": opts.shutdown_timeout,
                    "access_log": (
                        logging.getLogger("aiohttp.access") if opts.access_log else None
                    ),
                    **(runner_kwargs or {}),
                },
            )
        except asyncio.CancelledError:
            if not asked_to_stop or forced or timed_out:
                raise
            main.uncancel()
            log.info("hookweb: stopped before serving")
            error = run.cleanup_error()
            if error is not None:
                raise error from None
            return
        if start_timer is not None:  # a stop was asked for, but the start finished
            start_timer.cancel()  # (a start hook swallowed the cancel): stop now
            if main.cancelling():
                main.uncancel()
            log.info("hookweb: the start finished although a stop was asked for: stopping")
            stop.set()
        phase = control.phase = "serving"
        log.info(
            "hookweb: serving %s on %s (%s)",
            opts.target or app.name,
            ", ".join(app.urls),
            tag,
        )
        if on_serving is not None:
            on_serving()
        await stop.wait()
        app._drain()  # the health route answers 503 from here on
        if drain_for > 0:
            phase = control.phase = "draining"
            try:
                async with asyncio.timeout(drain_for):
                    await end_drain.wait()
            except TimeoutError:
                pass
        phase = control.phase = "stopping"
        await _stop_accepting(run)
        timer = loop.call_later(bound, on_stop_timeout)
        try:
            await run.stop()
        except CleanupError:
            if not timed_out or forced:
                raise
        finally:
            timer.cancel()
        if timed_out and not forced:
            # The step the bound cancelled swallowed the cancel and the stop went on:
            # it still took longer than its bound.
            main.uncancel()
            raise run.stop_timed_out(bound, timed_out)
        log.info("hookweb: stopped")
    except asyncio.CancelledError:
        if not forced and not timed_out:
            raise
        main.uncancel()
        if timed_out and not forced:
            raise run.stop_timed_out(bound, timed_out) from None
        err = RuntimeError(
            "stopped at once by a second signal; the remaining stop steps were skipped"
        )
        mark(
            err,
            "hookweb: stopped at once by a second signal; the remaining stop steps were skipped",
            brief=True,
        )
        err._hookweb_exit = 1  # type: ignore[attr-defined]
        raise err from None
    finally:
        if start_timer is not None:
            start_timer.cancel()
        control.phase = "idle"
        control._handler = None
        app._trust_forwarded(trusted)
        for sig in installed:
            loop.remove_signal_handler(sig)
    if run.crashed is not None:  # pragma: no cover - stop() raised CleanupError already
        raise run.crashed


def setup_logging(level: str) -> None:
    """Log hookweb's lines and aiohttp's access log to stderr, unless configured."""
    numeric = getattr(logging, level.upper())
    if not logging.getLogger().handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logging.getLogger().addHandler(handler)
    for name in ("hookweb", "aiohttp"):
        logging.getLogger(name).setLevel(numeric)


def loop_factory(choice: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    if choice == "asyncio":
        return None
    try:
        import uvloop  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        if choice == "uvloop":
            raise RuntimeError(
                "hookweb: --loop uvloop needs uvloop: pip install 'hookweb[speed]'"
            ) from None
        return None
    return uvloop.new_event_loop  # type: ignore[no-any-return, unused-ignore]


def run_app(app: Any, **options: Any) -> None:
    """The body of :func:`hookweb.run_app` (documented there) and ``App.run``."""
    from .app import App

    if isinstance(app, web.Application):
        app = App._wrap(app, "aiohttp application")
    opts = make_options(options)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise RuntimeError(
            "hookweb: run_app()/app.run() blocks and starts its own event loop, but one is"
            " already running here; in async code use 'async with app.test_client()'"
        )
    setup_logging(opts.log_level)
    try:
        with asyncio.Runner(loop_factory=loop_factory(opts.loop)) as runner:
            runner.run(serve(app, opts))
    except Exception as exc:
        # An uncaught error in a script shows the user's frames, not the runner's.
        prune_traceback(exc)
        raise
