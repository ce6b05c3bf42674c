"""``--reload``: a supervisor that restarts the server process when a .py file changes.

The supervisor never imports the app. It runs the real server as a child
(``python -m hookweb TARGET ...`` without ``--reload``) in its own process
group and watches the app directory with watchfiles. On a change it sends the
child SIGTERM and waits for it to exit -- the old process runs every stop hook
-- before it starts the new child, which then runs its start hooks.

SIGINT/SIGTERM to the supervisor are forwarded to the child once each, so a
second Ctrl+C still means "stop at once". Until the first reload, the
supervisor exits with the child's status (a failing start exits 3 as without
``--reload``); after a reload, a child that exits on its own is reported and
the supervisor waits for the next change.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from types import FrameType

RELOAD_HINT = "pip install 'hookweb[reload]'"
POLL_MS = 200


def _say(message: str) -> None:
    print(f"hookweb: {message}", file=sys.stderr, flush=True)


def _status(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


def child_command(args: Sequence[str]) -> list[str]:
    """The server's command line: the same arguments without ``--reload``."""
    return [sys.executable, "-m", "hookweb", *(a for a in args if a != "--reload")]


def supervise(args: Sequence[str], target: str, app_dir: str | None) -> int:
    try:
        import watchfiles
    except ImportError:
        _say(f"--reload needs the watchfiles package: {RELOAD_HINT}")
        return 2
    directory = os.path.abspath(app_dir or os.getcwd())
    command = child_command(args)
    env = {k: v for k, v in os.environ.items() if k != "HOOKWEB_RELOAD"}
    stop = threading.Event()
    current: list[subprocess.Popen[bytes] | None] = [None]

    def forward(signum: int, frame: FrameType | None) -> None:
        stop.set()
        child = current[0]
        if child is not None and child.returncode is None:
            try:
                child.send_signal(signum)
            except ProcessLookupError:  # pragma: no cover - it just exited
                pass

    def start() -> subprocess.Popen[bytes]:
        child = subprocess.Popen(command, env=env, process_group=0)
        current[0] = child
        return child

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    _say(f"watching {directory} for changes to .py files (--reload)")
    reloaded = False
    try:
        child: subprocess.Popen[bytes] | None = start()
        watcher = watchfiles.watch(
            directory,
            watch_filter=watchfiles.PythonFilter(),
            stop_event=stop,
            rust_timeout=POLL_MS,
            yield_on_timeout=True,
            raise_interrupt=False,
        )
        for changes in watcher:
            if stop.is_set():
                break
            if child is not None and child.poll() is not None:
                if not reloaded:
                    return _status(child.returncode)
                _say(
                    f"{target} exited with status {_status(child.returncode)};"
                    " waiting for a change to restart it"
                )
                child = current[0] = None
            if not changes:
                continue
            names = sorted({os.path.relpath(path, directory) for _, path in changes})
            _say(f"{', '.join(names)} changed: restarting {target}")
            if child is not None:
                child.send_signal(signal.SIGTERM)
                child.wait()
            if stop.is_set():
                break
            child = start()
            reloaded = True
        # Stopped by a signal (already forwarded): wait for the server's own stop.
        child = current[0]
        if child is None:
            return 0
        return _status(child.wait())
    finally:
        child = current[0]
        if child is not None and child.poll() is None:  # only on an unexpected error
            child.kill()
            child.wait()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
