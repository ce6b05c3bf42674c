"""Fixtures shared by the CLI, reliability and worker tests."""

from __future__ import annotations

import datetime
import ipaddress
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hookweb.testing import isolated_registry
from tests.support import APPS, Proc, clean_env

# Fixture modules under tests/apps/ that in-process tests import (and unload after).
_APP_MODULES = ("cli_", "clipkg", "scale_", "rel_")


@pytest.fixture
def markers(tmp_path: Path) -> Path:
    """The file the fixture apps record their hooks to (HOOKWEB_TEST_MARKERS)."""
    return tmp_path / "markers.txt"


@pytest.fixture
def run_cli(markers: Path) -> Iterator[Callable[..., Proc]]:
    """Start ``python -m hookweb ARGS`` (cwd tests/apps); every process is killed at the end."""
    started: list[Proc] = []

    def start(*args: str, cwd: Path = APPS, **env: str) -> Proc:
        proc = Proc(list(args), clean_env(markers, **env), cwd)
        started.append(proc)
        return proc

    try:
        yield start
    finally:
        for proc in started:
            proc.kill()


@pytest.fixture
def in_apps(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Run ``hookweb.cli.main`` in-process: cwd tests/apps, no HOOKWEB_* variables, a
    private default registry, and the fixture modules unloaded afterwards."""
    monkeypatch.chdir(APPS)
    for key in list(os.environ):
        if key.startswith("HOOKWEB_"):
            monkeypatch.delenv(key)
    saved_path = list(sys.path)
    saved_modules = set(sys.modules)
    try:
        with isolated_registry():
            yield
    finally:
        sys.path[:] = saved_path
        for name in set(sys.modules) - saved_modules:
            if name.startswith(_APP_MODULES):
                del sys.modules[name]


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    certfile, keyfile = tmp_path / "cert.pem", tmp_path / "key.pem"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return certfile, keyfile
