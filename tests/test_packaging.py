"""The wheel installs `sessionmw` and nothing else; adapters import as sessionmw.integrations.*."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import sessionmw

ROOT = Path(__file__).resolve().parent.parent


def _clean_copy(dest: Path) -> Path:
    """The checkout as git sees it (tracked files, and new ones it does not ignore) copied to
    ``dest``, so that leftovers of earlier builds (``build/``, ``*.egg-info``) cannot put files in
    the wheel that pyproject.toml does not ship. Without git: the checkout itself."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return ROOT
    for name in filter(None, listed.decode().split("\0")):
        source = ROOT / name
        if not (source.exists() or source.is_symlink()):  # deleted in the working tree
            continue
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target, follow_symlinks=False)  # sessionmw/integrations stays a link
    return dest


@pytest.fixture(scope="module", name="wheel")
def _wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel built from this checkout (no network: the build runs in this environment)."""
    out = tmp_path_factory.mktemp("wheel")
    source = _clean_copy(tmp_path_factory.mktemp("source"))
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(source)],
        check=True,
        capture_output=True,
    )
    (wheel,) = out.glob("sessionmw-*.whl")
    return wheel


def test_wheel_has_only_sessionmw_at_top_level(wheel: Path) -> None:
    """Only sessionmw/ and its dist-info are in the wheel; the adapters live under sessionmw/."""
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/", 1)[0] for name in names}
    assert {t for t in top if not t.endswith(".dist-info")} == {"sessionmw"}
    assert "sessionmw/integrations/__init__.py" in names
    assert "sessionmw/py.typed" in names
    assert not any(name.startswith(("integrations/", "tests/")) for name in names)


def test_wheel_ships_the_adapters_package_files(wheel: Path) -> None:
    """The banner's JavaScript and styles (``integrations/assets``) are in the wheel, where the
    Dash banner reads them: ``sessionmw/integrations/assets/``."""
    names = set(zipfile.ZipFile(wheel).namelist())
    assets = sorted(path.name for path in (ROOT / "integrations" / "assets").iterdir() if path.is_file())
    assert assets, "no package files in integrations/assets"
    assert [name for name in assets if f"sessionmw/integrations/assets/{name}" not in names] == []


def test_adapters_import_from_outside_the_checkout(tmp_path: Path) -> None:
    """Started outside the repo, every sessionmw.integrations module imports; `integrations` does not."""
    integrations = ROOT / "integrations"
    modules = sorted(
        f"sessionmw.integrations.{path.stem}" for path in integrations.glob("*.py") if path.stem != "__init__"
    )
    script = (
        "import importlib, importlib.util, json, sys\n"
        f"mods = {modules!r}\n"
        "for m in ['sessionmw.integrations', *mods]: importlib.import_module(m)\n"
        "print(json.dumps({'top': importlib.util.find_spec('integrations') is not None}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-I", "-c", script], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert json.loads(result.stdout) == {"top": False}


def test_version_matches_metadata() -> None:
    """sessionmw.__version__ is the installed distribution's version."""
    from importlib.metadata import version

    assert sessionmw.__version__ == version("sessionmw")


def test_public_names_are_exported_and_documented() -> None:
    """Every name in sessionmw.__all__ exists and is mentioned in docs/."""
    docs = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "docs").glob("*.md"))
    missing = [name for name in sessionmw.__all__ if f"`{name}" not in docs and f"{name}(" not in docs]
    for name in sessionmw.__all__:
        assert hasattr(sessionmw, name), name
    assert missing == [], f"not documented in docs/: {missing}"


MODULES = [
    "sessionmw",
    "sessionmw.analytics",
    "sessionmw.breaker",
    "sessionmw.breaker_table",
    "sessionmw.cli",
    "sessionmw.context",
    "sessionmw.demo",
    "sessionmw.errors",
    "sessionmw.figures",
    "sessionmw.guard",
    "sessionmw.health",
    "sessionmw.integrations.dash",
    "sessionmw.integrations.dash_apps",
    "sessionmw.integrations.dash_banner",
    "sessionmw.integrations.dash_callbacks",
    "sessionmw.integrations.flask",
    "sessionmw.integrations.environ",
    "sessionmw.integrations.gate",
    "sessionmw.integrations.http",
    "sessionmw.integrations.options",
    "sessionmw.integrations.pending_ids",
    "sessionmw.integrations.request",
    "sessionmw.integrations.request_session",
    "sessionmw.integrations.wsgi",
    "sessionmw.manager",
    "sessionmw.metrics",
    "sessionmw.rendering",
    "sessionmw.retry",
    "sessionmw.retry_after",
    "sessionmw.session",
    "sessionmw.settings",
    "sessionmw.signals",
    "sessionmw.states",
    "sessionmw.stores",
    "sessionmw.stores.breakers",
    "sessionmw.stores.counters",
    "sessionmw.stores.records",
    "sessionmw.stores.redis_errors",
    "sessionmw.stores.urls",
    "sessionmw.testing",
    "sessionmw.tour",
    "sessionmw.transitions",
    "sessionmw.translation",
    "sessionmw.user_errors",
]


@pytest.mark.parametrize("module", MODULES)
def test_every_modules_public_names_are_documented(module: str) -> None:
    """Every name in a module's __all__ exists and appears in docs/."""
    import importlib

    docs = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "docs").glob("*.md"))
    imported = importlib.import_module(module)
    names: list[str] = list(getattr(imported, "__all__", []))
    assert names, f"{module} has no __all__"
    assert [name for name in names if not hasattr(imported, name)] == []
    assert [name for name in names if f"`{name}" not in docs] == []


# What users imported from a module before it was split by concept (issue 15): still importable there.
OLD_PATHS = {
    "sessionmw.translation": [
        *("DEFAULT_RETRY_AFTER", "Severity", "Translation", "UserFacingError", "format_error"),
        *("is_transient", "parse_retry_after", "register_translation", "retry_after_of", "translate"),
        *("translation_for", "translations", "unregister_translation"),
    ],
}


@pytest.mark.parametrize("module", list(OLD_PATHS))
def test_names_stay_importable_from_before_the_split(module: str) -> None:
    """A module split in several keeps every public name it had, in its ``__all__`` too."""
    import importlib

    imported = importlib.import_module(module)
    assert [name for name in OLD_PATHS[module] if not hasattr(imported, name)] == []
    assert set(OLD_PATHS[module]) <= set(imported.__all__)
