"""The tests mirror the code: every module of sessionmw (and of its adapters, integrations/) has a
``tests/<area>/test_<module>.py``, the area being the module's import-linter layer in pyproject.toml.

A private module is named without its underscores (``sessionmw/_manager.py`` is tested in
``tests/core/test_manager.py``); a package's ``__init__`` by the package (``sessionmw/stores/__init__.py``
in ``tests/stores/test_stores.py``). Two ``__init__`` files have no file of their own:
``sessionmw/__init__.py`` only re-exports (the public door: ``tests/project/test_public_door.py``),
and ``integrations/__init__.py`` holds a docstring and an empty ``__all__``.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: The layers of the import-linter contract, top to bottom, by the name of their folder in tests/.
AREAS = ("operations", "adapters", "resilience", "core", "words", "stores", "model")
#: Modules that need no test file of their own (see the module docstring).
NO_FILE = {"sessionmw/__init__.py", "integrations/__init__.py"}


def area_of_layer() -> dict[str, str]:
    """Each top-level module or package of sessionmw -> its area (from the layers in pyproject.toml)."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    (contract,) = [c for c in config["tool"]["importlinter"]["contracts"] if c["type"] == "layers"]
    assert len(contract["layers"]) == len(AREAS), "a layer was added or removed: name its area in AREAS"
    return {
        name.strip(): area
        for layer, area in zip(contract["layers"], AREAS, strict=True)
        for name in layer.split(":")
    }


def expected_test_files() -> dict[str, str]:
    """Each module file (relative to the repository) -> the test file that should test it."""
    areas = area_of_layer()
    expected = {}
    files = [*(ROOT / "sessionmw").rglob("*.py"), *(ROOT / "integrations").rglob("*.py")]
    for path in sorted(file for file in files if "sessionmw/integrations" not in file.as_posix()):
        relative = path.relative_to(ROOT).as_posix()
        if relative in NO_FILE:
            continue
        parts = path.relative_to(ROOT).with_suffix("").parts
        top = "integrations" if parts[0] == "integrations" else parts[1]
        module = parts[-2] if parts[-1] == "__init__" else parts[-1]
        expected[relative] = f"tests/{areas[top]}/test_{module.strip('_')}.py"
    return expected


def test_every_module_has_its_test_file() -> None:
    missing = sorted(
        f"{module} -> {test}" for module, test in expected_test_files().items() if not (ROOT / test).is_file()
    )
    assert not missing, f"modules without their test file: {missing}"


def test_the_modules_are_found() -> None:
    expected = expected_test_files()
    assert expected["sessionmw/_manager.py"] == "tests/core/test_manager.py"
    assert expected["sessionmw/stores/__init__.py"] == "tests/stores/test_stores.py"
    assert expected["sessionmw/stores/_sqlite.py"] == "tests/stores/test_sqlite.py"
    assert expected["integrations/flask.py"] == "tests/adapters/test_flask.py"
    # + integrations/problem.py, asgi.py, fastapi.py, quart.py, websocket.py, dash_websocket.py;
    # sessionmw/languages.py
    assert len(expected) == 64
