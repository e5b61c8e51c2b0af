"""Running many specs: in this process, on local worker processes, or on a dask cluster.

A sweep is a list of independent specs whose results meet in the results cache. Each executor
is an existing engine's own futures: ``concurrent.futures`` for local processes, a
``dask.distributed.Client`` (its ``get_executor()``) for a cluster, or any
``concurrent.futures.Executor`` you pass. Runs already in the cache load without being sent
anywhere; identical specs are computed once; two workers given the same spec wait on its lock.

On a cluster, point ``CURLORA_RESULTS`` (or ``CURLORA_CACHE``) of every worker at one shared
folder, e.g. ``Client("tcp://scheduler:8786")`` with workers started as
``CURLORA_RESULTS=/shared/curlora dask worker tcp://scheduler:8786 --nthreads 1``; on GPU
nodes start workers with ``--resources GPU=1`` and pass
``executor=client.get_executor(resources={"GPU": 1})`` so each spec holds one GPU.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import multiprocessing
import os
import time
from collections.abc import Callable, Sequence
from multiprocessing.reduction import ForkingPickler

import torch
from tqdm.auto import tqdm

from curlora.data import register_task, registered_tasks
from curlora.experiment import stages
from curlora.experiment.cost import check_precision
from curlora.experiment.domain_results import DomainResults
from curlora.experiment.domain_run import run_domain
from curlora.experiment.domain_spec import DomainSpec
from curlora.experiment.results import Results
from curlora.experiment.runner import run
from curlora.experiment.spec import ExperimentSpec

#: A spec of either protocol: the paper's task sequence, or continued training on a domain.
AnySpec = ExperimentSpec | DomainSpec

EXECUTORS = ("auto", "serial", "processes")


def executor_name(text: str) -> str:
    """A command line's executor: one of EXECUTORS or a dask scheduler address (tcp://host:8786)."""
    if text in EXECUTORS or "://" in text:
        return text
    raise argparse.ArgumentTypeError(
        f"executor {text!r} is unknown; choose {', '.join(EXECUTORS)} or a dask scheduler "
        "address such as tcp://scheduler:8786."
    )


def _worker_setup(threads: int, tasks: dict[str, Callable]) -> None:
    """Prepare a worker process: its thread count and the tasks registered in the parent."""
    from transformers.utils import logging as hf_logging

    torch.set_num_threads(threads)
    # The sweep's own bar reports progress; each worker's "Loading weights" bars would interleave.
    hf_logging.disable_progress_bar()
    for name, builder in tasks.items():
        if name not in registered_tasks():
            register_task(name, builder)


def run_one(spec: AnySpec, cache: bool = True, progress: bool = True) -> Results | DomainResults:
    """Run one spec of either protocol (or load it from the cache)."""
    if isinstance(spec, DomainSpec):
        return run_domain(spec, cache=cache, progress=progress)
    return run(spec, cache=cache, progress=progress)


def cached(spec: AnySpec) -> Results | DomainResults | None:
    """The spec's results if the results cache holds them, else None."""
    record = DomainResults if isinstance(spec, DomainSpec) else Results
    return stages.read_results(stages.run_folder(spec), record=record)


def _work(spec: AnySpec, threads: int, tasks: dict[str, Callable], cache: bool):
    _worker_setup(threads, tasks)
    return run_one(spec, cache=cache, progress=False)


def _sendable_tasks(specs: Sequence[AnySpec]) -> dict[str, Callable]:
    """The registered tasks these specs use, checked to travel to worker processes."""
    used = {t for spec in specs if isinstance(spec, ExperimentSpec) for t in spec.tasks}
    tasks = {name: b for name, b in registered_tasks().items() if name in used}
    for name, builder in tasks.items():
        try:
            ForkingPickler.dumps(builder)  # what the pool will do with it
        except Exception as error:
            raise ValueError(
                f"Task {name!r} was registered with a builder that cannot be sent to worker "
                f"processes ({error}). Define the builder at module level (not inside a "
                "function or as a lambda), register a Task object, or run with executor='serial'."
            ) from error
    return tasks


def default_workers() -> int:
    """Worker processes for ``executor='auto'``: one per core on a CPU machine, at most two (on
    2 cores measured to beat or match one process using both, benchmarks/NOTES.md), one on a
    GPU machine."""
    if torch.cuda.is_available():
        return 1
    return max(1, min(os.cpu_count() or 1, 2))


def run_many(
    specs: Sequence[AnySpec],
    executor: str | cf.Executor | object = "auto",
    workers: int | None = None,
    threads: int | None = None,
    progress: bool = True,
    desc: str = "experiments",
    cache: bool = True,
) -> list[Results | DomainResults]:
    """Run every spec (cached ones load at once); returns their results in the order given.

    ``executor``: 'auto' (worker processes on a multi-core CPU, else this process), 'serial',
    'processes', a dask scheduler's address ('tcp://scheduler:8786'), a
    ``dask.distributed.Client``, or any ``concurrent.futures.Executor``.
    ``workers``/``threads``: local processes and torch threads per process.
    ``cache=False`` neither reads nor writes the results cache (identical specs still run once).
    """
    specs = list(specs)
    results: dict[str, Results | DomainResults] = {}
    for spec in specs if cache else []:
        key = spec.key()
        if key not in results and (done := cached(spec)) is not None:
            results[key] = done
    pending = list({s.key(): s for s in specs if s.key() not in results}.values())
    if pending:
        results.update(_compute(pending, executor, workers, threads, progress, desc, cache))
    return [results[s.key()] for s in specs]


def _compute(
    pending, executor, workers, threads, progress, desc, cache
) -> dict[str, Results | DomainResults]:
    if isinstance(executor, str) and "://" in executor:
        with _client(executor) as client:
            return _compute(pending, client, workers, threads, progress, desc, cache)
    if isinstance(executor, str) and executor not in EXECUTORS:
        raise ValueError(
            f"executor={executor!r} is unknown; choose {', '.join(EXECUTORS)}, a dask scheduler "
            "address (tcp://host:8786), a dask.distributed.Client or a concurrent.futures.Executor."
        )
    if executor in EXECUTORS:  # runs on this machine: refuse a precision it only emulates
        check_precision(pending)
    if executor == "auto":
        workers = workers or default_workers()
        executor = "processes" if workers > 1 and len(pending) > 1 else "serial"
    bar = tqdm(total=len(pending), desc=desc, disable=not progress, unit="run", smoothing=0)
    out: dict[str, Results | DomainResults] = {}
    start = time.perf_counter()
    if executor == "serial":
        for spec in pending:
            bar.set_postfix_str(spec.label(), refresh=False)
            out[spec.key()] = run_one(spec, cache=cache, progress=False)
            bar.update()
        bar.close()
        return out
    owned = executor == "processes"
    if owned:
        workers = workers or default_workers()
        threads = threads or max(1, (os.cpu_count() or 1) // workers)
        pool = cf.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
    elif hasattr(executor, "get_executor"):  # a dask.distributed.Client
        pool = executor.get_executor()
        threads = threads or 1
    else:
        pool = executor
        threads = threads or 1
    tasks = _sendable_tasks(pending)
    # Longest first: a head-only run costs a fraction of an adapter run, so submitting those last
    # keeps every worker busy until the end instead of leaving one adapter run alone at the tail.
    pending = sorted(pending, key=lambda spec: spec.method == "head-only")
    try:
        futures = {pool.submit(_work, spec, threads, tasks, cache): spec for spec in pending}
        for future in cf.as_completed(futures):
            spec = futures[future]
            out[spec.key()] = future.result()
            bar.set_postfix_str(
                f"{spec.label()} done, {time.perf_counter() - start:.0f}s", refresh=False
            )
            bar.update()
    finally:
        bar.close()
        if owned:
            pool.shutdown(cancel_futures=True)
    return out


def _client(address: str):
    """A dask.distributed client of the scheduler at ``address``."""
    try:
        from distributed import Client
    except ImportError as err:
        raise ValueError(
            f"executor={address!r} names a dask scheduler, but dask.distributed is not "
            "installed; install it with: pip install 'curlora[cluster]'."
        ) from err
    return Client(address)
