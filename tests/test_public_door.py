"""`import sessionmw` gives every name the docs promise, and loads no persistent store."""

from __future__ import annotations

import json
import subprocess
import sys

import sessionmw
from sessionmw import analytics, guard, signals, stores, testing

PROBE = """\
import json, sys
import sessionmw
names = ("sessionmw.stores.sqlite", "sessionmw.stores.redis", "redis")
before = sorted(name for name in names if name in sys.modules)
stores = (sessionmw.SQLiteStore.__module__, sessionmw.RedisStore.__module__)
print(json.dumps({"before": before, "stores": stores}))
"""


def test_import_loads_no_persistent_store_until_one_is_used() -> None:
    """The SQLite and Redis stores (and redis-py) load on first use of their names, not before."""
    result = subprocess.run([sys.executable, "-I", "-c", PROBE], capture_output=True, text=True, check=True)
    assert json.loads(result.stdout) == {
        "before": [],
        "stores": ["sessionmw.stores.sqlite", "sessionmw.stores.redis"],
    }


def test_the_names_the_docs_promise_are_the_modules_own() -> None:
    """signals, testing, MemoryStore, Analytics and DEFAULT_RETRY are importable from sessionmw."""
    from sessionmw import DEFAULT_RETRY, Analytics, MemoryStore

    assert (sessionmw.signals, sessionmw.testing) == (signals, testing)
    assert (MemoryStore, Analytics, DEFAULT_RETRY) == (
        stores.MemoryStore,
        analytics.Analytics,
        guard.DEFAULT_RETRY,
    )
    assert {"signals", "testing", "MemoryStore", "Analytics", "DEFAULT_RETRY"} <= set(sessionmw.__all__)
