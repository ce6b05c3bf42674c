"""``import hookweb`` costs little over ``import aiohttp.web`` (issue 6's start-up bar).

Not a timed test: the bar is measured by ``python -m bench``. This pins what makes
it cheap: ``import hookweb`` loads hookweb's core modules and nothing else that
``import aiohttp.web`` does not load already. The runner, the CLI, the proxy
support, the test client and the gunicorn worker are imported when first used.
"""

from __future__ import annotations

import subprocess
import sys

CORE = {
    "hookweb",
    "hookweb._lifecycle",
    "hookweb._server",
    "hookweb.app",
    "hookweb.errors",
    "hookweb.registry",
    "hookweb.security",
}

SHOW = "import sys; import {0}; print('\\n'.join(sorted(sys.modules)))"


def loaded(module: str) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", SHOW.format(module)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return set(done.stdout.split())


def test_import_hookweb_loads_only_its_core_beyond_aiohttp_web() -> None:
    extra = loaded("hookweb") - loaded("aiohttp.web")
    assert extra == CORE, sorted(extra ^ CORE)

