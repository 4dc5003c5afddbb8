"""The wheel installs `sessionmw` and nothing else; adapters import as sessionmw.integrations.*.

One mechanism puts the top-level ``integrations/`` folder under ``sessionmw``: the committed link
``sessionmw/integrations -> ../integrations``. Each of the five that must see it is checked here:
an editable install, the wheel, the sdist, mypy and import-linter.
"""

from __future__ import annotations

import json
import os
import pkgutil
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest

import sessionmw

ROOT = Path(__file__).resolve().parents[2]


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


#: The adapter modules, as users import them.
ADAPTERS = sorted(
    f"sessionmw.integrations.{path.stem}"
    for path in (ROOT / "integrations").glob("*.py")
    if path.stem != "__init__"
)


def _imported_files(tmp_path: Path, setup: str) -> tuple[dict[str, str], bool]:
    """Where every adapter module is imported from, in a Python started outside the checkout with
    no site-packages but this environment's third-party ones (no ``.pth`` run, so not this
    checkout's own editable install), after ``setup`` put one sessionmw install on the path."""
    script = (
        "import importlib, importlib.util, json, site, sys\n"
        f"{setup}\n"
        f"sys.path.append({sysconfig.get_paths()['purelib']!r})\n"
        f"mods = {['sessionmw', 'sessionmw.integrations', *ADAPTERS]!r}\n"
        "files = {m: importlib.import_module(m).__file__ for m in mods}\n"
        "print(json.dumps({'files': files, 'top': importlib.util.find_spec('integrations') is not None}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-c", script], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    found = json.loads(result.stdout)
    return found["files"], found["top"]


def test_one_mechanism_puts_the_adapters_under_sessionmw() -> None:
    """The committed link, and no package-dir mapping beside it (mypy cannot follow one)."""
    link = ROOT / "sessionmw" / "integrations"
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    assert link.is_symlink() and link.readlink() == Path("..", "integrations")
    assert "package-dir" not in setuptools
    assert "sessionmw.integrations" in setuptools["packages"]


def test_a_fresh_editable_install_imports_the_adapters_from_the_checkout(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    """What ``pip install -e .`` installs (setuptools' editable wheel, built from a clean copy of
    the checkout) imports every adapter from that copy's ``integrations/`` folder."""
    source = _clean_copy(tmp_path_factory.mktemp("editable-source"))
    out = tmp_path_factory.mktemp("editable")
    build = "import setuptools.build_meta as b, sys; print(b.build_editable(sys.argv[1]))"
    name = subprocess.run(
        [sys.executable, "-c", build, str(out)], cwd=source, capture_output=True, text=True, check=True
    ).stdout.split()[-1]
    site = out / "site"
    zipfile.ZipFile(out / name).extractall(site)
    imported, top = _imported_files(tmp_path, f"site.addsitedir({str(site)!r})")
    files = {module: Path(path).resolve() for module, path in imported.items()}
    assert files["sessionmw"] == (source / "sessionmw" / "__init__.py").resolve()
    assert {m: f.parent for m, f in files.items() if m.startswith("sessionmw.integrations")} == dict.fromkeys(
        ["sessionmw.integrations", *ADAPTERS], (source / "integrations").resolve()
    )
    assert top is False


def test_the_wheel_installs_every_adapter(wheel: Path, tmp_path: Path) -> None:
    """The wheel, unpacked as ``pip install .`` would, imports every adapter from itself."""
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    files, top = _imported_files(tmp_path, f"sys.path.insert(0, {str(site)!r})")
    assert [module for module, path in files.items() if not path.startswith(str(site))] == []
    assert top is False


@pytest.fixture(scope="module", name="sdist")
def _sdist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sdist built from this checkout, and a wheel built from that sdist (``python -m build``)."""
    out = tmp_path_factory.mktemp("sdist")
    source = _clean_copy(tmp_path_factory.mktemp("sdist-source"))
    subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(source)],
        check=True,
        capture_output=True,
    )
    (sdist,) = out.glob("sessionmw-*.tar.gz")
    return sdist


def test_the_sdist_holds_the_adapters_as_files(sdist: Path) -> None:
    """Under ``sessionmw/integrations/`` as plain files (no link to resolve where it is unpacked),
    with the package files; and the wheel built from the sdist ships them all."""
    with tarfile.open(sdist) as archive:
        members = {
            member.name.split("/", 1)[1]: member for member in archive.getmembers() if "/" in member.name
        }
    adapters = [f"sessionmw/integrations/{name.rsplit('.', 1)[1]}.py" for name in ADAPTERS]
    assets = [
        f"sessionmw/integrations/assets/{path.name}" for path in (ROOT / "integrations" / "assets").iterdir()
    ]
    assert [name for name in [*adapters, *assets] if not (name in members and members[name].isfile())] == []
    assert [name for name, member in members.items() if member.issym() or member.islnk()] == []
    (wheel,) = sdist.parent.glob("sessionmw-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert [name for name in [*adapters, *assets] if name not in names] == []


def test_mypy_checks_every_adapter_as_sessionmw_integrations(tmp_path: Path) -> None:
    """Each adapter module is found (not Any): a wrong name in each is reported."""
    probe = tmp_path / "probe.py"
    lines = [f"import {module}" for module in ADAPTERS]
    lines += [f"{module}.no_such_name" for module in ADAPTERS]
    probe.write_text("\n".join(lines) + "\n", encoding="utf-8")
    options = ["--cache-dir", str(tmp_path / "cache"), "--no-error-summary"]
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"), *options, str(probe)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    reported = [line.split(": error: ", 1)[1] for line in result.stdout.splitlines() if ": error: " in line]
    assert reported == ['Module has no attribute "no_such_name"  [attr-defined]' for _ in ADAPTERS], (
        result.stdout + result.stderr
    )


def test_import_linter_sees_every_adapter() -> None:
    """The graph lint-imports checks (grimp's) holds every adapter module under sessionmw."""
    import grimp

    graph = grimp.build_graph("sessionmw", cache_dir=None)
    assert [module for module in ["sessionmw.integrations", *ADAPTERS] if module not in graph.modules] == []


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


def test_wheel_ships_the_compiled_catalogues(wheel: Path, tmp_path: Path) -> None:
    """Every language's compiled catalogue (and its .po, and the .pot) is in the wheel, and an
    install from the wheel speaks German without Babel and without compiling anything."""
    names = set(zipfile.ZipFile(wheel).namelist())
    locale = ROOT / "sessionmw" / "locale"
    shipped = sorted(path.relative_to(ROOT).as_posix() for path in locale.rglob("*") if path.is_file())
    assert [name for name in shipped if name.endswith(".mo")], "no compiled catalogue in sessionmw/locale"
    assert [name for name in shipped if name not in names] == []
    target = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(target)
    script = (
        "import sys; sys.modules['babel'] = None\n"
        "from sessionmw import translate\n"
        "from sessionmw.languages import speaking\n"
        "with speaking('de'):\n"
        "    print(translate(TimeoutError()).title)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "Zeitüberschreitung der Anfrage"


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


#: Private modules whose names are documented too (their public ones are found below).
_DOCUMENTED_PRIVATE = [
    "sessionmw",
    "sessionmw.analytics",
    "sessionmw._breaker",
    "sessionmw._breaker_table",
    "sessionmw.cli",
    "sessionmw._context",
    "sessionmw.demo",
    "sessionmw._errors",
    "sessionmw._figures",
    "sessionmw._guard",
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
    "sessionmw.integrations.quart",
    "sessionmw.integrations.request",
    "sessionmw.integrations.request_session",
    "sessionmw.integrations.websocket",
    "sessionmw.integrations.wsgi",
    "sessionmw._manager",
    "sessionmw.metrics",
    "sessionmw.rendering",
    "sessionmw._retry",
    "sessionmw._session",
    "sessionmw._settings",
    "sessionmw.signals",
    "sessionmw._states",
    "sessionmw.stores",
    "sessionmw.stores.breakers",
    "sessionmw.stores.counters",
    "sessionmw.stores.records",
    "sessionmw.stores.redis_errors",
    "sessionmw.stores._urls",
    "sessionmw.testing",
    "sessionmw.texts",
    "sessionmw.tour",
    "sessionmw._transitions",
    "sessionmw.translation",
]

#: Every public module of the package (no underscored part in its name), and the private ones above.
MODULES = sorted(
    {
        *_DOCUMENTED_PRIVATE,
        "sessionmw",
        *(
            module.name
            for module in pkgutil.walk_packages(sessionmw.__path__, "sessionmw.")
            if not any(part.startswith("_") for part in module.name.split("."))
        ),
    }
)


@pytest.mark.parametrize("module", MODULES)
def test_every_modules_public_names_are_documented(module: str) -> None:
    """Every name in a module's __all__ exists and appears in docs/."""
    import importlib

    docs = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "docs").glob("*.md"))
    imported = importlib.import_module(module)
    assert hasattr(imported, "__all__"), f"{module} has no __all__"
    names: list[str] = list(imported.__all__)
    assert [name for name in names if not hasattr(imported, name)] == []
    assert [name for name in names if f"`{name}" not in docs] == []
