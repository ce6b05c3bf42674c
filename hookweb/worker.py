"""gunicorn workers that run a hookweb App with its whole lifecycle (docs/deploy.md).

``gunicorn myapp:app -k hookweb.worker.GunicornWorker`` serves a ``hookweb.App``,
an ``aiohttp.web.Application`` or a factory (sync or ``async def``, no
arguments) returning either, following the contract of aiohttp's
``GunicornWebWorker``. Each worker process runs steps 1-7 of the lifecycle
once: start steps, its sockets listening (gunicorn's shared sockets),
``post_start``, serving, and the mirrored stop. The gunicorn arbiter (master)
runs none of the hooks.

- A start failure (a start step, a ``post_start`` hook, the factory) exits the
  worker with gunicorn's ``WORKER_BOOT_ERROR`` (3): the arbiter halts with exit
  status 3 ("Worker failed to boot") instead of booting workers in a loop.
- SIGTERM (the arbiter's graceful stop, and what it sends old workers on SIGHUP):
  the drain delay (``HOOKWEB_DRAIN_DELAY`` or ``--drain-delay``), then the
  graceful stop; another SIGTERM during the drain is ignored (a process-group
  kill plus the arbiter's own). SIGINT/SIGQUIT (gunicorn's quick shutdown): the
  stop without the drain (during the drain: the drain ends). Signals during the
  stop are ignored: the arbiter's ``graceful_timeout`` bounds it (then SIGKILL).
- In-flight requests get ``0.8 * (graceful_timeout - drain_delay)`` seconds; the
  rest of ``graceful_timeout`` is left for the stop hooks. ``python -m hookweb
  --workers N`` sets ``graceful_timeout`` from its own options instead.

``python -m hookweb myapp:app --workers N`` runs gunicorn's arbiter in-process
with this worker (:func:`run_workers`); it needs ``pip install 'hookweb[gunicorn]'``.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
import os
import re
import signal
import socket
import ssl
import stat
import sys
from typing import Any

from aiohttp import web
from aiohttp.web_log import AccessLogger
from gunicorn.app.base import BaseApplication  # type: ignore[import-untyped]
from gunicorn.arbiter import Arbiter  # type: ignore[import-untyped]
from gunicorn.config import AccessLogFormat  # type: ignore[import-untyped]
from gunicorn.errors import HaltServer  # type: ignore[import-untyped]
from gunicorn.workers import base  # type: ignore[import-untyped]

from ._serve import ServeOptions, StopControl, exit_code, serve, setup_logging
from .app import App
from .errors import format_error
from .loader import Loaded, TargetError

__all__ = ["GunicornUVLoopWorker", "GunicornWorker", "run_workers"]

log = logging.getLogger("hookweb")

WORKER_BOOT_ERROR = 3  # gunicorn's Arbiter.WORKER_BOOT_ERROR: the arbiter halts
#: Share of (graceful_timeout - drain_delay) that in-flight requests get under plain gunicorn.
IN_FLIGHT_SHARE = 0.8
#: With --workers: the arbiter's graceful_timeout is drain + the stop bound + this.
GRACE_MARGIN = 5.0
ENV_DRAIN_DELAY = "HOOKWEB_DRAIN_DELAY"
ENV_FORWARDED = "HOOKWEB_FORWARDED_ALLOW_IPS"
ENV_HOOK_TIMEOUT = "HOOKWEB_HOOK_TIMEOUT"


class GunicornWorker(base.Worker):  # type: ignore[misc]
    """A gunicorn worker class: ``gunicorn myapp:app -k hookweb.worker.GunicornWorker``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.exit_code = 0
        self.control = StopControl()
        self._loading = True
        self._main: asyncio.Task[None] | None = None
        self._hookweb_app: App | None = None

    # -- process set-up (after the fork) ------------------------------------------------

    def new_loop(self) -> asyncio.AbstractEventLoop:
        return asyncio.new_event_loop()

    def init_process(self) -> None:
        self.loop = self.new_loop()
        asyncio.set_event_loop(self.loop)
        super().init_process()

    def init_signals(self) -> None:
        for sig in self.SIGNALS:
            signal.signal(sig, signal.SIG_DFL)
        # The arbiter handles SIGHUP (it replaces the workers); a HUP sent to the
        # whole process group must not kill a worker in the middle of requests.
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
            self.loop.add_signal_handler(sig, self._on_signal, sig)
        self.loop.add_signal_handler(signal.SIGUSR1, self.log.reopen_files)
        self.loop.add_signal_handler(signal.SIGABRT, self._on_abort)
        self.loop.add_signal_handler(signal.SIGWINCH, lambda: None)
        signal.siginterrupt(signal.SIGTERM, False)
        signal.siginterrupt(signal.SIGUSR1, False)

    def _on_signal(self, sig: signal.Signals) -> None:
        self.alive = False
        if sig != signal.SIGTERM:
            self.cfg.worker_int(self)
        elif self.control.phase == "draining":
            # The arbiter and a process-group kill (systemd's control-group mode,
            # `timeout`) both send SIGTERM: a repeated one must not end the drain.
            log.info("hookweb: SIGTERM again during the drain (worker pid %d)", os.getpid())
            return
        self.stop(sig.name, drain=sig == signal.SIGTERM)

    def _on_abort(self) -> None:  # the arbiter's WORKER TIMEOUT
        self.alive = False
        self.cfg.worker_abort(self)
        sys.exit(1)

    def stop(self, why: str, *, drain: bool = True) -> None:
        """Stop this worker as a stop signal named ``why`` would."""
        self.alive = False
        if self._loading:  # still loading the app (a factory): nothing started yet
            if self._main is not None and not self._main.done():
                self._main.cancel()
            return
        if self.control.phase == "stopping":
            log.info(
                "hookweb: %s while stopping (worker pid %d): the stop goes on; gunicorn's"
                " graceful_timeout bounds it",
                why,
                os.getpid(),
            )
            return
        self.control.request(why, drain=drain)

    # -- the worker's life ----------------------------------------------------------

    def run(self) -> None:
        # base.Worker.init_process() set booted; the real boot (start steps,
        # post_start) is ahead: until it is done an exit is a boot failure.
        self.booted = False
        self._main = self.loop.create_task(self._life())
        try:
            self.loop.run_until_complete(self._main)
        finally:
            # A late stop signal (the arbiter's, after a process-group one) must
            # not kill the exiting worker with its default action.
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
                self.loop.remove_signal_handler(sig)
                signal.signal(sig, signal.SIG_IGN)
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()
        _report_exit(getattr(self.app, "hookweb_status_fd", None), self.age, self.exit_code)
        sys.exit(self.exit_code)

    async def _life(self) -> None:
        beat = asyncio.get_running_loop().create_task(self._heartbeat())
        try:
            try:
                app = await self._load()
            except asyncio.CancelledError:
                log.info("hookweb: worker pid %d stopped before serving", os.getpid())
                return
            except TargetError as exc:
                _report_target_error(exc)
                self.exit_code = WORKER_BOOT_ERROR
                return
            except Exception as exc:
                print(format_error(exc), file=sys.stderr, flush=True)
                self.exit_code = WORKER_BOOT_ERROR
                return
            self._hookweb_app = app
            self._loading = False
            opts, runner_kwargs = self._options()
            try:
                await serve(
                    app,
                    opts,
                    handle_signals=False,
                    control=self.control,
                    make_sites=self._sites,
                    runner_kwargs=runner_kwargs,
                    tag=f"worker pid {os.getpid()}",
                    on_serving=self._booted,
                )
            except Exception as exc:
                _report(exc)  # as the CLI does: a failed stop is summed up in one line
                code = exit_code(exc)
                # Only a failure before serving may halt the arbiter.
                self.exit_code = 1 if self.booted and code == WORKER_BOOT_ERROR else code
        finally:
            beat.cancel()

    def _booted(self) -> None:
        self.booted = True

    async def _heartbeat(self) -> None:
        """Tell the arbiter this worker is alive, through start, serving and stop."""
        interval = min(1.0, self.timeout / 2) if self.timeout else 1.0
        pid = os.getpid()
        while True:
            self.notify()
            if self.alive and self.ppid != os.getppid():
                log.info("hookweb: the gunicorn arbiter is gone: stopping worker pid %d", pid)
                self.stop("parent changed", drain=False)
            elif self.alive and self._served() > self.max_requests:
                log.info("hookweb: max requests reached: stopping worker pid %d", pid)
                self.stop("max requests", drain=False)
            await asyncio.sleep(interval)

    def _served(self) -> int:
        app = self._hookweb_app
        run = app._run if app is not None else None
        server = getattr(getattr(run, "runner", None), "server", None)
        return int(getattr(server, "requests_count", 0))

    # -- what to serve and how ---------------------------------------------------------

    def _name(self) -> str:
        opts = getattr(self.app, "hookweb_options", None)
        if isinstance(opts, ServeOptions) and opts.target:
            return opts.target
        return str(getattr(self.app, "app_uri", None) or self.cfg.proc_name)

    async def _load(self) -> App:
        obj = self.wsgi
        if isinstance(obj, Loaded):  # python -m hookweb --workers: checked by the CLI
            return await obj.app()
        return await _as_app(obj, self._name())

    def _options(self) -> tuple[ServeOptions, dict[str, Any]]:
        opts = getattr(self.app, "hookweb_options", None)
        if isinstance(opts, ServeOptions):  # python -m hookweb --workers
            return opts, {}
        setup_logging(str(self.cfg.loglevel or "info").lower())
        drain = _env_float(ENV_DRAIN_DELAY, 0.0)
        graceful = float(self.cfg.graceful_timeout)
        hook_timeout = os.environ.get(ENV_HOOK_TIMEOUT)
        opts = ServeOptions(
            shutdown_timeout=max(0.0, (graceful - drain) * IN_FLIGHT_SHARE),
            hook_timeout=float(hook_timeout) if hook_timeout else None,
            drain_delay=drain,
            forwarded_allow_ips=os.environ.get(ENV_FORWARDED) or None,
            access_log=False,
            target=self._name(),
        ).check()
        runner_kwargs: dict[str, Any] = {"keepalive_timeout": self.cfg.keepalive}
        if self.cfg.accesslog:
            runner_kwargs["access_log"] = self.log.access_log
            runner_kwargs["access_log_format"] = _access_log_format(self.cfg.access_log_format)
        return opts, runner_kwargs

    def _ssl_context(self) -> ssl.SSLContext | None:
        opts = getattr(self.app, "hookweb_options", None)
        if isinstance(opts, ServeOptions):
            return opts.make_ssl_context()
        if not self.cfg.is_ssl:
            return None
        ctx = ssl.SSLContext(self.cfg.ssl_version)
        ctx.load_cert_chain(self.cfg.certfile, self.cfg.keyfile)
        ctx.verify_mode = self.cfg.cert_reqs
        if self.cfg.ca_certs:
            ctx.load_verify_locations(self.cfg.ca_certs)
        if self.cfg.ciphers:
            ctx.set_ciphers(self.cfg.ciphers)
        return ctx

    def _sites(self, runner: web.AppRunner) -> list[web.BaseSite]:
        ctx = self._ssl_context()
        return [
            web.SockSite(runner, getattr(sock, "sock", sock), ssl_context=ctx)
            for sock in self.sockets
        ]


class GunicornUVLoopWorker(GunicornWorker):
    """The same worker on uvloop (``pip install 'hookweb[speed]'``)."""

    def new_loop(self) -> asyncio.AbstractEventLoop:
        import uvloop  # type: ignore[import-not-found, unused-ignore]

        loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
        return loop


def _env_float(name: str, default: float) -> float:
    text = os.environ.get(name)
    if not text:
        return default
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"hookweb: {name}={text!r} is not a number of seconds") from None


def _access_log_format(source: str) -> str:
    if source == AccessLogFormat.default:
        return str(AccessLogger.LOG_FORMAT)
    if re.search(r"%\([^\)]+\)", source):
        raise ValueError(
            "hookweb: gunicorn's %(name)s access log format is not supported by the aiohttp"
            " server; use aiohttp's format (https://docs.aiohttp.org/en/stable/logging.html)"
        )
    return source


async def _as_app(obj: object, name: str) -> App:
    """An App, an aiohttp Application, or a factory (sync or async) returning one."""
    if isinstance(obj, App):
        return obj
    if isinstance(obj, web.Application):
        return App._wrap(obj, name)
    if callable(obj):
        result = obj()
        if inspect.isawaitable(result):
            result = await result
        if isinstance(result, App):
            return result
        if isinstance(result, web.Application):
            return App._wrap(result, name)
        raise TypeError(
            f"hookweb: factory {name!r} returned {type(result).__name__},"
            " not a hookweb.App or an aiohttp.web.Application"
        )
    raise TypeError(
        f"hookweb: {name!r} is {type(obj).__name__}, not a hookweb.App, an"
        " aiohttp.web.Application or a factory returning one"
    )


def _report(exc: BaseException) -> None:
    from .cli import _report as report

    report(exc)


def _report_target_error(err: TargetError) -> None:
    from .cli import _report_target_error as report

    report(err)


# -- python -m hookweb --workers N ------------------------------------------------------


def _report_exit(fd: int | None, age: int, code: int) -> None:
    """Tell hookweb's arbiter (``--workers``) how this worker ended.

    One line ``"<pid> <age> <exit code>"``; gunicorn's worker age tells a reused pid apart.
    """
    if fd is None:
        return
    try:
        os.write(fd, f"{os.getpid()} {age} {code}\n".encode())
    except OSError:  # the arbiter is gone, or the pipe is full: never block an exit
        pass


class _Arbiter(Arbiter):  # type: ignore[misc]
    """gunicorn's arbiter, whose exit status also says whether the final stop was clean.

    gunicorn's own arbiter exits 0 after a SIGTERM even when a worker's stop hooks
    failed. Each worker writes its exit code to a pipe (:func:`_report_exit`); the
    workers alive when the arbiter's stop began (SIGTERM, SIGINT, SIGQUIT) must all
    report 0, else the exit status is 1, as for one process (SPEC section 3). Workers
    replaced earlier (SIGHUP) are logged by gunicorn and do not change the final status.
    """

    _halting = False
    _stopping: set[tuple[int, int]] | None = None  # (pid, age) of the workers at the stop

    def __init__(self, app: Any) -> None:
        super().__init__(app)
        self._status_read, app.hookweb_status_fd = os.pipe()
        os.set_blocking(self._status_read, False)
        os.set_blocking(app.hookweb_status_fd, False)
        self._exits: dict[tuple[int, int], int] = {}
        self._pending = b""

    def _read_exits(self) -> None:
        while True:
            try:
                chunk = os.read(self._status_read, 65536)
            except (BlockingIOError, InterruptedError):
                break
            if not chunk:
                break
            lines = (self._pending + chunk).split(b"\n")
            self._pending = lines.pop()
            for line in lines:
                fields = line.split()
                if len(fields) == 3 and all(f.lstrip(b"-").isdigit() for f in fields):
                    pid, age, code = (int(f) for f in fields)
                    self._exits[(pid, age)] = code

    def stop(self, graceful: bool = True) -> None:
        if self._stopping is None:  # the first stop: SIGQUIT stops before halt() runs
            self._stopping = {(pid, worker.age) for pid, worker in self.WORKERS.items()}
        super().stop(graceful)

    def halt(self, reason: str | None = None, exit_status: int = 0) -> None:
        self._halting = True
        try:
            super().halt(reason, exit_status)
        except SystemExit as exc:
            self._read_exits()
            stopping = self._stopping or set()
            unclean = sorted(pid for pid, age in stopping if self._exits.get((pid, age)) != 0)
            if exc.code == 0 and unclean:
                pids = ", ".join(str(p) for p in unclean)
                print(
                    f"hookweb: the stop of worker pid {pids} failed or did not finish"
                    " (see above): exit 1",
                    file=sys.stderr,
                    flush=True,
                )
                raise SystemExit(1) from None
            raise

    def handle_int(self) -> None:
        # Ctrl+C stops gracefully, like SIGTERM (hookweb's CLI contract); a second
        # Ctrl+C during the stop is gunicorn's quick shutdown.
        raise StopIteration

    def reap_workers(self) -> None:
        self._read_exits()  # also keeps the pipe from filling up over many reloads
        try:
            super().reap_workers()
        except HaltServer:
            # Two workers that failed to boot at once: gunicorn would raise the
            # second HaltServer out of halt() (a traceback and exit 1).
            if not self._halting:
                raise


class _Application(BaseApplication):  # type: ignore[misc]
    def __init__(self, loaded: Loaded, opts: ServeOptions, settings: dict[str, Any]) -> None:
        self.loaded = loaded
        self.hookweb_options = opts
        self._settings = settings
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._settings.items():
            if key in self.cfg.settings:  # control_socket_disable is gunicorn >= 24
                self.cfg.set(key, value)

    def load(self) -> Loaded:
        return self.loaded

    def run(self) -> None:
        _Arbiter(self).run()


def _listen(opts: ServeOptions) -> list[socket.socket]:
    """Bind every address before the arbiter starts (it would retry, then exit 1)."""
    scheme = "https" if opts.ssl_context or opts.ssl_certfile else "http"
    sockets: list[socket.socket] = []
    try:
        if opts.unix:
            name = f"{scheme}://unix:{opts.unix}"
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sockets.append(sock)
            _bind(sock, opts.unix, name, opts.backlog)
            return sockets
        for host in opts.hosts():
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            shown = f"[{host}]" if ":" in host else host
            name = f"{scheme}://{shown}:{opts.port}"
            sock = socket.socket(family, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            _bind(sock, (host, opts.port), name, opts.backlog)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def _bind(sock: socket.socket, address: Any, name: str, backlog: int) -> None:
    if isinstance(address, str) and os.path.exists(address):
        if stat.S_ISSOCK(os.stat(address).st_mode):  # a stale socket, as asyncio does
            os.unlink(address)
    try:
        sock.bind(address)
        sock.listen(backlog)
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise OSError(exc.errno, f"hookweb: cannot listen on {name}: {reason}") from None


def run_workers(loaded: Loaded, opts: ServeOptions, workers: int) -> int:
    """Serve with gunicorn's arbiter and ``workers`` hookweb workers; the exit status."""
    from ._serve import loop_factory

    uvloop = loop_factory(opts.loop) is not None
    try:
        sockets = _listen(opts)
    except OSError as exc:
        print(exc.strerror, file=sys.stderr, flush=True)
        return 3
    fds = []
    for sock in sockets:
        sock.set_inheritable(True)
        fds.append(sock.detach())  # gunicorn takes the descriptors over
    bound = opts.stop_bound() if hasattr(opts, "stop_bound") else opts.shutdown_timeout + 30
    settings: dict[str, Any] = {
        "bind": [f"fd://{fd}" for fd in fds],
        "workers": workers,
        "worker_class": (
            "hookweb.worker.GunicornUVLoopWorker" if uvloop else "hookweb.worker.GunicornWorker"
        ),
        "graceful_timeout": math.ceil(opts.drain_delay + bound + GRACE_MARGIN),
        "backlog": opts.backlog,
        "loglevel": opts.log_level,
        "accesslog": None,
        "proc_name": opts.target or "hookweb",
        # No control socket: it is one path per user, shared by every gunicorn.
        "control_socket_disable": True,
    }
    try:
        _Application(loaded, opts, settings).run()
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    return 0
