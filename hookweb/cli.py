"""The command line: ``python -m hookweb TARGET [options]`` (and the ``hookweb`` script).

Every option is one row of :data:`OPTIONS`; argparse, the ``HOOKWEB_<NAME>``
environment variables, the defaults (taken from :class:`ServeOptions`) and the
``--help`` text are all derived from that table. Exceptions become exit codes
only here (SPEC section 3):

- 0 clean stop (a stop signal during start included)
- 1 a stop-side failure or a crashed background task
- 2 usage: bad option, target that cannot be resolved (one line, no traceback)
- 3 the target's own code failed: import, factory, start step, bind
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import signal
import ssl
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType
from typing import Any, NoReturn

from aiohttp import web

from . import __version__
from ._serve import LOG_LEVELS, LOOPS, ServeOptions, exit_code, loop_factory, serve, setup_logging
from .app import App, _health_ready
from .errors import CleanupError, format_error, mark, one_line
from .loader import EXAMPLE, Loaded, TargetError, TargetImportError, load
from .registry import describe

__all__ = ["OPTIONS", "Option", "console_main", "format_plan", "main"]

EXIT_OK = 0
EXIT_STOP_FAILED = 1
EXIT_USAGE = 2
EXIT_APP_FAILED = 3

ENV_PREFIX = "HOOKWEB_"
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})
_SERVE_DEFAULTS: dict[str, Any] = {
    f.name: f.default
    for f in dataclasses.fields(ServeOptions)
    if f.default is not dataclasses.MISSING
}


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError(f"must be at least 1, got {value}")
    return value


@dataclass(frozen=True)
class Option:
    """One CLI option: ``--<name>``, ``HOOKWEB_<NAME>``, and (if ``serve``) a ServeOptions field.

    ``kind``: "value" takes an argument; "flag" is a switch; "toggle" is a switch
    with a ``--no-`` form.
    """

    name: str
    help: str
    kind: str = "value"
    type: Callable[[str], Any] = str
    metavar: str | None = None
    choices: tuple[str, ...] | None = None
    serve: bool = True  # maps onto the ServeOptions field of the same name
    default: Any = None  # only for options that are not ServeOptions fields
    shown_default: str | None = None  # how --help shows the default, if not str(default)

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()

    @property
    def default_value(self) -> Any:
        return _SERVE_DEFAULTS[self.name] if self.serve else self.default

    def convert(self, text: str) -> Any:
        """Turn an environment variable's text into a value (ValueError if bad)."""
        if self.kind != "value":
            lowered = text.strip().lower()
            if lowered in _TRUE:
                return True
            if lowered in _FALSE:
                return False
            raise ValueError("expected 1/0, true/false, yes/no or on/off")
        return self.parse(text)

    def parse(self, text: str) -> Any:
        """Check and convert one value (the same for a flag and a variable)."""
        if self.choices is not None and text not in self.choices:
            raise ValueError(f"expected one of {', '.join(self.choices)}, got {text!r}")
        return self.type(text)

    def argparse_type(self) -> Callable[[str], Any]:
        def convert(text: str) -> Any:
            try:
                return self.parse(text)
            except ValueError as exc:
                raise argparse.ArgumentTypeError(str(exc)) from None

        convert.__name__ = self.type.__name__  # argparse names it in "invalid int value"
        return convert


OPTIONS: tuple[Option, ...] = (
    Option(
        "host",
        "address to bind; the default is this machine only, use 0.0.0.0 (or ::) to listen on"
        " every interface",
        metavar="HOST",
    ),
    Option("port", "TCP port; 0 picks a free one (the log shows the real one)", type=int),
    Option("unix", "serve on this Unix socket path instead of TCP", metavar="PATH"),
    Option("ssl_certfile", "TLS certificate chain (PEM): serve HTTPS", metavar="FILE"),
    Option("ssl_keyfile", "TLS private key (PEM), if not in the certificate file", metavar="FILE"),
    Option(
        "shutdown_timeout",
        "seconds in-flight requests get to finish after a stop signal",
        type=float,
        metavar="SECONDS",
    ),
    Option(
        "hook_timeout",
        "timeout of every start/stop hook that sets no timeout= of its own",
        type=float,
        metavar="SECONDS",
        shown_default="no timeout",
    ),
    Option(
        "stop_timeout",
        "bound on the whole stop (hooks, background tasks, in-flight requests); past it the"
        " step running is cancelled, the rest skipped and named, exit 1",
        type=float,
        metavar="SECONDS",
        shown_default="shutdown timeout + 30",
    ),
    Option("access_log", "log every request (aiohttp's access log)", kind="toggle"),
    Option("log_level", "log level", choices=LOG_LEVELS),
    Option("loop", "event loop; auto: uvloop when installed", choices=LOOPS),
    Option("backlog", "listen backlog", type=int, metavar="N"),
    Option(
        "drain_delay",
        "after SIGTERM/SIGINT keep serving this long with the health route at 503, then stop"
        " (rolling restarts behind a load balancer)",
        type=float,
        metavar="SECONDS",
    ),
    Option(
        "forwarded_allow_ips",
        "proxies (IPs, CIDRs, '*', 'unix'; comma-separated) whose Forwarded/X-Forwarded-*"
        " headers set request.remote, .scheme and .host",
        metavar="IPS",
        shown_default="none trusted",
    ),
    Option(
        "factory",
        "TARGET is a callable (sync or async, no arguments) that returns the App",
        kind="flag",
        serve=False,
        default=False,
    ),
    Option(
        "app_dir",
        "directory to import TARGET from (the current directory is importable already)",
        serve=False,
        metavar="DIR",
    ),
    Option(
        "check",
        "import and build the app, print its lifecycle plan, exit without binding",
        kind="flag",
        serve=False,
        default=False,
    ),
    Option(
        "reload",
        "restart on .py changes under the app directory, with a full stop and start"
        " (needs: pip install 'hookweb[reload]')",
        kind="flag",
        serve=False,
        default=False,
    ),
    Option(
        "workers",
        "run N worker processes under gunicorn's arbiter, each with the whole lifecycle"
        " (needs: pip install 'hookweb[gunicorn]')",
        type=_positive_int,
        serve=False,
        metavar="N",
    ),
)


class UsageError(Exception):
    """A one-line usage error (exit 2)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"hookweb: {message} (see {self.prog} --help)")


def _prog() -> str:
    base = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return "hookweb" if base in ("hookweb", "hookweb.exe") else "python -m hookweb"


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = _Parser(
        prog=prog or _prog(),
        description="Serve a hookweb App (or an aiohttp Application) with its lifecycle hooks.",
        epilog=(
            "Every option can also be set with an environment variable HOOKWEB_<OPTION>"
            " (for example HOOKWEB_PORT=9000); the flag wins. Exit codes: 0 clean stop,"
            " 1 a stop step failed or a background task crashed, 2 usage error,"
            " 3 the app's own code failed (import, factory, start step, bind)."
        ),
        allow_abbrev=False,
        argument_default=argparse.SUPPRESS,
    )
    parser.add_argument(
        "target",
        nargs="?",
        metavar="TARGET",
        help=f"'module:attribute' ({EXAMPLE}); 'module' alone means 'module:app'",
    )
    for opt in OPTIONS:
        default = opt.default_value
        # "is", not "in (None, False)": 0.0 == False, and a default of 0 is worth showing.
        shown = ""
        if opt.kind == "value" and default is not None and default is not False:
            text = f"{default:g}" if isinstance(default, float) else str(default)
            shown = f"default: {text}; "
        if opt.kind == "toggle":
            shown = f"default: {'on' if default else 'off'}; "
        if opt.shown_default is not None:
            shown = f"default: {opt.shown_default}; "
        help_text = f"{opt.help} ({shown}env {opt.env})"
        if opt.kind == "value":
            parser.add_argument(
                opt.flag,
                dest=opt.name,
                type=opt.type if opt.choices is None else opt.argparse_type(),
                metavar=opt.metavar or ("{" + ",".join(opt.choices) + "}" if opt.choices else None),
                help=help_text,
            )
        elif opt.kind == "toggle":
            parser.add_argument(
                opt.flag, dest=opt.name, action=argparse.BooleanOptionalAction, help=help_text
            )
        else:
            parser.add_argument(opt.flag, dest=opt.name, action="store_true", help=help_text)
    parser.add_argument("--version", action="version", version=f"hookweb {__version__}")
    return parser


def resolve_options(
    namespace: argparse.Namespace, environ: os._Environ[str] | dict[str, str]
) -> dict[str, Any]:
    """Flag, else environment variable, else default -- for every row of OPTIONS."""
    values: dict[str, Any] = {}
    given = vars(namespace)
    for opt in OPTIONS:
        if opt.name in given:
            values[opt.name] = given[opt.name]
        elif opt.env in environ:
            text = environ[opt.env]
            try:
                values[opt.name] = opt.convert(text)
            except ValueError as exc:
                raise UsageError(
                    f"hookweb: {opt.env}={text!r} is not a valid {opt.flag} value: {exc}"
                ) from None
        else:
            values[opt.name] = opt.default_value
    return values


# -- --check ------------------------------------------------------------------------

_STEP_LABELS = {
    "start": "pre_start",
    "enter": "lifespan",
    "post_start": "post_start",
    "background": "background",
    "shutdown": "shutdown",
    "cleanup": "cleanup",
    "exit": "lifespan exit",
}


def _seconds(value: float) -> str:
    return f"{value:g}s"


def format_plan(app: App, target: str, hook_timeout: float | None) -> str:
    """The lifecycle plan ``--check`` prints: hooks in run order, routes, middleware."""
    plan = app._build()
    web_app = app.web_app
    default = hook_timeout if hook_timeout is not None else app.hook_timeout
    lines = [f"hookweb: lifecycle plan of {target}, in run order:"]
    steps = [(step, hook) for step, hook in plan.run_order() if hook.fn is not _health_ready]
    if not steps:
        lines.append("  (no lifecycle hooks)")
    width = max((len(describe(h.fn)) for _, h in steps), default=0)
    bound = stopping = False
    for number, (step, hook) in enumerate(steps, 1):
        if not bound and step not in ("start", "enter"):
            lines.append("      -- sockets bound --")
            bound = True
        if not stopping and step in ("shutdown", "cleanup", "exit"):
            lines.append("      -- serving until a stop signal --")
            stopping = True
        label = _STEP_LABELS.get(step, step)
        line = f"  {number:2}. {label:<13} {hook.name:<{width}}  order={hook.order}"
        if step != "background":
            if hook.timeout is not None:
                line += f" timeout={_seconds(hook.timeout)}"
            elif default is not None:
                line += f" timeout={_seconds(default)} (default)"
            else:
                line += " timeout=none"
        lines.append(line)
    methods: dict[tuple[str, str], list[str]] = {}  # (path, handler) -> methods, in order
    for route in web_app.router.routes():
        resource = route.resource
        info = resource.canonical if resource is not None else "?"
        if isinstance(resource, web.StaticResource):
            handler = f"static files in {resource.get_info().get('directory')}"
        else:
            handler = describe(route.handler)
        methods.setdefault((info, handler), []).append(route.method)
    # aiohttp's add_get also adds HEAD: one line "GET,HEAD" per route
    routes = [
        (",".join(sorted(ms, key=lambda m: (m != "GET", m))), info, handler)
        for (info, handler), ms in methods.items()
    ]
    lines.append("routes:")
    if not routes:
        lines.append("  (none)")
    mwidth = max((len(m) for m, _, _ in routes), default=0)
    pwidth = max((len(p) for _, p, _ in routes), default=0)
    for method, path, handler in routes:
        lines.append(f"  {method:<{mwidth}} {path:<{pwidth}} -> {handler}")
    lines.append("middleware (outermost first):")
    middleware = [describe(m) for m in web_app.middlewares]
    lines.extend(f"  {m}" for m in middleware) if middleware else lines.append("  (none)")
    prepare = [h.name for h in plan.response_prepare]
    if prepare:
        lines.append("response_prepare hooks:")
        lines.extend(f"  {name}" for name in prepare)
    if app.health_path is not None:
        lines.append(
            f"health: GET {app.health_path}: 503 until the post_start hooks finished, 200 while"
            " serving, 503 from the stop signal on (the drain included)"
        )
    signals = _aiohttp_signals(app)
    if signals:
        lines.append("aiohttp signal receivers (run by aiohttp, around hookweb's steps):")
        lines.extend(f"  {name:<20} {fn}" for name, fn in signals)
    return "\n".join(lines)


def _processes(workers: int | None) -> str:
    """Which process runs the steps above (``--check``, with or without --workers)."""
    if workers is None:
        return ""
    return (
        "\nprocesses:"
        f"\n  gunicorn arbiter (1 process): binds the sockets, starts and replaces {workers}"
        " worker(s); runs none of the steps above"
        f"\n  each of the {workers} workers: every step above, once per worker process"
        " (a replaced worker runs its stop steps; its successor its start steps)"
    )


def _aiohttp_signals(app: App) -> list[tuple[str, str]]:
    web_app = app.web_app
    found = []
    for name in ("on_startup", "on_shutdown", "on_cleanup", "cleanup_ctx", "on_response_prepare"):
        for receiver in getattr(web_app, name):
            where = describe(receiver)
            if where.split(":", 1)[0].split(".")[0] in ("hookweb", "aiohttp"):
                continue
            found.append((name, where))
    return found


# -- running ------------------------------------------------------------------------


@contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """Until the server installs its own handlers: SIGTERM stops like Ctrl+C."""
    try:
        previous = signal.getsignal(signal.SIGTERM)

        def handler(signum: int, frame: FrameType | None) -> None:
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, handler)
    except ValueError:  # pragma: no cover - not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _report(exc: BaseException) -> None:
    if isinstance(exc, CleanupError):
        # Each failed step was logged with its traceback as it happened: sum up.
        failed = "; ".join(one_line(e).removeprefix("hookweb: ") for e in exc.exceptions)
        n = len(exc.exceptions)
        text = f"hookweb: stopped with {n} failed stop step{'s' if n != 1 else ''}: {failed}"
    else:
        text = format_error(exc)
    print(text, file=sys.stderr, flush=True)


def _report_target_error(err: TargetError) -> int:
    if isinstance(err, TargetImportError):
        cause = err.cause
        mark(cause, err.line, brief=False)
        print(format_error(cause), file=sys.stderr, flush=True)
    else:
        print(err.line, file=sys.stderr, flush=True)
    return err.exit_code


def _ssl_context(values: dict[str, Any]) -> ssl.SSLContext | None:
    certfile, keyfile = values["ssl_certfile"], values["ssl_keyfile"]
    if not certfile:
        return None
    try:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(certfile, keyfile)
    except (OSError, ssl.SSLError) as exc:
        files = certfile if not keyfile else f"{certfile} / {keyfile}"
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise UsageError(f"hookweb: cannot load the TLS certificate {files}: {reason}") from None
    return context


def _serve_options(values: dict[str, Any], target: str) -> ServeOptions:
    fields = {opt.name: values[opt.name] for opt in OPTIONS if opt.serve}
    try:
        opts = ServeOptions(**fields, target=target).check()
    except (TypeError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    context = _ssl_context(values)
    if context is not None:
        opts = dataclasses.replace(opts, ssl_context=context)
    return opts


def _run(loaded: Loaded, opts: ServeOptions, check: bool, workers: int | None = None) -> int:
    try:
        factory = loop_factory(opts.loop)
    except RuntimeError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_USAGE
    with asyncio.Runner(loop_factory=factory) as runner:
        if check:
            app = runner.run(loaded.app())
            try:
                plan = format_plan(app, loaded.spec.name, opts.hook_timeout)
            except Exception as exc:  # building the App failed: the app's own code
                _report(exc)
                return EXIT_APP_FAILED
            print(plan + _processes(workers), flush=True)
            return EXIT_OK
        with _sigterm_interrupts():
            try:
                app = runner.run(loaded.app())
            except KeyboardInterrupt:
                print("hookweb: stopped before serving", file=sys.stderr, flush=True)
                return EXIT_OK
        try:
            runner.run(serve(app, opts))
        except Exception as exc:
            _report(exc)
            return exit_code(exc)
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI on ``argv`` (without the program name; default ``sys.argv[1:]``)."""
    args = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        try:
            namespace = parser.parse_args(args)
        except SystemExit as exc:  # --help, --version
            return exc.code if isinstance(exc.code, int) else EXIT_OK
        target: str | None = getattr(namespace, "target", None)
        values = resolve_options(namespace, os.environ)
        workers: int | None = values["workers"]
        if workers is not None and values["reload"]:
            raise UsageError(
                "hookweb: --workers and --reload cannot be combined; use --reload while"
                " developing and --workers in production"
            )
        if workers is not None and not values["check"]:
            try:
                import gunicorn  # type: ignore[import-untyped, unused-ignore]  # noqa: F401
            except ImportError:
                raise UsageError(
                    "hookweb: --workers needs gunicorn: pip install 'hookweb[gunicorn]'"
                ) from None
        if target is None:
            print(parser.format_usage().rstrip(), file=sys.stderr)
            raise UsageError(
                f"hookweb: missing TARGET, for example: {parser.prog} {EXAMPLE}"
                f" (see {parser.prog} --help)"
            )
        if values["reload"] and not values["check"]:
            from ._reload import supervise

            return supervise(args, target, values["app_dir"])
        opts = _serve_options(values, target)
        with _sigterm_interrupts():
            loaded = load(target, factory=values["factory"], app_dir=values["app_dir"])
        opts = dataclasses.replace(opts, target=loaded.spec.name)
        if not values["check"]:
            setup_logging(opts.log_level)
        if workers is not None and not values["check"]:
            from .worker import run_workers

            return run_workers(loaded, opts, workers)
        return _run(loaded, opts, values["check"], workers)
    except UsageError as exc:
        print(str(exc), file=sys.stderr, flush=True)
        return EXIT_USAGE
    except TargetError as exc:
        return _report_target_error(exc)
    except KeyboardInterrupt:
        print("hookweb: stopped before serving", file=sys.stderr, flush=True)
        return EXIT_OK


def console_main() -> None:
    raise SystemExit(main(sys.argv[1:]))
