"""scripts/host-suites keeps its promises: the plugins attach sessionmw to every app the host suites
build, and every difference the script accepts is listed, with its reason, in the docs."""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
PLUGINS = ROOT / "tests" / "host_suites"
#: The page and section that list the ASGI hosts' differences, one test per line.
ASGI_PAGE = ROOT / "docs" / "host-suites.md"
ASGI_SECTION = "## What the host suites show"


def host_suites() -> ModuleType:
    """scripts/host-suites, loaded as a module (it has no .py suffix)."""
    path = str(ROOT / "scripts" / "host-suites")
    loader = importlib.machinery.SourceFileLoader("host_suites_script", path)
    spec = importlib.util.spec_from_loader("host_suites_script", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    loader.exec_module(module)
    return module


def section(page: Path, heading: str) -> str:
    """The text of the section under ``heading`` (up to the next heading of its level or above)."""
    text = page.read_text(encoding="utf-8")
    start = text.index(heading)
    level = heading.split(" ")[0]
    rest = text[start + len(heading) :]
    ends = [m.start() for m in re.finditer(rf"^#{{1,{len(level)}}} ", rest, re.MULTILINE)]
    return rest[: ends[0]] if ends else rest


def listed(text: str) -> set[tuple[str, str, str]]:
    """The (suite, mode, test id) triples a docs section lists as ``- `suite (mode, ...): test id``` lines."""
    found = re.findall(r"^- `(\w+) \(([\w, ]+)\): ([^`]+)`", text, re.MULTILINE)
    return {(suite, mode, test) for suite, modes, test in found for mode in modes.split(", ")}


def test_every_accepted_asgi_difference_is_listed_in_the_docs_with_its_reason_and_nothing_else() -> None:
    script = host_suites()
    shown = section(ASGI_PAGE, ASGI_SECTION)
    accepted = {
        (suite.name, mode, test)
        for suite in script.SUITES
        if suite.name != "flask"
        for mode, tests in suite.documented.items()
        for test in tests
    }
    assert listed(shown) == accepted
    reasons = {
        reason for suite in script.SUITES if suite.name != "flask" for tests in suite.documented.values()
        for reason in tests.values()
    }  # fmt: skip
    assert [reason for reason in reasons if reason.lower() not in shown.lower()] == []


def test_a_documented_difference_holds_for_every_parametrization_of_its_test() -> None:
    script = host_suites()
    assert script.unparametrized("tests.m::test_x[asyncio-True]") == "tests.m::test_x"
    assert script.unparametrized("tests.m::test_x") == "tests.m::test_x"


def test_every_suite_runs_each_mode_it_documents() -> None:
    for suite in host_suites().SUITES:
        assert set(suite.documented) == set(suite.modes), suite.name


def attached(mode: str, code: str) -> str:
    """Run ``code`` in a fresh interpreter with the ASGI host plugin loaded in ``mode``; its output."""
    env = dict(os.environ, SESSIONMW_HOST_MODE=mode, PYTHONPATH=str(PLUGINS))
    done = subprocess.run(
        [sys.executable, "-c", "import sessionmw_asgi_host_plugin\n" + code],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return done.stdout.strip()


_STACK = """
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from fastapi import FastAPI

for cls in (Starlette, FastAPI):
    app = cls(middleware=[Middleware(GZipMiddleware)])
    layers, layer = [], app.build_middleware_stack()
    while layer is not None:
        layers.append(type(layer).__name__)
        layer = getattr(layer, "app", None)
    print(cls.__name__, len(app.user_middleware), " ".join(layers[:4]))
"""


def test_the_middleware_mode_puts_sessionmw_outermost_among_the_user_middleware() -> None:
    assert attached("middleware", _STACK).splitlines() == [
        "Starlette 1 ServerErrorMiddleware SessionMiddleware GZipMiddleware ExceptionMiddleware",
        "FastAPI 1 ServerErrorMiddleware ExceptionTelemetryMiddleware AppBodyLimitMiddleware "
        "SessionMiddleware",
    ]


def test_the_outer_mode_wraps_the_whole_stack() -> None:
    lines = attached("outer", _STACK).splitlines()
    assert [line.split(" ")[:4] for line in lines] == [
        ["Starlette", "1", "SessionMiddleware", "ServerErrorMiddleware"],
        ["FastAPI", "1", "SessionMiddleware", "ServerErrorMiddleware"],
    ]


def test_the_bare_mode_attaches_nothing() -> None:
    assert "SessionMiddleware" not in attached("bare", _STACK)


@pytest.mark.parametrize("mode", ["extension"])
def test_the_extension_mode_puts_sessionmw_on_every_quart_app(mode: str) -> None:
    out = attached(mode, "from quart import Quart\nprint(sorted(Quart('a').extensions))")
    assert "sessionmw" in out


def test_a_difference_is_run_again_by_its_pytest_node_id(tmp_path: Path) -> None:
    (tmp_path / "tests" / "middleware").mkdir(parents=True)
    (tmp_path / "tests" / "middleware" / "test_cors.py").touch()
    script = host_suites()
    assert (
        script.node_id(tmp_path, "tests.middleware.test_cors::test_x[asyncio]")
        == "tests/middleware/test_cors.py::test_x[asyncio]"
    )
    assert (
        script.node_id(tmp_path, "tests.middleware.test_cors.TestY::test_z")
        == "tests/middleware/test_cors.py::TestY::test_z"
    )


def test_the_output_says_no_failed_before_the_verdict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A suite with a documented difference, run bare and attached: the output names each run and
    gives the verdict, with no pytest summary line ("1 failed") that alarms a reader before the
    line saying the difference is documented (issue 27)."""
    script = host_suites()
    monkeypatch.setattr(script, "CACHE", tmp_path / "cache")
    monkeypatch.setattr(script, "PLUGIN_DIR", tmp_path / "plugins")
    (tmp_path / "cache").mkdir()
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "quiet_host_plugin.py").write_text("", encoding="utf-8")
    source = tmp_path / "host"
    (source / "tests").mkdir(parents=True)
    (source / "tests" / "test_host.py").write_text(
        "import os\n\n\ndef test_same():\n    pass\n\n\n"
        "def test_differs():\n    assert os.environ['SESSIONMW_HOST_MODE'] == 'bare'\n",
        encoding="utf-8",
    )
    suite = script.Suite(
        "host", "Host", "quiet_host_plugin", {"middleware": "with sessionmw"},
        {"middleware": {"tests.test_host::test_differs": "why it differs"}},
    )  # fmt: skip
    results = {mode: script.run(sys.executable, suite, source, mode) for mode in ("bare", "middleware")}
    assert results["middleware"]["tests.test_host::test_differs"] == "failed"
    assert script.compare(suite, results) == 0
    out = capsys.readouterr().out
    assert not re.search(r"\d+ (failed|passed)", out), out
    assert "== host middleware: OK: no new failure; 1 tests behave differently" in out, out


def test_quarts_tests_come_from_a_pinned_archive_of_the_quart_they_run_against() -> None:
    """CI reaches PyPI and Debian's archive only, and Quart's sdists carry no tests: its suite comes from
    Debian's copy of the upstream release, pinned by URL and SHA256, and runs against that release."""
    (quart,) = [suite for suite in host_suites().SUITES if suite.name == "quart"]
    archive = quart.archive
    assert archive is not None
    assert archive.url.startswith("http://deb.debian.org/debian/pool/main/q/quart/")
    assert archive.url.endswith(f"/quart_{archive.version}.orig.tar.xz")
    assert re.fullmatch(r"[0-9a-f]{64}", archive.sha256)
    assert {"pytest-asyncio", "python-dotenv"} <= set(archive.needs)
    page = ASGI_PAGE.read_text(encoding="utf-8")
    assert archive.url in page and archive.sha256 in page and f"Quart {archive.version}" in page


def _archive(tmp_path: Path) -> tuple[Path, str]:
    """A tar.xz of ``host-1.0/tests/test_x.py``, and its SHA256."""
    tree = tmp_path / "tree" / "host-1.0" / "tests"
    tree.mkdir(parents=True)
    (tree / "test_x.py").write_text("def test_x():\n    pass\n", encoding="utf-8")
    path = tmp_path / "host_1.0.orig.tar.xz"
    with tarfile.open(path, "w:xz") as tar:
        tar.add(tmp_path / "tree" / "host-1.0", arcname="host-1.0")
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


def _suite(script: ModuleType, url: str, sha256: str) -> Any:
    archive = script.Archive(url, sha256, "1.0", needs=("pytest",))
    return script.Suite("host", "Host", "plugin", {}, {}, archive=archive)


def test_an_archive_is_downloaded_checked_and_unpacked_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = host_suites()
    monkeypatch.setattr(script, "CACHE", tmp_path / "cache")
    path, digest = _archive(tmp_path)
    suite = _suite(script, path.as_uri(), digest)
    source = script.archive_tests(suite, suite.archive)
    assert source == tmp_path / "cache" / "host-1.0"
    assert (source / "tests" / "test_x.py").is_file()
    path.unlink()  # the cached tree serves from now on
    assert script.archive_tests(suite, suite.archive) == source


def test_an_archive_that_fails_its_checksum_stops_the_run_and_is_not_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = host_suites()
    monkeypatch.setattr(script, "CACHE", tmp_path / "cache")
    path, _ = _archive(tmp_path)
    suite = _suite(script, path.as_uri(), "0" * 64)
    with pytest.raises(SystemExit, match="not the pinned 0000"):
        script.archive_tests(suite, suite.archive)
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == []


def test_an_archive_that_cannot_be_downloaded_stops_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = host_suites()
    monkeypatch.setattr(script, "CACHE", tmp_path / "cache")
    suite = _suite(script, (tmp_path / "absent.tar.xz").as_uri(), "0" * 64)
    with pytest.raises(SystemExit, match="could not download"):
        script.archive_tests(suite, suite.archive)
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == []


def test_the_suites_own_venv_takes_its_tests_pins_and_is_reused_while_they_hold(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = host_suites()
    monkeypatch.setattr(script, "CACHE", tmp_path / "cache")
    source = tmp_path / "host-1.0"
    (source / "requirements").mkdir(parents=True)
    (source / "requirements" / "tests.txt").write_text(
        "# via uv\npytest==8.3.3\n    # via -r tests.in\npytest-asyncio==0.24.0\n", encoding="utf-8"
    )
    assert script.pins(source) == {"pytest": "8.3.3", "pytest-asyncio": "0.24.0"}
    venv = tmp_path / "cache" / "host-1.0-venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").touch()
    wanted = ["host==1.0", "pytest==8.3.3", "pytest-asyncio==0.24.0", "hypothesis"]
    stamp = "\n".join([*wanted, script.sha256(ROOT / "pyproject.toml")])
    (venv / "sessionmw-host-suite.txt").write_text(stamp, encoding="utf-8")

    def no_install(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"installed again: {args}")

    monkeypatch.setattr(script.subprocess, "run", no_install)
    needs = ("pytest", "pytest-asyncio", "hypothesis")
    assert script.own_venv(_suite(script, "", ""), "1.0", needs, source) == str(venv / "bin" / "python")
