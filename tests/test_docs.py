"""The README and docs/ link to each other by relative paths and #anchors: every one must lead somewhere.

The README is the short introduction and docs/ the reference, so most of what a reader looks for is
one link away; a section renamed or a page moved must not leave a dead link behind.
"""

import re
from pathlib import Path

import pytest

from tests.conftest import REPO

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")  # [text](target) and ![alt](target)
CODE_BLOCK = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)


def heading_anchors(page: Path) -> set[str]:
    """The #anchors GitHub gives a page's headings: lower case, punctuation dropped, spaces to hyphens,
    repeated headings numbered."""
    anchors: set[str] = set()
    for line in CODE_BLOCK.sub("", page.read_text()).splitlines():
        heading = re.match(r"#{1,6}\s+(.*)", line)
        if not heading:
            continue
        slug = re.sub(r"[^\w\- ]", "", heading.group(1).strip().lower()).replace(" ", "-")
        anchor, n = slug, 0
        while anchor in anchors:
            n += 1
            anchor = f"{slug}-{n}"
        anchors.add(anchor)
    return anchors


def relative_links(page: Path) -> list[str]:
    text = CODE_BLOCK.sub("", page.read_text())
    return [t for t in LINK.findall(text) if not re.match(r"[a-z]+:", t)]  # not http:, mailto:


def test_the_anchor_rule_is_githubs():
    page = REPO / "README.md"
    assert "serving-the-rest-api" in heading_anchors(page)
    assert "set-up-two-commands" in heading_anchors(page)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_leads_to_a_file_and_heading(page):
    dead = []
    for link in relative_links(page):
        path, _, anchor = link.partition("#")
        target = (page.parent / path).resolve() if path else page
        if not target.exists():
            dead.append(f"{link}: no such file")
        elif anchor and target.suffix == ".md" and anchor not in heading_anchors(target):
            dead.append(f"{link}: no such heading in {target.relative_to(REPO)}")
    assert not dead, dead


def test_the_readme_stays_an_introduction():
    # The reference (every flag, error code, setting and figure) lives in docs/, one link away.
    lines = (REPO / "README.md").read_text().count("\n")
    assert lines <= 300, f"README.md has {lines} lines; move reference material to docs/"
