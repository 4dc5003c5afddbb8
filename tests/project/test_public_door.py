"""`import sessionmw` gives every name the docs promise, and loads no persistent store."""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import sessionmw
from sessionmw import signals, testing

ROOT = Path(__file__).resolve().parents[2]

PROBE = """\
import json, sys
import sessionmw
names = ("sessionmw.stores._sqlite", "sessionmw.stores._redis", "redis")
before = sorted(name for name in names if name in sys.modules)
stores = (sessionmw.stores.SQLiteStore.__module__, sessionmw.stores.RedisStore.__module__)
print(json.dumps({"before": before, "stores": stores}))
"""


def test_import_loads_no_persistent_store_until_one_is_used() -> None:
    """The SQLite and Redis stores (and redis-py) load on first use of their names, not before."""
    result = subprocess.run([sys.executable, "-I", "-c", PROBE], capture_output=True, text=True, check=True)
    assert json.loads(result.stdout) == {
        "before": [],
        "stores": ["sessionmw.stores._sqlite", "sessionmw.stores._redis"],
    }


def test_the_door_gives_the_modules_signals_and_testing() -> None:
    """``sessionmw.signals`` and ``sessionmw.testing`` work after a bare ``import sessionmw``."""
    assert (sessionmw.signals, sessionmw.testing) == (signals, testing)
    assert {"signals", "testing"} <= set(sessionmw.__all__)


def _public_modules() -> list[str]:
    """Every importable module of sessionmw whose path has no underscored part."""
    found = ["sessionmw"]
    for module in pkgutil.walk_packages(sessionmw.__path__, "sessionmw."):
        if not any(part.startswith("_") for part in module.name.split(".")):
            found.append(module.name)
    return found


def test_every_name_of_the_door_has_one_import_path() -> None:
    """A name in ``sessionmw.__all__`` is in the ``__all__`` of no other public module: the
    modules that define them are private, so ``from sessionmw import X`` is the only way in."""
    door = {name for name in sessionmw.__all__ if not inspect.ismodule(getattr(sessionmw, name))}
    elsewhere = {
        module: sorted(door & set(getattr(importlib.import_module(module), "__all__", ())))
        for module in _public_modules()
        if module != "sessionmw"
    }
    assert {module: names for module, names in elsewhere.items() if names} == {}


def test_the_door_holds_what_the_guide_teaches() -> None:
    """Every name of the door is in the guide; the plumbing is not in the door; and the package
    has no public name beside its ``__all__`` but its public modules."""
    guide = (ROOT / "docs" / "guide.md").read_text(encoding="utf-8")
    assert [name for name in sessionmw.__all__ if f"`{name}" not in guide and f" {name}" not in guide] == []
    plumbing = {"enter_scope", "leave_scope", "Change", "TRANSITIONS", "BREAKER_TRANSITIONS", "MESSAGES"}
    assert plumbing & set(sessionmw.__all__) == set()
    side_doors = [
        name
        for name, value in vars(sessionmw).items()
        if not name.startswith("_") and not inspect.ismodule(value) and name not in sessionmw.__all__
    ]
    assert side_doors == ["annotations"]  # from __future__ import annotations


def test_every_public_name_has_one_import_path() -> None:
    """Across all public modules, one ``__all__`` lists each public object under its name: a
    subpackage's ``__init__`` names it, its private module defines it (``sessionmw.stores``
    and ``sessionmw.stores._memory``)."""
    places: dict[tuple[str, int], list[str]] = {}
    for module in _public_modules():
        imported = importlib.import_module(module)
        for name in getattr(imported, "__all__", ()):
            places.setdefault((name, id(getattr(imported, name))), []).append(module)
    repeated = {
        name: found
        for (name, _), found in places.items()
        if len(found) > 1
    }
    assert repeated == {}
