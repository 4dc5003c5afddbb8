"""Every ```python block in README.md and docs/*.md runs.

The blocks of one file run in order in one namespace (like a notebook), with ``__name__`` set to
``"docs_example"`` so ``if __name__ == "__main__":`` guards keep servers from starting, and with
the working directory set to a temporary folder.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def python_blocks(page: Path) -> list[str]:
    """The page's python code blocks, in order."""
    return _BLOCK.findall(page.read_text(encoding="utf-8"))


@pytest.mark.parametrize("page", [p for p in PAGES if python_blocks(p)], ids=lambda p: p.name)
def test_page_examples_run(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The page's examples run top to bottom without an error."""
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "docs_example"}
    for number, block in enumerate(python_blocks(page), 1):
        code = compile(block, f"{page.name}[block {number}]", "exec")
        exec(code, namespace)
