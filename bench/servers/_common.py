"""What every benchmark server shares: the routes' bodies and the command line."""

from __future__ import annotations

import argparse

TEXT = "Hello, World!"
JSON = {"message": "Hello, World!"}


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    return p
