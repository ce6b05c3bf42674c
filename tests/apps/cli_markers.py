"""Fixture helper: append '<pid> <text>' to the file named by HOOKWEB_TEST_MARKERS."""

from __future__ import annotations

import os

ENV = "HOOKWEB_TEST_MARKERS"


def record(text: str) -> None:
    path = os.environ.get(ENV)
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(f"{os.getpid()} {text}\n")
