"""The repository's text stands on its own: no reference to material outside it, no dead links."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: A path into the team's shared folder, which a clone of this repository does not have.
OUTSIDE = re.compile(r"(^|[^a-z./])(\.\./)*shared/[a-z_]+\.md")
LINK = re.compile(r"\]\(([^)#\s]+)(#[^)]*)?\)")


def _tracked(*patterns: str) -> list[Path]:
    out = subprocess.run(
        ["git", "ls-files", *patterns], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    return [ROOT / p for p in out if (ROOT / p).is_file()]


def test_nothing_cites_a_path_outside_the_repository():
    files = _tracked("*.py", "*.md", "*.ipynb", "Makefile", "*.toml", "*.yml")
    cited = [str(p.relative_to(ROOT)) for p in files if OUTSIDE.search(p.read_text())]
    assert not cited, f"these cite shared/, which a clone does not have; cite docs/: {cited}"


def test_relative_links_in_markdown_resolve():
    dead = []
    for page in _tracked("*.md"):
        for target, _ in LINK.findall(page.read_text()):
            if "://" in target or target.startswith("mailto:"):
                continue
            if not (page.parent / target).exists():
                dead.append(f"{page.relative_to(ROOT)} → {target}")
    assert not dead, "dead links: " + "; ".join(dead)
