"""CHANGELOG.md keeps the form of Keep a Changelog 1.1.0.

A release heading is ``## [Unreleased]`` or ``## [X.Y.Z] - YYYY-MM-DD``; under it only the six standard
sections, in their order, none of them empty.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

CHANGELOG = Path(__file__).resolve().parents[2] / "CHANGELOG.md"

SECTIONS = ("Added", "Changed", "Deprecated", "Removed", "Fixed", "Security")
VERSION = re.compile(r"\[\d+\.\d+\.\d+\] - \d{4}-\d{2}-\d{2}")
HEADING = re.compile(r"(#{1,6})\s+(.*?)\s*#*\s*$")
COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)


def problems(text: str) -> list[str]:
    """What in ``text`` breaks the form, one line each with its line number; empty when it keeps it."""
    # A comment is not shown, so headings in it do not count; keep its newlines for the line numbers.
    text = COMMENT.sub(lambda match: "\n" * match.group(0).count("\n"), text)
    found: list[str] = []
    release: str | None = None  # the current ``##`` heading
    section: str | None = None  # the current ``###`` heading
    entries = 0  # non-blank lines under the current heading
    opened_at = 0  # line of the current heading
    releases = 0

    def close() -> None:
        """Report the heading just ended if nothing was written under it."""
        if section is not None and entries == 0:
            found.append(f"line {opened_at}: section '### {section}' under '## {release}' is empty")
        elif section is None and release is not None and entries == 0:
            found.append(f"line {opened_at}: release '## {release}' has no section")

    in_fence = False
    for number, line in enumerate(text.splitlines(), start=1):
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
        match = None if in_fence else HEADING.fullmatch(line)
        if match is None:
            if line.strip() and (release is not None or section is not None):
                entries += 1
            continue
        level, title = len(match.group(1)), match.group(2)
        if level == 1:
            if release is not None:
                found.append(f"line {number}: '# {title}' after the first release heading")
            continue
        if level == 2:
            close()
            releases += 1
            if not (title == "[Unreleased]" or VERSION.fullmatch(title)):
                found.append(
                    f"line {number}: '## {title}' is neither '[Unreleased]' nor '[X.Y.Z] - YYYY-MM-DD'"
                )
            elif title == "[Unreleased]" and releases != 1:
                found.append(f"line {number}: '## [Unreleased]' is not the first release")
            release, section, entries, opened_at = title, None, 0, number
            continue
        if level == 3:
            if release is None:
                found.append(f"line {number}: '### {title}' before any release heading")
            elif title not in SECTIONS:
                found.append(f"line {number}: '### {title}' is not one of {', '.join(SECTIONS)}")
            elif section in SECTIONS and SECTIONS.index(title) <= SECTIONS.index(section):
                # Each section once per release, in the standard order.
                found.append(f"line {number}: '### {title}' comes after '### {section}' (out of order)")
            if section is not None:
                close()
            section, entries, opened_at = title, 0, number
            continue
        found.append(f"line {number}: heading '{'#' * level} {title}' is deeper than a section")
        entries += 1
    close()
    return found


def test_the_changelog_keeps_the_form() -> None:
    """CHANGELOG.md has only standard release and section headings, in order, none empty."""
    assert problems(CHANGELOG.read_text(encoding="utf-8")) == []


def test_the_changelog_says_which_conventions_it_follows() -> None:
    """The introduction links Keep a Changelog and Semantic Versioning."""
    intro = CHANGELOG.read_text(encoding="utf-8").split("\n## ", 1)[0]
    assert "https://keepachangelog.com/en/1.1.0/" in intro
    assert "Semantic Versioning" in intro and "https://semver.org/" in intro


GOOD = """# Changelog

## [Unreleased]

### Added

- **Stores:** a thing. (#1)

### Fixed

- **Dash:** a bug. (#2)

## [0.1.0] - 2026-12-31

### Security

- **Session ids:** signed.
"""


def test_a_well_formed_changelog_has_no_problem() -> None:
    """The checker accepts releases and sections as Keep a Changelog writes them."""
    assert problems(GOOD) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            GOOD.replace("### Fixed", "### voice"), "'### voice' is not one of", id="work-stream section"
        ),
        pytest.param(
            GOOD.replace("### Fixed", "### Fixed after the merges"),
            "is not one of",
            id="section with a suffix",
        ),
        pytest.param(GOOD.replace("## [Unreleased]", "## Unreleased"), "neither", id="unbracketed release"),
        pytest.param(GOOD.replace("[0.1.0] - 2026-12-31", "[0.1.0]"), "neither", id="release without date"),
        pytest.param(
            GOOD.replace("[0.1.0] - 2026-12-31", "[0.1] - 2026-12-31"), "neither", id="two-part version"
        ),
        pytest.param(
            GOOD.replace("### Added", "### Security").replace("### Fixed", "### Added"),
            "out of order",
            id="sections out of order",
        ),
        pytest.param(GOOD.replace("### Fixed", "### Added"), "out of order", id="section twice in a release"),
        pytest.param(
            GOOD.replace("- **Dash:** a bug. (#2)\n", ""),
            "'### Fixed' under '## [Unreleased]' is empty",
            id="empty section",
        ),
        pytest.param(
            GOOD.replace("\n- **Session ids:** signed.\n", "\n"),
            "'### Security' under",
            id="empty last section",
        ),
        pytest.param(
            GOOD.replace("## [0.1.0] - 2026-12-31", "## [0.1.0] - 2026-12-31\n\n## [0.0.9] - 2026-11-01"),
            "has no section",
            id="empty release",
        ),
        pytest.param(
            GOOD.replace("## [Unreleased]", "### Added\n\n- early\n\n## [Unreleased]"),
            "before any release heading",
            id="section before any release",
        ),
        pytest.param(GOOD + "\n## [Unreleased]\n\n### Added\n\n- x\n", "not the first", id="unreleased last"),
        pytest.param(GOOD.replace("- **Stores:**", "#### Stores\n\n-"), "deeper than", id="sub-section"),
    ],
)
def test_the_checker_finds_each_break(text: str, expected: str) -> None:
    """Each way of leaving the form is reported."""
    found = problems(text)
    assert any(expected in problem for problem in found), found


def test_headings_in_comments_and_code_do_not_count() -> None:
    """A heading inside an HTML comment or a fenced code block is text, not structure."""
    text = GOOD.replace("- **Stores:** a thing. (#1)", "- a thing\n\n  ```\n  ### voice\n  ```\n")
    assert problems("<!--\n### voice\n-->\n" + text) == []
