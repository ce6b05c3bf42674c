"""``python -m hookweb TARGET [options]``."""

from .cli import console_main

console_main()
