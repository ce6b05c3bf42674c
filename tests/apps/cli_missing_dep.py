"""Fixture: the module's own import fails on a missing dependency."""

import hookweb_missing_dependency_xyz  # noqa: F401

app = None
