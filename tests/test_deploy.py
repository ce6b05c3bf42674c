"""Issue 7: docs/deploy.md and deploy/** -- every command and config there, run for real.

- the console commands of docs/deploy.md (ports, module and delays substituted);
- the config blocks of docs/deploy.md are the files under deploy/;
- both systemd units' ExecStart (and ExecReload), stopped with their KillSignal;
- nginx with deploy/nginx/hookweb.conf in front of two instances during a rolling
  restart under load: 0 failed requests;
- the Kubernetes manifest's command, readiness probe and grace period;
- the health route and --drain-delay of one process.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from hookweb import App, Registry
from tests import test_worker
from tests.test_worker import WORKER_SERVING, Load, Server, clean_env, get, hookweb_argv

servers = test_worker.servers  # the fixture: server processes killed at teardown

ROOT = Path(__file__).parent.parent
DOC = ROOT / "docs" / "deploy.md"
DEPLOY = ROOT / "deploy"
SERVING = re.compile(r"hookweb: serving \S+ on http://127\.0\.0\.1:(\d+) \(")
WAIT = 15.0
FAST_DRAIN = "0.3"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def adapt(argv: list[str], port: int) -> list[str]:
    """A documented command line, made to run here: our fixture app, a free loopback port,
    a short drain. Everything else stays as written."""
    out: list[str] = []
    it = iter(argv)
    for arg in it:
        if arg == "python" or arg.endswith("/bin/python"):
            out.append(sys.executable)
        elif arg == "gunicorn":
            out += [sys.executable, "-m", "gunicorn"]
        elif arg.startswith("myapp:"):
            out.append("scale_" + arg.removeprefix("my"))  # myapp:app -> scale_app:app
        elif arg in ("--port", "--bind", "--host", "--drain-delay"):
            next(it)  # the documented value
            replaced = {
                "--port": str(port),
                "--bind": f"127.0.0.1:{port}",
                "--host": "127.0.0.1",
                "--drain-delay": FAST_DRAIN,
            }[arg]
            out += [arg, replaced]
        else:
            out.append(arg)
    return out


def wait_healthy(port: int, path: str = "/healthz", timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if get(port, path, timeout=2)[0] == 200:
                return
        except OSError:
            pass
        assert time.monotonic() < deadline, f"port {port} never answered 200 on {path}"
        time.sleep(0.05)


# -- the commands of docs/deploy.md -----------------------------------------------------


def doc_commands() -> list[str]:
    blocks = re.findall(r"```console\n(.*?)```", DOC.read_text(), re.S)
    return [line[2:] for block in blocks for line in block.splitlines() if line.startswith("$ ")]


def test_every_command_in_the_deploy_guide_works(
    servers: Callable[..., Server], tmp_path: Path
) -> None:
    ran = []
    for command in doc_commands():
        words = shlex.split(command)
        env = clean_env(XDG_RUNTIME_DIR=str(tmp_path))  # gunicorn's control socket
        while "=" in words[0]:  # VAR=value prefixes
            name, value = words.pop(0).split("=", 1)
            env[name] = FAST_DRAIN if name == "HOOKWEB_DRAIN_DELAY" else value
        if words[0] in ("pip", "sudo", "curl", "sleep"):
            continue  # installing, systemctl: the files are tested below
        port = free_port()
        argv = adapt(words, port)
        server = servers(argv, env)
        workers = int(words[words.index("--workers") + 1]) if "--workers" in words else 1
        pattern = WORKER_SERVING if ("--workers" in words or words[0] == "gunicorn") else SERVING
        found = server.wait_for(pattern, workers)
        assert {int(m.group(2 if pattern is WORKER_SERVING else 1)) for m in found} == {port}
        assert get(port)[0] == 200, command
        server.signal(signal.SIGTERM)
        assert server.wait() == 0, (command, server.stderr)
        ran.append(words[0])
    assert ran.count("python") >= 3 and ran.count("gunicorn") >= 2, ran


def test_config_blocks_in_the_guide_are_the_deploy_files() -> None:
    text = DOC.read_text()
    files = {
        "ini": DEPLOY / "systemd" / "hookweb@.service",
        "nginx": DEPLOY / "nginx" / "hookweb.conf",
        "yaml": DEPLOY / "k8s" / "deployment.yaml",
    }
    for lang, path in files.items():
        wanted = {line.strip() for line in path.read_text().splitlines()}
        blocks = re.findall(rf"```{lang}\n(.*?)```", text, re.S)
        assert blocks, lang
        for block in blocks:
            for line in block.splitlines():
                assert line.strip() in wanted, f"{path.name} has no line {line.strip()!r}"
    for path in DEPLOY.rglob("*"):
        if path.is_file():
            assert f"deploy/{path.relative_to(DEPLOY)}" in text, f"{path} is not in the guide"


# -- systemd units -------------------------------------------------------------------------


def read_unit(name: str) -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(DEPLOY / "systemd" / name)
    return parser["Service"]


def flag(argv: list[str], name: str) -> float:
    return float(argv[argv.index(name) + 1])


@pytest.mark.parametrize("unit", ["hookweb@.service", "hookweb-gunicorn.service"])
def test_systemd_unit_starts_reloads_and_stops_within_its_timeout(
    servers: Callable[..., Server], tmp_path: Path, unit: str
) -> None:
    service = read_unit(unit)
    argv = shlex.split(service["ExecStart"].replace("%i", "8001"))
    drain, shutdown = flag(argv, "--drain-delay"), flag(argv, "--shutdown-timeout")
    timeout_stop = float(service["TimeoutStopSec"])
    assert timeout_stop >= drain + shutdown + 30, "systemd would SIGKILL during the stop"
    assert set(service["RestartPreventExitStatus"].split()) == {"2", "3"}
    assert service["KillSignal"] == "SIGTERM"
    workers = "--workers" in argv
    if workers:
        assert service["KillMode"] == "mixed"
        # The arbiter's bound (drain + shutdown + 35) ends before systemd's.
        assert timeout_stop > drain + shutdown + 35
    port = free_port()
    server = servers(adapt(argv, port), clean_env(tmp_path / "markers.txt"))
    count = int(flag(argv, "--workers")) if workers else 1
    server.wait_for(WORKER_SERVING if workers else SERVING, count)
    assert get(port)[0] == 200
    if workers:
        reload = shlex.split(service["ExecReload"].replace("$MAINPID", str(server.pid)))
        if not os.path.exists(reload[0]):
            reload[0] = shutil.which("kill") or pytest.skip("no kill binary")
        subprocess.run(reload, check=True, timeout=WAIT)
        server.wait_for(WORKER_SERVING, 2 * count)  # new workers replaced the old ones
        assert get(port)[0] == 200
    began = time.monotonic()
    server.signal(signal.Signals[service["KillSignal"]])
    assert server.wait(timeout=timeout_stop) == 0
    assert time.monotonic() - began < timeout_stop


# -- nginx in front of two instances: a rolling restart under load --------------------------


NGINX_MAIN = """\
daemon off;
master_process on;
worker_processes 1;
{user}pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 512; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    include {site};
}}
"""


def nginx_binary() -> str:
    found = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.path.exists(p)), None
    )
    if found is None:
        pytest.skip("nginx is not installed (apt-get install nginx; .ci/run installs it)")
    return found


def test_rolling_restart_behind_nginx_loses_no_request(
    servers: Callable[..., Server], tmp_path: Path
) -> None:
    nginx = nginx_binary()
    ports = [free_port(), free_port()]
    front = free_port()
    site = (DEPLOY / "nginx" / "hookweb.conf").read_text()
    assert "127.0.0.1:8001" in site and "127.0.0.1:8002" in site and "listen 80;" in site
    site = site.replace("127.0.0.1:8001", f"127.0.0.1:{ports[0]}")
    site = site.replace("127.0.0.1:8002", f"127.0.0.1:{ports[1]}")
    site = site.replace("listen 80;", f"listen 127.0.0.1:{front};")
    (tmp_path / "site.conf").write_text(site)
    user = "user root;\n" if os.geteuid() == 0 else ""
    main = NGINX_MAIN.format(user=user, tmp=tmp_path, site=tmp_path / "site.conf")
    (tmp_path / "nginx.conf").write_text(main)

    unit = read_unit("hookweb@.service")
    drain = "1"  # the unit's 5 s, shortened; the rest of ExecStart as written

    def instance(port: int) -> Server:
        argv = adapt(shlex.split(unit["ExecStart"].replace("%i", str(port))), port)
        argv[argv.index("--drain-delay") + 1] = drain
        return servers(argv, clean_env())

    running = [instance(port) for port in ports]
    for port in ports:
        wait_healthy(port)
    proxy = servers([nginx, "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")], clean_env())
    try:
        wait_healthy(front, "/")
        new_bodies = set()
        with Load(front, clients=8) as load:
            time.sleep(0.8)
            for i, port in enumerate(ports):
                old = running[i]
                old.signal(signal.SIGTERM)
                assert old.wait(timeout=WAIT) == 0, old.stderr
                running[i] = instance(port)
                wait_healthy(port)
                body = get(port)[1]
                new_bodies.add(body)
                # As a load balancer's rolling update does: restart the next instance only
                # once traffic reaches this one again (nginx skips a restarted instance for
                # fail_timeout, 2 s, after the refusals while it was down).
                deadline = time.monotonic() + 10
                while body not in load.bodies and time.monotonic() < deadline:
                    time.sleep(0.05)
        sent, failed = load.sent, len(load.failures)
        print(f"rolling restart behind nginx: {sent} requests sent, {failed} failed")
        assert failed == 0, f"{failed} of {sent} failed: {load.failures[:5]}"
        assert sent > 200, sent
        assert len(load.bodies) == 4  # the old and the new process of both instances answered
        assert new_bodies <= set(load.bodies)
    finally:
        proxy.signal(signal.SIGQUIT)
        try:
            proxy.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        for server in running:
            server.signal(signal.SIGTERM)


# -- Kubernetes -------------------------------------------------------------------------------


def test_kubernetes_manifest_probe_drain_and_grace_period(
    servers: Callable[..., Server],
) -> None:
    text = (DEPLOY / "k8s" / "deployment.yaml").read_text()
    command = json.loads(re.search(r"command: (\[.*\])", text).group(1))  # type: ignore[union-attr]
    grace = int(re.search(r"terminationGracePeriodSeconds: (\d+)", text).group(1))  # type: ignore[union-attr]
    readiness = re.search(
        r"readinessProbe:\s+httpGet:\s+path: (\S+)\s+port: (\d+)\s+periodSeconds: (\d+)"
        r"\s+failureThreshold: (\d+)",
        text,
    )
    assert readiness is not None
    path, probe_port, period, threshold = readiness.groups()
    assert re.search(r"livenessProbe:\s+tcpSocket:\s+port: " + probe_port, text)
    drain, shutdown = flag(command, "--drain-delay"), flag(command, "--shutdown-timeout")
    assert flag(command, "--port") == float(probe_port)
    assert drain >= int(period) * int(threshold)  # the pod leaves the Service while serving
    assert grace >= drain + shutdown + 10

    port = free_port()
    server = servers(adapt(command, port), clean_env())
    server.wait_for(SERVING)
    wait_healthy(port, path)  # the kubelet's readiness probe
    server.signal(signal.SIGTERM)
    time.sleep(0.1)
    assert get(port, path) == (503, "stopping")  # not ready: out of the Service
    assert get(port, "/")[0] == 200  # and still serving during the drain
    assert server.wait(timeout=grace) == 0


# -- the health route and the drain of one process -----------------------------------------


async def test_health_route_follows_the_lifecycle() -> None:
    reg = Registry()
    seen: dict[str, object] = {}

    @reg.post_start
    async def probe(app: App) -> None:  # sockets listen, post_start not finished: 503
        async with aiohttp.ClientSession() as session:
            async with session.get(app.urls[0] + "/healthz") as response:
                seen["post_start"] = (response.status, await response.text())

    @reg.shutdown
    async def stopping(app: App) -> None:
        response = await app._health_route(None)  # type: ignore[arg-type]
        seen["shutdown"] = response.status

    app = App(reg, health_path="/healthz")
    async with app.test_client() as client:
        response = await client.get("/healthz")
        assert (response.status, await response.text()) == (200, "ok")
        assert response.headers["Cache-Control"] == "no-store"
        assert (await client.head("/healthz")).status == 200
    assert seen == {"post_start": (503, "starting"), "shutdown": 503}
    async with app.test_client() as client:  # a second run starts healthy again
        assert (await client.get("/healthz")).status == 200
    with pytest.raises(ValueError, match="must be a path starting with '/'"):
        App(Registry(), health_path="healthz")


async def test_no_health_route_unless_asked() -> None:
    reg = Registry()

    @reg.get("/")
    async def index(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async with App(reg).test_client() as client:
        assert (await client.get("/healthz")).status == 404


def test_drain_delay_keeps_serving_then_stops(
    servers: Callable[..., Server], tmp_path: Path
) -> None:
    markers = tmp_path / "markers.txt"
    server = servers(
        hookweb_argv("scale_app:app", "--port", "0", "--drain-delay", "1"), clean_env(markers)
    )
    port = int(server.wait_for(SERVING)[0].group(1))
    assert get(port, "/healthz") == (200, "ok")
    server.signal(signal.SIGTERM)
    signalled = time.monotonic()
    time.sleep(0.2)
    assert get(port, "/healthz") == (503, "stopping")
    assert get(port, "/")[0] == 200  # new connections are still served during the drain
    assert server.wait() == 0
    assert time.monotonic() - signalled >= 1.0
    assert (
        "hookweb: SIGTERM: draining for 1 s (health answers 503, requests are still served),"
        " then stopping gracefully (press Ctrl+C again to end the drain)" in server.lines
    )
    events = [line.split(" ", 1)[1].split(" ")[0] for line in markers.read_text().splitlines()]
    assert events == ["start", "post_start", "stop", "cleanup"]


def test_second_signal_ends_the_drain(servers: Callable[..., Server], tmp_path: Path) -> None:
    server = servers(
        hookweb_argv("scale_app:app", "--port", "0", "--drain-delay", "30"),
        clean_env(tmp_path / "markers.txt"),
    )
    server.wait_for(SERVING)
    server.signal(signal.SIGTERM)
    time.sleep(0.3)
    began = time.monotonic()
    server.signal(signal.SIGINT)
    assert server.wait() == 0  # the graceful stop ran, stop hooks included
    assert time.monotonic() - began < 3
    assert "hookweb: SIGINT during the drain: stopping gracefully now" in server.lines


def test_run_app_accepts_the_new_options() -> None:
    from hookweb._serve import make_options

    opts = make_options({"drain_delay": 2, "forwarded_allow_ips": ["10.0.0.0/8"]})
    assert (opts.drain_delay, opts.forwarded_allow_ips) == (2, ["10.0.0.0/8"])
    with pytest.raises(ValueError, match="drain_delay must be seconds >= 0"):
        make_options({"drain_delay": -1})
    with pytest.raises(ValueError, match="'nope' is not an IP address"):
        make_options({"forwarded_allow_ips": "nope"})
