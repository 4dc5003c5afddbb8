"""Chrome options for dash.testing's browser tests: headless Debian chromium."""

from __future__ import annotations

import os
from typing import Any

#: Chrome flags for dash.testing's browser tests: headless Debian chromium, as root in CI.
CHROME_ARGUMENTS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1100,900",
)


def chrome_options() -> Any:
    """Chrome options for dash.testing: a headless chromium (``DASH_TEST_CHROMEPATH`` wins); for the
    ``pytest_setup_options`` hook of tests/conftest.py and of scripts/dash_suite_plugin.py."""
    import shutil

    from selenium.webdriver.chrome.options import Options

    options = Options()
    add_argument: Any = options.add_argument  # untyped in selenium
    for argument in CHROME_ARGUMENTS:
        add_argument(argument)
    binary = os.environ.get("DASH_TEST_CHROMEPATH") or shutil.which("chromium")
    if binary:
        options.binary_location = binary
    return options
