"""Issue 5, item 5: hostile HTTP input written to a raw socket never crashes the server.

One CLI subprocess serves ``rel_load:app``; hypothesis writes generated request
lines, headers and bodies (and plain garbage) to new connections. Every answer
is a well-formed HTTP response below 500 that carries the response_prepare
hook's headers, the server keeps serving, and after SIGTERM it exits 0 having
run each stop hook once.
"""

from __future__ import annotations

import collections
import re
import select
import signal
import socket
from pathlib import Path
from typing import TypeVar

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support import Proc, clean_env, http_get, read_markers

EXAMPLES = 200
STATUS = re.compile(rb"HTTP/\d\.\d (\d{3}) ")  # aiohttp answers in the request's version

T = TypeVar("T")


def mostly(usual: st.SearchStrategy[T], odd: st.SearchStrategy[T]) -> st.SearchStrategy[T]:
    """``usual`` 4 times in 5, else ``odd``: enough valid requests to reach the handlers."""
    return st.integers(0, 4).flatmap(lambda n: odd if n == 4 else usual)


tokens = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=12)
methods_ok = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ-_", min_size=1, max_size=10)
methods = mostly(
    st.sampled_from(["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH"]),
    st.one_of(methods_ok, tokens, st.just("PRI")),
)
paths = mostly(
    st.sampled_from(["/", "/work?ms=1", "/echo", "/boom", "/nope", "/ws", "/%", "*"]),
    st.one_of(
        st.text(max_size=40).map(lambda t: "/" + t),
        st.integers(8000, 9000).map(lambda n: "/" + "a" * n),  # over the 8190-byte line limit
    ),
)
versions = mostly(
    st.sampled_from(["HTTP/1.1", "HTTP/1.0"]),
    st.sampled_from(["HTTP/2.0", "HTTP/1.x", "HTTP/0.9", "", "http", "HTTP/1.1 x"]),
)
usual_headers = st.sampled_from(
    [
        ("Accept", "*/*"),
        ("Accept", "text/html"),
        ("Content-Type", "application/json"),
        ("Content-Type", "multipart/form-data; boundary=x"),
        ("Cookie", "a=b; c"),
        ("Expect", "100-continue"),
        ("Upgrade", "websocket"),
        ("Sec-WebSocket-Version", "13"),
        ("Transfer-Encoding", "chunked"),
        ("Content-Encoding", "gzip"),
        ("Accept-Encoding", "br, gzip"),
    ]
)
odd_headers = st.tuples(
    st.one_of(
        st.sampled_from(["Content-Length", "Transfer-Encoding", "Host", "Upgrade"]),
        tokens,
        st.text(max_size=10),
    ),
    st.one_of(
        st.sampled_from(["gzip, chunked", "-1", "99999999999999999999", " 5", "5, 6", "chunked"]),
        st.text(max_size=30),
        st.integers(8000, 9000).map(lambda n: "v" * n),  # over the 8190-byte field limit
    ),
)
bodies = st.one_of(
    st.binary(max_size=300),
    st.sampled_from(
        [b"", b"0\r\n\r\n", b"5\r\nhello\r\n0\r\n\r\n", b"zz\r\nx\r\n", b"x" * 2000]
    ),
)


@st.composite
def requests(draw: st.DrawFn) -> bytes:
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(min_size=1, max_size=200))  # not HTTP at all
    line = f"{draw(methods)} {draw(paths)} {draw(versions)}"
    headers = draw(
        st.lists(mostly(usual_headers, odd_headers), max_size=4, unique_by=lambda h: h[0].lower())
    )
    if draw(mostly(st.just(True), st.just(False))) and all(h[0] != "Host" for h in headers):
        headers.insert(0, ("Host", "example"))  # HTTP/1.1 requires one
    body = draw(bodies)
    length = draw(st.sampled_from(["right", "right", "none", "wrong"]))
    if length != "none":
        headers.append(("Content-Length", str(len(body) + (length == "wrong") * 7)))
    # Connection: close last, so a complete request's answer ends with the connection.
    fields = [f"{name}: {value}" for name, value in headers]
    head = "\r\n".join([line, *fields, "Connection: close"])
    return head.encode("utf-8", "surrogateescape") + b"\r\n\r\n" + body


def exchange(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        try:
            sock.sendall(data)
            if not select.select([sock], [], [], 0.25)[0]:
                # The server waits for more (a body shorter than its length, say):
                # tell it nothing more is coming.
                sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered (and closed) before reading everything
        chunks = []
        sock.settimeout(2)
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except ConnectionResetError:
            pass
        except TimeoutError:  # held open: a websocket that was accepted, say
            if not chunks:
                raise
    return b"".join(chunks)


def test_hostile_requests_never_crash_the_server_or_skip_a_stop_hook(
    tmp_path: Path,
) -> None:
    markers = tmp_path / "markers.txt"
    proc = Proc(["rel_load", "--port", "0", "--no-access-log"], clean_env(markers))
    statuses: collections.Counter[int] = collections.Counter()
    tried = 0
    try:
        _, port = proc.serving()

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )
        @given(requests())
        def one(data: bytes) -> None:
            nonlocal tried
            tried += 1
            response = exchange(port, data)
            if not response:
                statuses[0] += 1  # closed without an answer (allowed, counted)
                return
            # Skip interim 1xx answers (Expect: 100-continue) to the final one.
            while (match := STATUS.match(response)) and match.group(1).startswith(b"1"):
                response = response.partition(b"\r\n\r\n")[2]
            assert match is not None, (data[:200], response[:200])
            status = int(match.group(1))
            statuses[status] += 1
            # Only /boom's own RuntimeError is a 500, and its text never reaches the client.
            assert status < 500 or data.split(b" ", 2)[1:2] == [b"/boom"], data[:200]
            assert b"hunter2" not in response and b"Traceback" not in response
            assert b"\r\nX-Content-Type-Options: nosniff\r\n" in response, (data[:200], response)

        one()
        assert http_get(port, "/") == (200, "ok")  # still serving
        assert proc.popen.poll() is None
        proc.signal(signal.SIGTERM)
        assert proc.wait() == 0, proc.stderr
    finally:
        proc.kill()
    events = read_markers(markers)
    assert [e.split()[0] for e in events] == ["pre_start", "shutdown", "cleanup"], events
    print(f"\nhttp fuzz: {tried} requests, statuses {dict(sorted(statuses.items()))}")
    assert tried >= EXAMPLES
