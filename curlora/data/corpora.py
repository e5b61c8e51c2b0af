"""Perplexity corpora by name: held-out Wikipedia (offline) or WikiText-2 (hub), or a text file."""

from __future__ import annotations

from pathlib import Path

from curlora.data.hub import wikitext2_text
from curlora.data.offline import wiki_heldout_text

CORPORA = {"wiki-heldout": wiki_heldout_text, "wikitext-2": wikitext2_text}


def load_corpus(name: str) -> str:
    """A perplexity corpus: 'wiki-heldout' (offline), 'wikitext-2' (hub), or a UTF-8 text file."""
    if name in CORPORA:
        return CORPORA[name]()
    path = Path(name).expanduser()
    if path.is_file():
        return path.read_text(encoding="utf-8")
    raise ValueError(
        f"Unknown corpus {name!r}; choose one of {', '.join(CORPORA)}, or give a text file path."
    )
