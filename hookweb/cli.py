"""The command line: ``python -m hookweb TARGET [options]`` (placeholder)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    print("hookweb: the CLI is not built yet", file=sys.stderr)
    return 2


def console_main() -> None:
    raise SystemExit(main(sys.argv[1:]))
