"""hookweb: lifecycle hooks for aiohttp that run in a documented order.

Decorate plain functions; an :class:`App` turns them into a real
``aiohttp.web.Application`` and runs them around binding and serving.
See ``docs/lifecycle.md`` for the order and the failure rules.
"""

from __future__ import annotations

from typing import Any

from .app import App
from .errors import CleanupError, prune_traceback
from .registry import Registry, _defaults
from .security import security_headers

__version__ = "0.1.0"

pre_start = _defaults.pre_start
post_start = _defaults.post_start
shutdown = _defaults.shutdown
cleanup = _defaults.cleanup
lifespan = _defaults.lifespan
background = _defaults.background
response_prepare = _defaults.response_prepare
middleware = _defaults.middleware
get = _defaults.get
post = _defaults.post
put = _defaults.put
patch = _defaults.patch
delete = _defaults.delete
route = _defaults.route
static = _defaults.static


def run_app(app: Any, **options: Any) -> None:
    """Serve ``app`` until SIGINT or SIGTERM; blocking.

    Options: ``host`` ("127.0.0.1"), ``port`` (8080; 0 picks a free one),
    ``unix``, ``ssl_certfile``/``ssl_keyfile`` or ``ssl_context``,
    ``shutdown_timeout`` (60), ``stop_timeout``, ``hook_timeout`` (None),
    ``access_log`` (True), ``log_level`` ("info"), ``loop`` ("auto": uvloop when
    installed), ``drain_delay``, ``forwarded_allow_ips``.

    Returns after a clean stop. A failed start raises the original exception
    (with a note naming the hook); failed stop steps raise ``CleanupError``.
    """
    from ._serve import run_app as serve_blocking  # imported when first served

    try:
        serve_blocking(app, **options)
    except Exception as exc:
        prune_traceback(exc)  # an uncaught error shows the user's frames, not hookweb's
        raise

__all__ = [
    "App",
    "CleanupError",
    "Registry",
    "__version__",
    "background",
    "cleanup",
    "delete",
    "get",
    "lifespan",
    "middleware",
    "patch",
    "post",
    "post_start",
    "pre_start",
    "put",
    "response_prepare",
    "route",
    "run_app",
    "security_headers",
    "shutdown",
    "static",
]
