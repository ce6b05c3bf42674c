"""A ready ``response_prepare`` hook for common security headers.

::

    from hookweb import App, security_headers

    app = App()
    app.response_prepare(security_headers())                   # every response
    app.response_prepare(security_headers(hsts=True))          # HTTPS sites only

The hook runs for every response hookweb serves -- handler responses, errors,
404/405, static files, streams, websocket handshakes and the 400 for a request
aiohttp cannot parse -- and sets each header only if the response does not have
it yet, so a handler can still choose its own value. See docs/security.md.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from aiohttp import web

__all__ = ["HSTS_MAX_AGE", "security_headers"]

#: One year, the max-age the HSTS preload list asks for.
HSTS_MAX_AGE = 31_536_000

SecurityHook = Callable[[web.BaseRequest, web.StreamResponse], None]


def _checked(name: str, value: str) -> str:
    if not isinstance(value, str) or not value or any(c in value for c in "\r\n\0"):
        raise ValueError(
            f"hookweb: security_headers(): the value for {name} must be a non-empty string"
            f" without line breaks, got {value!r}"
        )
    return value


def security_headers(
    *,
    content_type_options: str | None = "nosniff",
    frame_options: str | None = "DENY",
    referrer_policy: str | None = "no-referrer",
    content_security_policy: str | None = None,
    cross_origin_opener_policy: str | None = "same-origin",
    permissions_policy: str | None = None,
    hsts: bool | int = False,
    hsts_include_subdomains: bool = False,
    hsts_preload: bool = False,
    extra: Mapping[str, str] | None = None,
    override: bool = False,
) -> SecurityHook:
    """A plain ``response_prepare`` hook ``(request, response)`` adding security headers.

    Defaults: ``X-Content-Type-Options: nosniff``, ``X-Frame-Options: DENY``,
    ``Referrer-Policy: no-referrer``, ``Cross-Origin-Opener-Policy: same-origin``.
    ``None`` leaves a header out. ``Content-Security-Policy`` and
    ``Permissions-Policy`` are only sent when given (a useful policy depends on
    the site; ``"default-src 'none'"`` suits a JSON API).

    ``Strict-Transport-Security`` is only sent when asked: ``hsts=True`` (one
    year) or ``hsts=<max-age seconds>``, with ``hsts_include_subdomains`` and
    ``hsts_preload``. Ask for it only when the site is served over HTTPS (here
    or by a proxy in front): browsers then refuse plain HTTP for that long.

    ``extra`` adds more headers. A header the response already has is kept,
    unless ``override=True``.
    """
    headers: list[tuple[str, str]] = []
    named = (
        ("X-Content-Type-Options", content_type_options),
        ("X-Frame-Options", frame_options),
        ("Referrer-Policy", referrer_policy),
        ("Content-Security-Policy", content_security_policy),
        ("Cross-Origin-Opener-Policy", cross_origin_opener_policy),
        ("Permissions-Policy", permissions_policy),
    )
    for name, value in named:
        if value is not None:
            headers.append((name, _checked(name, value)))
    if hsts is not False:
        if hsts is True:
            max_age = HSTS_MAX_AGE
        elif isinstance(hsts, int) and hsts >= 0:
            max_age = hsts
        else:
            raise ValueError(
                f"hookweb: security_headers(hsts=...) takes True/False or max-age seconds >= 0,"
                f" got {hsts!r}"
            )
        value = f"max-age={max_age}"
        if hsts_include_subdomains:
            value += "; includeSubDomains"
        if hsts_preload:
            value += "; preload"
        headers.append(("Strict-Transport-Security", value))
    elif hsts_include_subdomains or hsts_preload:
        raise ValueError(
            "hookweb: security_headers(): hsts_include_subdomains and hsts_preload need hsts=True"
        )
    for name, value in (extra or {}).items():
        if not isinstance(name, str) or not name or any(c in name for c in ":\r\n\0 "):
            raise ValueError(f"hookweb: security_headers(extra=...): bad header name {name!r}")
        headers.append((name, _checked(name, value)))
    pairs = tuple(headers)

    if override:

        def security_headers(request: web.BaseRequest, response: web.StreamResponse) -> None:
            set_header = response.headers.__setitem__
            for name, value in pairs:
                set_header(name, value)

    else:

        def security_headers(request: web.BaseRequest, response: web.StreamResponse) -> None:
            setdefault = response.headers.setdefault
            for name, value in pairs:
                setdefault(name, value)

    # Logs and --check name it hookweb.security:security_headers.
    security_headers.__qualname__ = "security_headers"
    security_headers.headers = dict(pairs)  # type: ignore[attr-defined]
    return security_headers
