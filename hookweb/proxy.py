"""Proxy awareness: ``request.remote``, ``.scheme`` and ``.host`` from trusted proxies only.

Off by default. With ``App(forwarded_allow_ips=...)`` or ``--forwarded-allow-ips``
hookweb reads ``Forwarded`` (RFC 7239) or, when that header is absent,
``X-Forwarded-For`` / ``X-Forwarded-Proto`` / ``X-Forwarded-Host`` -- but only
when the direct peer of the connection is in the allowed list. A header sent
by any other peer is ignored, so a client cannot spoof its address.

There is no middleware: the aiohttp application's request factory is wrapped,
and only a request from a trusted peer that carries forwarding headers costs
anything (one ``request.clone(...)``). Without the option nothing is wrapped.

Several proxies in a row: the hops are read from the right (the proxy closest
to hookweb) to the left; every hop whose address is itself trusted is skipped,
and the first untrusted one is the client. ``proto`` and ``host`` come from the
same hop (for ``X-Forwarded-Proto``/``-Host`` lists: the entry at the same
position from the right, or the leftmost when the list is shorter).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web

__all__ = ["AllowedPeers", "Hop", "parse_allowed", "parse_forwarded", "resolve"]

_IP = ipaddress.IPv4Address | ipaddress.IPv6Address
_Net = ipaddress.IPv4Network | ipaddress.IPv6Network

_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
# Lenient value: RFC 7239 wants "[v6]:port" quoted, some proxies do not quote it.
_VALUE = r'"(?:[^"\\]|\\.)*"|[!#$%&\'*+.^_`|~0-9A-Za-z:\[\]-]+'
_PAIR = re.compile(rf"\s*({_TOKEN})\s*=\s*({_VALUE})\s*")
_HOST = re.compile(r"^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~%!$&'()*+;=-]+)(?::[0-9]{1,5})?$")
_SCHEMES = frozenset({"http", "https"})


@dataclass(frozen=True)
class AllowedPeers:
    """The peers whose forwarding headers are believed."""

    networks: tuple[_Net, ...] = ()
    everyone: bool = False
    unix: bool = False  # peers on a Unix socket (a local proxy)
    text: str = ""

    def __bool__(self) -> bool:
        return self.everyone or self.unix or bool(self.networks)

    def trusts(self, address: str | None) -> bool:
        if self.everyone:
            return True
        if address is None:  # no transport information
            return False
        if not address:  # a Unix socket peer has no address
            return self.unix
        ip = _ip(address)
        if ip is None:
            return False
        return any(ip in net for net in self.networks if net.version == ip.version)


def _ip(text: str) -> _IP | None:
    try:
        ip = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def parse_allowed(value: str | Iterable[str] | AllowedPeers | None) -> AllowedPeers:
    """``"127.0.0.1,10.0.0.0/8"``, a list of those, ``"*"`` (everyone) or ``"unix"``.

    Raises ``ValueError`` naming the entry that is not an address or network.
    """
    if value is None:
        return AllowedPeers()
    if isinstance(value, AllowedPeers):
        return value
    items = value.split(",") if isinstance(value, str) else list(value)
    networks: list[_Net] = []
    everyone = unix = False
    for raw in items:
        if not isinstance(raw, str):
            raise ValueError(f"hookweb: forwarded_allow_ips entries must be strings, got {raw!r}")
        item = raw.strip()
        if not item:
            continue
        if item == "*":
            everyone = True
        elif item.lower() == "unix":
            unix = True
        else:
            try:
                networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                raise ValueError(
                    f"hookweb: forwarded_allow_ips: {item!r} is not an IP address, a network"
                    " (10.0.0.0/8), '*' or 'unix'"
                ) from None
    text = ",".join(i.strip() for i in items if i.strip())
    return AllowedPeers(tuple(networks), everyone, unix, text)


@dataclass(frozen=True)
class Hop:
    """One proxy hop: who connected to it, and the scheme and host it saw."""

    for_: str | None = None
    proto: str | None = None
    host: str | None = None


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def parse_forwarded(headers: Iterable[str]) -> list[Hop] | None:
    """RFC 7239 ``Forwarded`` header values -> hops, leftmost (the client) first.

    ``None`` when a value is malformed: then no forwarding information is used.
    """
    hops: list[Hop] = []
    for header in headers:
        pos, end = 0, len(header)
        pairs: dict[str, str] = {}
        while pos < end:
            if header[pos] in ",;":  # empty element or pair
                if header[pos] == ",":
                    hops.append(_hop(pairs))
                    pairs = {}
                pos += 1
                continue
            if header[pos].isspace():
                pos += 1
                continue
            match = _PAIR.match(header, pos)
            if match is None:
                return None
            pairs.setdefault(match.group(1).lower(), _unquote(match.group(2)))
            pos = match.end()
            if pos < end and header[pos] not in ",;":
                return None
        hops.append(_hop(pairs))
    return [h for h in hops if h != Hop()]


def _hop(pairs: dict[str, str]) -> Hop:
    return Hop(pairs.get("for"), pairs.get("proto"), pairs.get("host"))


def _split(values: Sequence[str]) -> list[str]:
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def _x_forwarded(headers: Any) -> list[Hop]:
    fors = _split(headers.getall("X-Forwarded-For", ()))
    protos = _split(headers.getall("X-Forwarded-Proto", ()))
    hosts = _split(headers.getall("X-Forwarded-Host", ()))
    if not fors:
        # No client address, only scheme/host: one hop (the proxy that set them).
        if not protos and not hosts:
            return []
        return [Hop(None, protos[-1] if protos else None, hosts[-1] if hosts else None)]
    hops = []
    n = len(fors)
    for i, addr in enumerate(fors):
        from_right = n - 1 - i
        hops.append(Hop(addr, _from_right(protos, from_right), _from_right(hosts, from_right)))
    return hops


def _from_right(values: list[str], k: int) -> str | None:
    if not values:
        return None
    return values[max(len(values) - 1 - k, 0)]


def _node(text: str) -> str:
    """A ``for=`` node without its port: ``[2001:db8::1]:80`` -> ``2001:db8::1``."""
    if text.startswith("["):
        close = text.find("]")
        return text[1:close] if close > 0 else text
    if text.count(":") == 1:  # IPv4 (or a name) with a port
        return text.split(":", 1)[0]
    return text


def resolve(peer: str | None, hops: list[Hop], allowed: AllowedPeers) -> dict[str, str]:
    """``clone()`` keyword arguments (remote, scheme, host) for a request from ``peer``."""
    if not hops or not allowed.trusts(peer):
        return {}
    chosen = hops[0]
    for hop in reversed(hops):
        chosen = hop
        node = _node(hop.for_) if hop.for_ else None
        if node is None or _ip(node) is None or not allowed.trusts(node):
            break
    result: dict[str, str] = {}
    if chosen.for_:
        node = _node(chosen.for_)
        ip = _ip(node)
        if ip is not None:
            result["remote"] = str(ip)
        elif re.fullmatch(r"unknown|_[A-Za-z0-9._-]+", node):  # RFC 7239 obfuscated node
            result["remote"] = node
    if chosen.proto and chosen.proto.lower() in _SCHEMES:
        result["scheme"] = chosen.proto.lower()
    if chosen.host and _HOST.match(chosen.host):
        result["host"] = chosen.host
    return result


def _peer_of(protocol: Any) -> str | None:
    peername = getattr(protocol, "peername", None)
    if peername is None:
        transport = getattr(protocol, "transport", None)
        peername = transport.get_extra_info("peername") if transport is not None else None
    if isinstance(peername, (list, tuple)) and peername:
        return str(peername[0])
    return None if peername is None else ""


_Factory = Callable[..., web.Request]


def request_factory(original: _Factory, allowed: AllowedPeers) -> _Factory:
    """Wrap an Application's ``_make_request`` so trusted forwarding headers apply."""
    trusted: dict[str | None, bool] = {}

    def make_request(
        message: Any, payload: Any, protocol: Any, writer: Any, task: Any, *args: Any
    ) -> web.Request:
        request = original(message, payload, protocol, writer, task, *args)
        headers = message.headers
        if "Forwarded" not in headers and not any(
            name in headers for name in ("X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host")
        ):
            return request
        peer = _peer_of(protocol)
        ok = trusted.get(peer)
        if ok is None:
            ok = allowed.trusts(peer)
            if len(trusted) < 4096:
                trusted[peer] = ok
        if not ok:
            return request
        if "Forwarded" in headers:
            hops = parse_forwarded(headers.getall("Forwarded"))
            if hops is None:
                return request
        else:
            hops = _x_forwarded(headers)
        changes = resolve(peer, hops, allowed)
        if not changes:
            return request
        return request.clone(**changes)  # type: ignore[arg-type]

    make_request.hookweb_forwarded = allowed  # type: ignore[attr-defined]
    return make_request


def install(web_app: web.Application, allowed: AllowedPeers) -> None:
    """Apply ``allowed`` to ``web_app`` (an empty list removes the wrapper)."""
    if "_make_request" in vars(web_app):
        del web_app.__dict__["_make_request"]
    if allowed:
        # Set on the instance, bypassing aiohttp's debug-mode attribute warning.
        object.__setattr__(
            web_app, "_make_request", request_factory(web_app._make_request, allowed)
        )
