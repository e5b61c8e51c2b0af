"""Target domains for continued language-model training: a folder of text files, split by file.

A domain is what a model is adapted *to* in the second protocol (continued training, as in
Biderman et al. 2024, "LoRA Learns Less and Forgets Less"). Every file is assigned to a split
by a hash of its path inside the folder — so a file lands in the same split on every machine —
and never cut across splits: held-out text is text from files the model never trained on.

``python-stdlib`` is the running interpreter's own standard library (real code, PSF-licensed,
offline). Any folder of UTF-8 files is a domain too: ``load_domain("path/to/folder")``.
"""

from __future__ import annotations

import hashlib
import sys
import sysconfig
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import torch

#: Of every ten path-hash buckets: one is held out for evaluation (reported), one for validation
#: (choosing rates), eight are training text.
SPLIT_BUCKETS = {"eval": (0,), "val": (1,), "train": (2, 3, 4, 5, 6, 7, 8, 9)}
#: Held-out text is read up to this many characters per split (files in path-hash order): more
#: than any window sample the protocol draws, without tokenising every held-out file.
HELDOUT_CHARS = 300_000
#: Standard-library folders left out of ``python-stdlib``: test suites, generated or vendored
#: code, codec tables, the IDE and demos — not code a person writes.
STDLIB_SKIPPED = (
    "test",
    "tests",
    "idle_test",
    "idlelib",
    "site-packages",
    "lib2to3",
    "__pycache__",
    "pydoc_data",
    "encodings",
    "turtledemo",
    "ensurepip",
)


def _path_hash(relative: str) -> int:
    return int(hashlib.sha256(relative.encode()).hexdigest()[:12], 16)


@dataclass(frozen=True)
class Domain:
    """The files of ``root`` matching ``pattern`` (outside ``skipped`` folders, at most
    ``max_bytes`` each: larger ones are mostly generated tables)."""

    name: str
    root: Path
    pattern: str = "*"
    skipped: tuple[str, ...] = ()
    max_bytes: int = 100_000

    def files(self) -> tuple[tuple[str, str], ...]:
        """(relative path, text) of every usable file, in path-hash order."""
        listing = _listing(self.root, self.pattern, self.skipped, self.max_bytes)
        found = _read_files(self.root, listing)
        if not found:
            raise FileNotFoundError(
                f"No readable UTF-8 files matching {self.pattern!r} were found under {self.root}. "
                "A domain is a folder of text files (the python-stdlib domain needs the "
                "interpreter's .py sources; some minimal images ship only .pyc files)."
            )
        return found

    def split_files(self, split: str) -> list[tuple[str, str]]:
        """The (path, text) files of one split: 'train', 'val' or 'eval'."""
        if split not in SPLIT_BUCKETS:
            raise ValueError(f"Unknown split {split!r}; choose one of {', '.join(SPLIT_BUCKETS)}.")
        found = [f for f in self.files() if _path_hash(f[0]) % 10 in SPLIT_BUCKETS[split]]
        if not found:
            raise ValueError(
                f"Domain {self.name!r} has no {split} files: {len(self.files())} file(s) in all, "
                "and a file's split is one of ten path-hash buckets. Give a folder with more "
                "files (a few dozen at least)."
            )
        return found

    def heldout_text(self, split: str) -> str:
        """Held-out text of 'val' or 'eval', files one after another (blank-line joined)."""
        if split == "train":
            raise ValueError("heldout_text reads 'val' or 'eval'; training text is read per seed.")
        out, size = [], 0
        for _, text in self.split_files(split):
            if size >= HELDOUT_CHARS:
                break
            out.append(text)
            size += len(text)
        return "\n\n".join(out)

    def train_blocks(self, tokenizer, count: int, length: int, seed: int) -> torch.Tensor:
        """``count`` blocks of ``length`` tokens (count × length) for ``seed``: training files in
        a seeded order, each ended by the end-of-text token, read until the blocks are full."""
        files = self.split_files("train")
        order = np.random.default_rng(seed).permutation(len(files))
        end = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
        needed, ids = count * length, []
        for k in order:
            ids.extend(tokenizer(files[k][1]).input_ids + end)
            if len(ids) >= needed:
                return torch.tensor(ids[:needed]).view(count, length)
        raise ValueError(
            f"Domain {self.name!r} has {len(ids):,} training tokens; {count} blocks of {length} "
            "need "
            f"{needed:,}. Train fewer steps or shorter blocks, or give a larger domain."
        )

    def summary(self) -> pd.DataFrame:
        """Per split: files, characters, and the first few file names (path-hash order)."""
        return pd.DataFrame(
            [
                {
                    "split": split,
                    "files": len(files),
                    "characters": sum(len(t) for _, t in files),
                    "for example": ", ".join(p for p, _ in files[:3]),
                }
                for split in SPLIT_BUCKETS
                for files in [self.split_files(split)]
            ]
        ).set_index("split")

    def fingerprint(self) -> dict:
        """What the domain's content is: a hash of every file used (and the Python version for
        the standard library, whose files change with it)."""
        digest = hashlib.sha256()
        for relative, text in self.files():
            digest.update(relative.encode())
            digest.update(hashlib.sha256(text.encode()).digest())
        out = {"files": len(self.files()), "sha256": digest.hexdigest()[:20]}
        if self.name == "python-stdlib":
            out["python"] = ".".join(map(str, sys.version_info[:3]))
        return out


def _listing(
    root: Path, pattern: str, skipped: tuple[str, ...], max_bytes: int
) -> tuple[tuple[str, int, int], ...]:
    """(relative path, size, modification time) of the candidate files: reading is cached on
    it, so an edited file is read again (a content-keyed cache must see the edit)."""
    found = []
    for path in root.rglob(pattern):
        parts = path.relative_to(root).parts
        if not path.is_file() or set(parts[:-1]) & set(skipped):
            continue
        stat = path.stat()
        if stat.st_size <= max_bytes:
            found.append((path.relative_to(root).as_posix(), stat.st_size, stat.st_mtime_ns))
    return tuple(sorted(found))


@lru_cache(maxsize=4)
def _read_files(
    root: Path, listing: tuple[tuple[str, int, int], ...]
) -> tuple[tuple[str, str], ...]:
    found = []
    for relative, _, _ in listing:
        try:
            text = (root / relative).read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue  # another encoding, or unreadable: not part of the domain
        if text.strip():
            found.append((relative, text))
    return tuple(sorted(found, key=lambda f: (_path_hash(f[0]), f[0])))


def python_stdlib() -> Domain:
    """The running interpreter's standard-library modules."""
    root = Path(sysconfig.get_paths()["stdlib"])
    return Domain("python-stdlib", root, "*.py", STDLIB_SKIPPED)


DOMAINS = {"python-stdlib": python_stdlib}


def load_domain(name: str) -> Domain:
    """A registered domain ('python-stdlib') or a folder of UTF-8 text files."""
    if name in DOMAINS:
        return DOMAINS[name]()
    root = Path(name).expanduser()
    if root.is_dir():
        return Domain(root.name, root.resolve())
    raise ValueError(
        f"Unknown domain {name!r}; choose one of {', '.join(DOMAINS)}, or give a folder of "
        "UTF-8 text files (each file goes whole to train, validation or evaluation)."
    )
