"""Where curlora keeps files and how it writes them: one cache root, atomic writes, safe keys."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

#: Environment variable that moves every cache (models, data, results) elsewhere.
CACHE_ENV = "CURLORA_CACHE"
#: Environment variable that moves only experiment results (e.g. into a project folder).
RESULTS_ENV = "CURLORA_RESULTS"


def cache_root() -> Path:
    """The cache folder: $CURLORA_CACHE, else $XDG_CACHE_HOME/curlora, else ~/.cache/curlora."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "curlora"


def results_root() -> Path:
    """Where experiment results live: $CURLORA_RESULTS, else <cache root>/results."""
    if os.environ.get(RESULTS_ENV):
        return Path(os.environ[RESULTS_ENV]).expanduser()
    return cache_root() / "results"


def safe_name(key: str) -> str:
    """A file name for ``key`` that cannot leave its folder: readable part plus a short hash."""
    readable = re.sub(r"[^A-Za-z0-9_.-]+", "-", key).strip(".-")[:60] or "key"
    return f"{readable}-{hashlib.sha256(key.encode()).hexdigest()[:16]}"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path`` in one step.

    A reader therefore sees the old file or the complete new one, never a half-written file,
    even if the writer is killed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.")) / path.name
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            if tmp.is_dir():
                shutil.rmtree(tmp)
            else:
                tmp.unlink()
        tmp.parent.rmdir()


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically; returns the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)
