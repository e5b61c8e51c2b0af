"""The results cache: one folder per run, a stage file pair per finished task, a results file.

Every file is written atomically (a reader sees the old file or the whole new one). A run's
folder is claimed with a lock while it is computed, so two workers given the same spec never
train it twice: the second waits, then reads the first one's results. A cache entry that cannot
be read (cut short by a full disk or a crashed copy) is set aside with a warning that names it,
and the run recomputes from the last readable stage. Only a process holding the entry's lock
sets it aside: a reader without it might otherwise move a sound file that another process had
just written in its place.

Runs whose task orders begin alike share those first stages: a finished stage is published
under a key of everything it depends on (the spec cut to the tasks so far), and a run that
lacks a stage copies it from any run that published the same key instead of training it.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import shutil
import time
import warnings
import zlib
from collections.abc import Iterator
from pathlib import Path

import torch
from filelock import FileLock
from safetensors.torch import load_file, save_file

from curlora.experiment.domain_results import DomainResults
from curlora.experiment.domain_spec import DomainSpec
from curlora.experiment.records import StageRecord
from curlora.experiment.results import Results
from curlora.experiment.spec import ExperimentSpec
from curlora.storage import atomic_path, results_root, safe_name, write_text


class CacheWarning(UserWarning):
    """A cache entry was unreadable and has been set aside for recomputation."""


def run_folder(spec: ExperimentSpec | DomainSpec) -> Path:
    """Where a spec's stages and results live (under the results root, named by its key)."""
    return results_root() / safe_name(f"{spec.label()}-{spec.key()}")


@contextlib.contextmanager
def claim(folder: Path) -> Iterator[None]:
    """Hold the run's lock (an OS file lock, released even if the process dies)."""
    folder.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder / ".lock")):
        yield


def set_aside(path: Path, error: Exception) -> None:
    """Move an unreadable cache file out of the way, saying which and why."""
    stamp = f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    dest = path.with_name(f"{path.name}.corrupt-{stamp}")
    try:
        os.replace(path, dest)
    except FileNotFoundError:
        return  # already moved by another process of the same run (torchrun ranks)
    warnings.warn(
        f"Cache entry {path} could not be read ({type(error).__name__}: {error}); moved it to "
        f"{dest.name} and recomputing it.",
        CacheWarning,
        stacklevel=3,
    )


#: A finished run's record: gzip-compressed JSON (a few tens of kB, small enough to commit).
RESULTS_FILE = "results.json.gz"


#: What reading a damaged cache file raises: gzip and zlib (cut short, flipped bytes), JSON,
#: a record without the expected fields, or the file vanishing while it is read.
UNREADABLE = (OSError, EOFError, zlib.error, ValueError, KeyError, TypeError)


def read_results(
    folder: Path, repair: bool = False, record: type = Results
) -> Results | DomainResults | None:
    """The finished run's results (a ``record``: ``Results``, or ``DomainResults`` for protocol
    2), or None if absent or unreadable.

    ``repair=True`` (only while holding the run's ``claim``) sets an unreadable file aside.
    """
    path = folder / RESULTS_FILE
    if not path.is_file():
        return None
    try:
        return record.from_payload(json.loads(gzip.decompress(path.read_bytes())))
    except UNREADABLE as err:
        if repair:
            set_aside(path, err)
        return None


def write_results(folder: Path, results: Results | DomainResults) -> None:
    """Write the run's results atomically (gzip-compressed JSON)."""
    data = json.dumps(results.to_payload(), separators=(",", ":")).encode()
    with atomic_path(folder / RESULTS_FILE) as tmp:
        # mtime=0: the same results give the same bytes.
        tmp.write_bytes(gzip.compress(data, mtime=0))


def rounded(value):
    """Floats (nested in lists and dicts) to 4 significant digits: per-layer statistics are
    kept at the precision a figure needs, so each run's record stays a few tens of kB."""
    if isinstance(value, float):
        return float(f"{value:.4g}")
    if isinstance(value, list):
        return [rounded(v) for v in value]
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    return value


def save_stage(
    folder: Path, index: int, record: StageRecord, tensors: dict[str, torch.Tensor]
) -> None:
    """Save a finished task: tensors first, then the JSON that marks the stage complete."""
    with atomic_path(folder / f"stage{index}.safetensors") as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp))
    write_text(folder / f"stage{index}.json", json.dumps(record.to_dict()))


def load_stages(
    folder: Path, n_tasks: int, repair: bool = True
) -> tuple[list[StageRecord], dict[str, torch.Tensor]]:
    """The readable finished stages' records, and the last one's tensors.

    With ``repair`` (the process holding the run's ``claim``), the first unreadable stage and
    every later one are set aside: a stage is only meaningful on top of the stages before it.
    """
    records, tensors = [], {}
    for i in range(n_tasks):
        marker, weights = folder / f"stage{i}.json", folder / f"stage{i}.safetensors"
        if not (marker.is_file() and weights.is_file()):
            break
        failed = marker
        try:
            record = StageRecord.from_dict(json.loads(marker.read_text()))
            failed = weights
            stage_tensors = load_file(str(weights))
        except Exception as err:  # JSON errors, SafetensorError, OSError, ...
            if repair:
                _set_aside_from(folder, i, n_tasks, failed, err)
            break
        records.append(record)
        tensors = stage_tensors
    return records, tensors


def _set_aside_from(folder: Path, first: int, n_tasks: int, failed: Path, err: Exception) -> None:
    """Set aside stage ``first`` (unreadable at ``failed``) and every later stage."""
    for j in range(first, n_tasks):
        for path in (folder / f"stage{j}.json", folder / f"stage{j}.safetensors"):
            if path.is_file():
                reason = (
                    err
                    if path == failed
                    else RuntimeError(f"it belongs with {failed.name}, which was unreadable")
                )
                set_aside(path, reason)


#: Where finished stages are published for runs whose task orders share a prefix.
SHARED_STAGES = "shared-stages"


def stage_key(spec: ExperimentSpec, index: int) -> str:
    """What stage ``index`` depends on: the spec cut to its first index + 1 tasks, and whether
    the run measures perplexity there (two orders with the same prefix get the same key)."""
    prefix = spec.replace(tasks=spec.tasks[: index + 1])
    return f"{prefix.key()}-{'ppl' if spec.measures_perplexity_after(index) else 'noppl'}"


def _shared_stage_entry(folder: Path, spec: ExperimentSpec, index: int) -> Path:
    """Where stage ``index`` of ``spec`` is published, beside the run folders."""
    return folder.parent / SHARED_STAGES / f"{stage_key(spec, index)}.json"


def publish_stage(folder: Path, spec: ExperimentSpec, index: int) -> None:
    """Record that ``folder`` holds a finished stage ``index`` for others with the same prefix."""
    write_text(
        _shared_stage_entry(folder, spec, index),
        json.dumps({"folder": folder.name, "stage": index}),
    )


def adopt_stages(folder: Path, spec: ExperimentSpec, start: int) -> int:
    """Copy stages ``start``, ``start + 1``, … that other runs published for this spec's task
    prefix into ``folder``; returns how many were copied (they load like the run's own)."""
    copied = 0
    for i in range(start, len(spec.tasks)):
        entry = _shared_stage_entry(folder, spec, i)
        try:
            source = folder.parent / json.loads(entry.read_text())["folder"]
        except (OSError, ValueError, KeyError, TypeError):
            break  # not published (or an unreadable entry: the stage is computed and republished)
        # Tensors before the JSON marker, as save_stage writes them.
        files = [f"stage{i}.safetensors", f"stage{i}.json"]
        if source == folder or not all((source / f).is_file() for f in files):
            break
        try:
            for name in files:
                with atomic_path(folder / name) as tmp:
                    shutil.copyfile(source / name, tmp)
        except OSError:
            break  # the source moved (set aside, deleted) while copying: train the stage instead
        copied += 1
    return copied


def shared_path(
    spec: ExperimentSpec | DomainSpec,
    kind: str,
    fields: tuple[str, ...],
    suffix: str,
    **extra: object,
) -> Path:
    """Where a value shared between runs is cached: named by the spec ``fields`` it depends on,
    the model's source and ``extra``, so every run that agrees on them finds it."""
    key = {f: getattr(spec, f) for f in fields} | {"model_source": spec.sources()["model"]} | extra
    return results_root() / kind / f"{safe_name(json.dumps(key, sort_keys=True))}{suffix}"


@contextlib.contextmanager
def _held(path: Path) -> Iterator[None]:
    """Hold a shared value's lock: one process computes it while the others wait to read it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path.with_name(f"{path.name}.lock"))):
        yield


def shared_json(path: Path, compute, required: tuple[str, ...]) -> dict:
    """A small JSON object shared between runs (e.g. the untouched model's perplexity),
    computed once; a stored one without every ``required`` key is set aside and recomputed."""
    with _held(path):
        if path.is_file():
            try:
                value = json.loads(path.read_text())
                missing = set(required) - set(value)
                if missing:
                    raise KeyError(f"it lacks {sorted(missing)}")
                return value
            except UNREADABLE as err:
                set_aside(path, err)
        value = compute()
        write_text(path, json.dumps(value))
        return value


def shared_tensor(path: Path, compute) -> torch.Tensor:
    """A tensor shared between runs (e.g. a frozen backbone's features), computed once."""
    with _held(path):
        if path.is_file():
            try:
                return load_file(str(path))["value"]
            except Exception as err:  # a truncated file raises SafetensorError
                set_aside(path, err)
        value = compute()
        with atomic_path(path) as tmp:
            save_file({"value": value.detach().cpu().contiguous()}, str(tmp))
        return value
