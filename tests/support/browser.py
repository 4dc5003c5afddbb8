"""What the browser tests share (``adapters/test_dash_browser.py``,
``operations/test_demo_walk_browser.py``): headless chromium through dash.testing's ``dash_duo``, and the
demo's page selectors.

Importing this module skips the importing test module when chromedriver is missing (outside CI).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable

import pytest
from dash.testing import wait

if shutil.which("chromedriver") is None and os.environ.get("CI") != "true":
    pytest.skip("needs chromedriver: apt-get install chromium chromium-driver", allow_module_level=True)

#: dash.testing's bounded wait (untyped there): ``until(condition, timeout, msg=...)``.
until: Callable[..., object] = wait.until

#: The browser test modules' ``pytestmark``: selenium 4.2 (pinned by dash[testing]) calls an API
#: urllib3 2 deprecates.
BROWSER_MARKS = pytest.mark.filterwarnings(
    "ignore:HTTPResponse.getheader\\(\\) is deprecated:DeprecationWarning"
)

#: The demo's error threshold in these tests.
THRESHOLD = 3
#: Seconds a bounded wait for the browser gives up after (generous: CI machines can be busy).
WAIT = 30
BANNER = "#sessionmw-banner"
ALERT = "#sessionmw-alert"
