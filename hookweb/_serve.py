"""Blocking serve: ``run_app(app, **options)`` / ``app.run(**options)``.

hookweb's own runner, not ``web.run_app``: start steps, bind, post_start,
serve until SIGINT/SIGTERM, then the mirrored stop. Exceptions are raised as
SPEC section 2 says; the CLI turns them into exit codes (:func:`exit_code`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
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
    access_log: bool = True
    log_level: str = "info"
    loop: str = "auto"
    backlog: int = 128
    target: str | None = None  # how the serving line names the app

    def check(self) -> ServeOptions:
        if (
            isinstance(self.port, bool)
            or not isinstance(self.port, int)
            or not 0 <= self.port <= 65535
        ):
            raise ValueError(f"hookweb: port must be an int from 0 to 65535, got {self.port!r}")
        if not isinstance(self.shutdown_timeout, (int, float)) or self.shutdown_timeout < 0:
            raise ValueError(
                f"hookweb: shutdown_timeout must be seconds >= 0, got {self.shutdown_timeout!r}"
            )
        check_timeout("hook_timeout", self.hook_timeout)
        if self.log_level.lower() not in LOG_LEVELS:
            raise ValueError(
                f"hookweb: log_level must be one of {', '.join(LOG_LEVELS)}, got {self.log_level!r}"
            )
        if self.loop not in LOOPS:
            raise ValueError(f"hookweb: loop must be one of {', '.join(LOOPS)}, got {self.loop!r}")
        if self.ssl_keyfile and not self.ssl_certfile:
            raise ValueError("hookweb: ssl_keyfile needs ssl_certfile too")
        return self

    def make_ssl_context(self) -> ssl.SSLContext | None:
        if self.ssl_context is not None:
            return self.ssl_context
        if not self.ssl_certfile:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.ssl_certfile, self.ssl_keyfile)
        return context

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


async def serve(app: Any, opts: ServeOptions, *, handle_signals: bool = True) -> None:
    """Run the whole lifecycle once in the running loop, until a stop signal."""
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
    asked_to_stop = forced = False

    def on_signal(signame: str) -> None:
        nonlocal asked_to_stop, forced
        if phase == "starting" and not asked_to_stop:
            log.info("hookweb: %s during start: cancelling the start and unwinding", signame)
            asked_to_stop = True
            main.cancel()
        elif phase == "serving":
            log.info(
                "hookweb: %s: stopping gracefully (press Ctrl+C again to stop at once)", signame
            )
            stop.set()
        elif not forced:
            log.warning(
                "hookweb: %s again: stopping at once, skipping the remaining stop steps", signame
            )
            forced = True
            main.cancel()

    installed: list[signal.Signals] = []
    if handle_signals:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, on_signal, sig.name)
                installed.append(sig)
            except (NotImplementedError, RuntimeError):  # pragma: no cover - not main thread
                pass
    try:
        try:
            await run.start(
                _sites(opts, ssl_context),
                shutdown_timeout=opts.shutdown_timeout,
                access_log=logging.getLogger("aiohttp.access") if opts.access_log else None,
            )
        except asyncio.CancelledError:
            if not asked_to_stop or forced:
                raise
            main.uncancel()
            log.info("hookweb: stopped before serving")
            error = run.cleanup_error()
            if error is not None:
                raise error from None
            return
        phase = "serving"
        log.info(
            "hookweb: serving %s on %s (Ctrl+C to quit)",
            opts.target or app.name,
            ", ".join(app.urls),
        )
        await stop.wait()
        phase = "stopping"
        await run.stop()
        log.info("hookweb: stopped")
    except asyncio.CancelledError:
        if not forced:
            raise
        main.uncancel()
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
    """Serve ``app`` until SIGINT or SIGTERM; blocking.

    Options: ``host`` ("127.0.0.1"), ``port`` (8080; 0 picks a free one),
    ``unix``, ``ssl_certfile``/``ssl_keyfile`` or ``ssl_context``,
    ``shutdown_timeout`` (60), ``hook_timeout`` (None), ``access_log`` (True),
    ``log_level`` ("info"), ``loop`` ("auto": uvloop when installed).

    Returns after a clean stop. A failed start raises the original exception
    (with a note naming the hook); failed stop steps raise ``CleanupError``.
    """
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
