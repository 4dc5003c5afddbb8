"""The import layering holds and no module imports itself back (import-linter, as CI runs it)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_import_contracts_are_kept() -> None:
    """Adapters above the core, the core above the stores, the vocabulary at the bottom; no cycle."""
    lint_imports = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run(
        [str(lint_imports), "--no-cache"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert "Contracts: 2 kept, 0 broken." in result.stdout, result.stdout + result.stderr
    assert result.returncode == 0
