"""Fixture (BR-23): a circular import (cli_circular -> cli_circular_helpers -> cli_circular)."""

from cli_circular_helpers import helper

from hookweb import App, Registry

app = App(Registry())
VALUE = helper()
