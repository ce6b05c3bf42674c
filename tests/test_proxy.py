"""Issue 7: proxy awareness. Forwarded / X-Forwarded-* count only from allowed peers.

The test client connects from 127.0.0.1, so ``forwarded_allow_ips="127.0.0.1"``
makes it a trusted proxy and ``"10.0.0.0/8"`` an untrusted peer.
"""

from __future__ import annotations

import http.client
import json
import re
import signal
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from hookweb import App, Registry
from hookweb.proxy import Hop, parse_allowed, parse_forwarded, resolve
from tests.test_worker import Server, clean_env, hookweb_argv

APPS = Path(__file__).parent / "apps"
SERVING = re.compile(r"hookweb: serving \S+ on http://127\.0\.0\.1:(\d+)")


def whoami_app(**options: Any) -> App:
    reg = Registry()

    @reg.get("/whoami")
    async def whoami(request: web.Request) -> web.Response:
        return web.json_response(
            {"remote": request.remote, "scheme": request.scheme, "host": request.host}
        )

    return App(reg, **options)


SPOOF = {
    "X-Forwarded-For": "203.0.113.9",
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": "spoofed.example",
}


async def whoami(app: App, headers: dict[str, str]) -> dict[str, Any]:
    async with app.test_client() as client:
        response = await client.get("/whoami", headers=headers)
        assert response.status == 200
        result: dict[str, Any] = await response.json()
        result["port"] = client.port
        return result


async def test_default_trusts_nobody_spoofed_headers_are_ignored() -> None:
    got = await whoami(whoami_app(), SPOOF)
    assert got["remote"] == "127.0.0.1"
    assert got["scheme"] == "http"
    assert got["host"] == f"127.0.0.1:{got['port']}"


async def test_spoofed_header_from_an_untrusted_peer_is_ignored() -> None:
    got = await whoami(whoami_app(forwarded_allow_ips="10.0.0.0/8,192.168.1.1"), SPOOF)
    assert (got["remote"], got["scheme"]) == ("127.0.0.1", "http")
    assert got["host"] == f"127.0.0.1:{got['port']}"
    got = await whoami(
        whoami_app(forwarded_allow_ips=["10.0.0.1"]),
        {"Forwarded": 'for=203.0.113.9;proto=https;host="spoofed.example"'},
    )
    assert (got["remote"], got["scheme"]) == ("127.0.0.1", "http")


async def test_x_forwarded_headers_from_a_trusted_peer() -> None:
    got = await whoami(whoami_app(forwarded_allow_ips="127.0.0.1"), SPOOF)
    assert got == {**got, "remote": "203.0.113.9", "scheme": "https", "host": "spoofed.example"}


async def test_forwarded_header_rfc7239_wins_over_x_forwarded() -> None:
    got = await whoami(
        whoami_app(forwarded_allow_ips="127.0.0.0/8"),
        {
            "Forwarded": 'for="[2001:db8:cafe::17]:4711";proto=https;host=api.example:8443',
            "X-Forwarded-For": "198.51.100.1",
        },
    )
    assert (got["remote"], got["scheme"], got["host"]) == (
        "2001:db8:cafe::17",
        "https",
        "api.example:8443",
    )


async def test_star_trusts_every_peer_and_chains_skip_trusted_hops() -> None:
    # client -> 10.0.0.5 (an inner proxy, trusted) -> 127.0.0.1 (trusted) -> hookweb
    headers = {"X-Forwarded-For": "198.51.100.7, 10.0.0.5", "X-Forwarded-Proto": "https"}
    got = await whoami(whoami_app(forwarded_allow_ips="127.0.0.1,10.0.0.0/8"), headers)
    assert (got["remote"], got["scheme"]) == ("198.51.100.7", "https")
    # A client that prepends its own X-Forwarded-For entry does not get past the first
    # untrusted hop: the spoofed leftmost value is never reached.
    headers = {"X-Forwarded-For": "1.2.3.4, 198.51.100.7"}
    got = await whoami(whoami_app(forwarded_allow_ips="127.0.0.1"), headers)
    assert got["remote"] == "198.51.100.7"
    got = await whoami(whoami_app(forwarded_allow_ips="*"), {"X-Forwarded-For": "192.0.2.1"})
    assert got["remote"] == "192.0.2.1"


async def test_bad_values_are_ignored_not_trusted_blindly() -> None:
    headers = {
        "X-Forwarded-For": "not-an-ip",
        "X-Forwarded-Proto": "javascript",
        "X-Forwarded-Host": "bad host/with path",
    }
    got = await whoami(whoami_app(forwarded_allow_ips="127.0.0.1"), headers)
    assert (got["remote"], got["scheme"]) == ("127.0.0.1", "http")
    assert got["host"] == f"127.0.0.1:{got['port']}"
    got = await whoami(whoami_app(forwarded_allow_ips="127.0.0.1"), {"Forwarded": "for"})
    assert got["remote"] == "127.0.0.1"  # a malformed Forwarded header is ignored whole


def test_allowed_list_parsing_and_errors() -> None:
    allowed = parse_allowed("127.0.0.1, 10.0.0.0/8 ,::1,unix")
    assert allowed.trusts("10.1.2.3") and allowed.trusts("::1") and allowed.trusts("")
    assert allowed.trusts("::ffff:127.0.0.1")  # IPv4-mapped, from a dual-stack socket
    assert not allowed.trusts("11.0.0.1") and not allowed.trusts(None)
    assert not parse_allowed(None) and not parse_allowed("")
    with pytest.raises(ValueError, match=r"'10\.0\.0\.0/33' is not an IP address, a network"):
        parse_allowed("10.0.0.0/33")
    with pytest.raises(ValueError, match="hookweb: forwarded_allow_ips: 'nope'"):
        App(Registry(), forwarded_allow_ips="nope")


def test_forwarded_parser() -> None:
    hops = parse_forwarded(['for=192.0.2.43, for="[2001:db8:cafe::17]";proto=https', "for=_hidden"])
    assert hops == [Hop("192.0.2.43"), Hop("[2001:db8:cafe::17]", "https"), Hop("_hidden")]
    assert parse_forwarded(['for="a\\"b"']) == [Hop('a"b')]
    assert parse_forwarded(["for=1.2.3.4 junk"]) is None
    trusted = parse_allowed("10.0.0.0/8")
    assert resolve("10.0.0.1", [Hop("_hidden")], trusted) == {"remote": "_hidden"}
    assert resolve("10.0.0.1", [Hop("unknown", "HTTPS")], trusted) == {
        "remote": "unknown",
        "scheme": "https",
    }
    assert resolve("11.0.0.1", [Hop("1.2.3.4")], trusted) == {}


async def test_off_by_default_costs_nothing() -> None:
    app = whoami_app()
    assert "_make_request" not in vars(app.web_app)
    trusting = whoami_app(forwarded_allow_ips="127.0.0.1")
    assert "_make_request" in vars(trusting.web_app)


# -- the CLI option -----------------------------------------------------------------------


def test_cli_forwarded_allow_ips() -> None:
    for extra, expected in [
        ((), "127.0.0.1"),  # default: none trusted
        (("--forwarded-allow-ips", "10.0.0.0/8"), "127.0.0.1"),  # the peer is not in it
        (("--forwarded-allow-ips", "127.0.0.1"), "203.0.113.9"),
    ]:
        server = Server(hookweb_argv("scale_app:app", "--port", "0", *extra), clean_env())
        try:
            port = int(server.wait_for(SERVING)[0].group(1))
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            try:
                conn.request("GET", "/whoami", headers={"X-Forwarded-For": "203.0.113.9"})
                assert json.loads(conn.getresponse().read())["remote"] == expected, extra
            finally:
                conn.close()
            server.signal(signal.SIGTERM)
            assert server.wait() == 0
        finally:
            server.kill()
    bad = Server(hookweb_argv("scale_app:app", "--forwarded-allow-ips", "nope"), clean_env())
    try:
        assert bad.wait() == 2
        assert bad.stderr.startswith("hookweb: forwarded_allow_ips: 'nope' is not an IP")
    finally:
        bad.kill()
