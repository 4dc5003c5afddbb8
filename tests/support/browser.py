"""What the browser tests share (``adapters/test_dash_browser.py``,
``operations/test_demo_walk_browser.py``): headless chromium through dash.testing's ``dash_duo``, and the
demo's page selectors.

Importing this module skips the importing test module when chromedriver is missing (outside CI).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from typing import Any

import pytest
from dash.testing import wait

from support.servers import free_port

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

#: Dash's backends (``Dash(backend=...)``) the browser tests serve an app on (issue 25).
SERVERS = ("flask", "fastapi", "quart")
#: Seconds dash.testing waits for a freshly started server to answer (its default, 3, is short
#: for uvicorn or Hypercorn starting in a thread on a busy machine).
START_TIMEOUT = 15
#: ``Dash.run`` options only Flask's development server takes (uvicorn's Config refuses them).
_FLASK_ONLY = ("use_reloader", "use_debugger")


def serve(duo: Any, app: Any, **options: Any) -> None:
    """Serve the Dash ``app`` to ``duo`` (dash.testing's ``dash_duo``) in a thread of this process,
    whatever its backend: Flask's threaded server, uvicorn (FastAPI) or Hypercorn (Quart), as
    dash.testing's ``ThreadedRunner`` starts them, on a free loopback port. The app's manager and
    fake clock stay in-process. ``options`` go to ``Dash.run``; Flask's own (``use_reloader``,
    ``use_debugger``) only on Flask."""
    if getattr(app.backend, "server_type", "flask") != "flask":
        options = {name: value for name, value in options.items() if name not in _FLASK_ONLY}
    # A free port, not dash.testing's count from 8050: another test run on this machine may hold it.
    options.setdefault("port", free_port())
    duo.start_server(app, start_timeout=START_TIMEOUT, **options)
