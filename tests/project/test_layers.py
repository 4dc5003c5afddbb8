"""The import layering holds and no module imports itself back (import-linter, as CI runs it)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_import_contracts_are_kept() -> None:
    """Operations, adapters, resilience, core, words, stores, model, each above the next; no cycle."""
    lint_imports = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run(
        [str(lint_imports), "--no-cache"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert "Contracts: 2 kept, 0 broken." in result.stdout, result.stdout + result.stderr
    assert result.returncode == 0


def _layers() -> list[list[str]]:
    """The layers contract's layers, top first, each as the full names of its modules."""
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"]
    (contract,) = [c for c in config["contracts"] if c["type"] == "layers"]
    (container,) = contract.get("containers", [""])
    prefix = f"{container}." if container else ""
    return [
        [prefix + name.strip() for name in layer.replace("|", ":").split(":")] for layer in contract["layers"]
    ]


def test_every_module_is_in_exactly_one_layer() -> None:
    """Each module of sessionmw (the adapters and stores through their packages) has its place
    in the architecture, and only one: a new module cannot slip in unlayered."""
    import grimp

    graph = grimp.build_graph("sessionmw", cache_dir=None)
    entries = [entry for layer in _layers() for entry in layer]
    places = {
        module: [entry for entry in entries if module == entry or module.startswith(entry + ".")]
        for module in graph.modules
        if module != "sessionmw"
    }
    assert {module: found for module, found in places.items() if len(found) != 1} == {}
    assert 5 <= len(_layers()) <= 7  # an architecture, not today's import order
