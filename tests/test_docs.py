"""The README and docs/ as a reader clicks through them: every relative link and image resolves
inside the repository, the README stays a first read, and nothing in the repository cites a file
that a user's clone does not have."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
PAGES = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
# Markdown links and images, [text](target) and ![alt](target), and HTML src/href attributes.
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)|(?:src|href)=\"([^\"]+)\"")
# Folders a clone does not hold or that kexp generates: never searched for citations.
GENERATED = {".git", ".venv", "runs", "__pycache__", ".pytest_cache", "build"}
# The notes kexp was built from, outside the repository; written so as not to match itself.
OUTSIDE_NOTES = re.compile(r"KERAS[_]FACTS|\.\.[/]shared|shared[/]STYLE")


def relative_links(page: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)  # code blocks
    targets = [first or second for first, second in LINK.findall(text)]
    return [target for target in targets
            if not re.match(r"[a-z]+:", target) and not target.startswith("#")]


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_every_relative_link_and_image_resolves_inside_the_repository(page):
    links = relative_links(page)
    assert links or page.name != "README.md"
    for target in links:
        resolved = (page.parent / target.split("#")[0]).resolve()
        assert resolved.is_relative_to(REPO_ROOT), (page.name, target)
        assert resolved.exists(), (page.name, target)


def test_the_readme_links_every_docs_page_and_stays_a_first_read():
    readme = REPO_ROOT / "README.md"
    linked = {(REPO_ROOT / target).resolve() for target in relative_links(readme)}
    assert set(PAGES[1:]) <= linked, "a docs page the README does not link"
    assert len(readme.read_text(encoding="utf-8").splitlines()) <= 200


def test_no_file_cites_notes_outside_the_repository():
    citing = []
    for path in REPO_ROOT.rglob("*"):
        parts = set(path.relative_to(REPO_ROOT).parts)
        if (parts & GENERATED or any(part.startswith(".venv") for part in parts)
                or not path.is_file() or path.suffix not in {".py", ".md", ".txt", ".toml", ""}):
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        if OUTSIDE_NOTES.search(text):
            citing.append(str(path.relative_to(REPO_ROOT)))
    assert citing == []
