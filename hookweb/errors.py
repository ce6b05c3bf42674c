"""Errors hookweb raises, and how it reports them.

Every report is one line naming the hook (``module:qualname``), its kind and the
cause. When the cause is the user's own code the traceback of that code follows,
with hookweb's and asyncio's frames left out.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import traceback
from collections.abc import Sequence
from typing import Final

import aiohttp
import aiosignal

__all__ = [
    "CleanupError",
    "HookCancelled",
    "HookInterrupted",
    "ResponsePrepareError",
    "StopTimeoutError",
    "format_error",
    "one_line",
]

_HOOKWEB_DIR: Final = os.path.dirname(os.path.abspath(__file__))
# Frames of the machinery between the runner and a hook, left out of user tracebacks.
_INTERNAL_DIRS: Final = (
    *(os.path.dirname(os.path.abspath(m.__file__ or "")) + os.sep for m in (asyncio, aiohttp)),
    os.path.abspath(aiosignal.__file__ or ""),
    _HOOKWEB_DIR + os.sep,
)
_BRIEF: Final = "_hookweb_brief"
_LINE: Final = "_hookweb_line"
NOTE_PREFIX: Final = "hookweb: "


class CleanupError(ExceptionGroup[Exception]):
    """Some stop steps failed; raised after *every* stop step ran.

    ``.exceptions`` holds one error per failed step, in the order they ran; each
    carries a note naming its hook. A ``CancelledError`` escaping a stop hook is
    that hook's failure: it appears here as a :class:`HookCancelled`.
    """

    def __new__(cls, message: str, exceptions: Sequence[Exception]) -> CleanupError:
        return super().__new__(cls, message, exceptions)


class HookInterrupted(Exception):
    """A hook raised ``SystemExit``, ``KeyboardInterrupt`` or its own ``CancelledError``.

    Those are not ``Exception`` subclasses; hookweb counts them as that hook's
    failure (the original is the ``__cause__``) instead of letting them skip the
    remaining steps or pass for a stop request.
    """


class HookCancelled(HookInterrupted):
    """A hook ended with a ``CancelledError`` that nobody asked for."""


class StopTimeoutError(TimeoutError):
    """The whole stop took longer than ``stop_timeout``: the step running was
    cancelled and the remaining stop steps were skipped (both named in the message)."""


class ResponsePrepareError(Exception):
    """A ``response_prepare`` hook raised; the client gets a plain 500 instead."""


def mark(exc: BaseException, line: str, *, brief: bool) -> BaseException:
    """Attach the one-line report to ``exc`` (as a PEP 678 note) and remember it.

    ``brief``: the cause is not the user's code (a timeout, a bind error), so the
    line is all there is to say.
    """
    if getattr(exc, _LINE, None) is None:
        try:
            setattr(exc, _LINE, line)
            setattr(exc, _BRIEF, brief)
        except AttributeError:  # pragma: no cover - exotic exception types
            pass
        exc.add_note(line)
    return exc


def one_line(exc: BaseException) -> str:
    """The report line for ``exc``: hookweb's own line, else ``Type: message``."""
    line = getattr(exc, _LINE, None)
    if isinstance(line, str):
        return line
    if isinstance(exc, CleanupError):
        return exc.message
    return f"hookweb: {describe_exception(exc)}"


def describe_exception(exc: BaseException) -> str:
    text = str(exc)
    name = type(exc).__qualname__
    if type(exc).__module__ not in ("builtins", "__main__"):
        name = f"{type(exc).__module__}.{name}"
    return f"{name}: {text}" if text else name


def is_brief(exc: BaseException) -> bool:
    return bool(getattr(exc, _BRIEF, False))


def is_internal_file(filename: str) -> bool:
    # uvloop's compiled frames carry a relative name ("uvloop/loop.pyx").
    return filename.startswith("uvloop/") or os.path.abspath(filename).startswith(_INTERNAL_DIRS)


def _prune(te: traceback.TracebackException) -> None:
    te.stack = traceback.StackSummary.from_list(
        [frame for frame in te.stack if not is_internal_file(frame.filename)]
    )
    notes = getattr(te, "__notes__", None)
    if notes:
        te.__notes__ = [n for n in notes if not str(n).startswith(NOTE_PREFIX)]
    for child in (te.__cause__, te.__context__):
        if child is not None:
            _prune(child)
    if te.__context__ is not None and _no_user_frames(te.__context__):
        # An exception hookweb or aiohttp was handling when the user's code raised
        # (an HTTPNotFound being answered): not the user's, leave it out.
        te.__context__ = None


def _no_user_frames(te: traceback.TracebackException) -> bool:
    return not te.stack and all(
        _no_user_frames(child) for child in (te.__cause__, te.__context__) if child is not None
    )
    for sub in getattr(te, "exceptions", None) or ():
        _prune(sub)


def prune_traceback(exc: BaseException) -> None:
    """Drop hookweb's and asyncio's frames from ``exc``'s traceback, in place.

    A brief error (a timeout, a bind failure) loses its traceback entirely: the
    line in its note is all there is to say.
    """
    if is_brief(exc):
        exc.__traceback__ = None
        return
    kept = []
    tb = exc.__traceback__
    while tb is not None:
        if not is_internal_file(tb.tb_frame.f_code.co_filename):
            kept.append(tb)
        tb = tb.tb_next
    # Relink the kept entries; none kept (the error came from hookweb's own frames
    # only) leaves no traceback, and the caller's frames are added as it propagates.
    for current, following in itertools.pairwise(kept):
        current.tb_next = following
    if kept:
        kept[-1].tb_next = None
    exc.__traceback__ = kept[0] if kept else None


def user_traceback(exc: BaseException) -> str:
    """The traceback of ``exc`` without hookweb's and asyncio's frames."""
    te = traceback.TracebackException(type(exc), exc, exc.__traceback__, compact=True)
    _prune(te)
    return "".join(te.format()).rstrip("\n")


def format_error(exc: BaseException) -> str:
    """The full report: the line, then the user's traceback unless brief."""
    line = one_line(exc)
    if is_brief(exc):
        return line
    if isinstance(exc, CleanupError):
        parts = [line]
        for sub in exc.exceptions:
            parts.append(format_error(sub))
        return "\n".join(parts)
    return f"{line}\n{user_traceback(exc)}"
