"""Every ```python block in README.md and docs/*.md runs, and every link between them finds its target.

The blocks of one file run in order in one namespace (like a notebook), with ``__name__`` set to
``"docs_example"`` so ``if __name__ == "__main__":`` guards keep servers from starting, and with
the working directory set to a temporary folder.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
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


_LINK = re.compile(r"\]\(([^)\s]+)\)")
_HEADING = re.compile(r"^#{1,6} (.+)$", re.MULTILINE)
_FENCE = re.compile(r"^```.*?^```", re.DOTALL | re.MULTILINE)


def anchors(page: Path) -> set[str]:
    """The anchors of the page's headings, as GitHub makes them (lowercase, punctuation dropped,
    spaces as hyphens, a repeated heading numbered)."""
    text = _FENCE.sub("", page.read_text(encoding="utf-8"))
    seen: dict[str, int] = {}
    made: set[str] = set()
    for heading in _HEADING.findall(text):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        made.add(slug if count == 0 else f"{slug}-{count}")
    return made


def local_links(page: Path) -> list[str]:
    """The page's links to files of this repository (not to the web), outside code blocks."""
    text = _FENCE.sub("", page.read_text(encoding="utf-8"))
    return [link for link in _LINK.findall(text) if "://" not in link and not link.startswith("mailto:")]


@pytest.mark.parametrize("page", [p for p in PAGES if local_links(p)], ids=lambda p: p.name)
def test_page_links_lead_somewhere(page: Path) -> None:
    """Every link to another page (or a heading of one) finds it: a renamed heading breaks no link."""
    broken = []
    for link in local_links(page):
        path, _, anchor = link.partition("#")
        target = (page.parent / path).resolve() if path else page
        if not target.exists():
            broken.append(f"{link}: no file {path}")
        elif anchor and target.suffix == ".md" and anchor not in anchors(target):
            broken.append(f"{link}: no heading #{anchor} in {target.name}")
    assert not broken, f"{page.name}: " + "; ".join(broken)
