"""Run the notebook suite headless with papermill: check, compute, execute, render.

    python -m curlora.notebooks run [--profile smoke|cpu|evidence|paper] [--only 01,04] [-p name=value ...]

Before any notebook runs, every parameter is checked (names, types, and the models and tasks
they name), then the experiments the notebooks will read are computed on worker processes with
a progress bar (runs done / total, time left), so the notebooks themselves only load results.

Where things go: every run writes ``build/runs/<run>/`` (executed notebooks, figures, a Markdown
report with its findings page, an offline HTML site). Publishing also writes the committed copy:
``report/<profile>/`` for the ``cpu`` and ``evidence`` profiles with their own parameters, and
``figures/`` for the README's profile (``evidence``). The evidence profile publishes by default,
as it only re-reads the committed results; the cpu profile only with ``--publish``, as its numbers
depend on the machine's kind (its kernels round differently) and a first run must leave the
checkout clean.

Each profile's parameters are in ``curlora.experiment.profiles``; the checks of values against a
notebook's parameters cell are in ``curlora.notebook_parameters``.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import hashlib
import json
import logging
import multiprocessing
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from curlora.experiment.profiles import DOMAIN_PARAMETERS, PROFILES, STUDY_PARAMETERS
from curlora.notebook_parameters import (
    absolute_references,
    declared_parameters,
    parse_assignment,
    validate,
)

if TYPE_CHECKING:
    from curlora.experiment.design import Design

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
RUNS_DIR = ROOT / "build" / "runs"
FIGURES_DIR = ROOT / "figures"
REPORT_DIR = ROOT / "report"
#: The profile whose figures the README shows (and so the only one that writes figures/).
README_PROFILE = "evidence"
#: Profiles whose rendered report is committed under report/<profile>/.
REPORTED = ("cpu", "evidence")
#: Committed results of the evidence profile (small JSON per run; recompute with --recompute).
EVIDENCE_RESULTS = ROOT / "results" / "evidence"
#: Every method's train-step cost, side by side (``benchmarks/bench.py --only peers``).
BENCH_PEERS = ROOT / "benchmarks" / "PEERS.json"
#: The notebooks whose studies the findings page reads: the main study and the sampling ablation.
FINDINGS_NOTEBOOKS = {"main": "04", "ablation": "05"}


def notebooks(only: list[str] | None = None) -> list[Path]:
    """The suite's notebooks in order, optionally only those whose names start with ``only``."""
    found = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))
    if not only:
        return found
    chosen = [p for p in found if any(p.name.startswith(o) for o in only)]
    missing = [o for o in only if not any(p.name.startswith(o) for p in found)]
    if missing:
        raise FileNotFoundError(
            f"No notebook matches {missing}; available: {', '.join(p.stem for p in found)}."
        )
    return chosen


def study_parameters(path: Path, params: dict[str, Any]) -> dict[str, Any] | None:
    """The values of a notebook's study parameters, from its full parameters (None if it reads
    no experiments)."""
    declared = declared_parameters(path)
    if not set(STUDY_PARAMETERS) <= set(declared):
        return None
    return {k: params.get(k, declared[k][1]) for k in STUDY_PARAMETERS}


def study_of(path: Path, params: dict[str, Any]) -> Design | None:
    """The experiment design a notebook reads, from its full parameters (None if it reads none)."""
    from curlora.experiment.design import study_design

    values = study_parameters(path, params)
    return None if values is None else study_design(**values)


def domain_parameters(path: Path, params: dict[str, Any]) -> dict[str, Any] | None:
    """The values of a notebook's continued-training parameters (protocol 2), from its full
    parameters (None if it reads no such study)."""
    declared = declared_parameters(path)
    if not set(DOMAIN_PARAMETERS) <= set(declared):
        return None
    return {k: params.get(k, declared[k][1]) for k in DOMAIN_PARAMETERS}


def domain_specs_of(path: Path, params: dict[str, Any]) -> list:
    """The continued-training runs a notebook reads (none if it reads no such study)."""
    from curlora.domain_study import domain_specs

    values = domain_parameters(path, params)
    return [] if values is None else domain_specs(**values)


def check_domain_inputs(specs: list) -> None:
    """Load every model config and domain the runs name, so bad input fails before training."""
    from curlora.data.domains import load_domain
    from curlora.models import check_model

    for model in {s.model for s in specs}:
        check_model(model)
    for domain in {s.domain for s in specs}:
        for split in ("train", "val", "eval"):
            load_domain(domain).split_files(split)


def check_inputs(designs: list) -> None:
    """Load every task and model config a design names, so bad input fails before training."""
    from curlora.data import load_task
    from curlora.models import check_model

    seen = set()
    for design in designs:
        base = design.base
        if base.model not in seen:
            check_model(base.model)
            seen.add(base.model)
        for ref in base.tasks:
            for seed in design.all_seeds():
                if (ref, seed) not in seen:
                    load_task(ref, base.train_size, base.val_size, base.eval_size, seed)
                    seen.add((ref, seed))


def run_name(profile: str, overrides: dict[str, Any]) -> str:
    """A folder name for a run: the profile, plus a short hash when parameters were changed."""
    if not overrides:
        return profile
    digest = hashlib.sha256(json.dumps(overrides, sort_keys=True, default=str).encode()).hexdigest()
    return f"{profile}-{digest[:8]}"


def run_suite(
    profile: str = "cpu",
    only: list[str] | None = None,
    overrides: dict[str, Any] | None = None,
    out: Path | None = None,
    executor: str = "auto",
    recompute: bool = False,
    publish: bool | None = None,
    log=print,
) -> dict:
    """Check, compute, execute and render; returns where things went and per-notebook timings."""
    from curlora.report import render_site, replace_block, write_markdown

    if profile not in PROFILES:
        raise ValueError(f"Unknown profile {profile!r}; choose one of {', '.join(PROFILES)}.")
    overrides = absolute_references(overrides or {})
    plans = _plan(profile, notebooks(only), overrides)
    name = run_name(profile, overrides)
    out = Path(out or RUNS_DIR / name)
    reported = profile in REPORTED and not overrides and only is None
    publish = (reported and profile == README_PROFILE) if publish is None else publish
    if publish and not reported:
        raise ValueError(
            f"Only a whole run of the {' or '.join(REPORTED)} profile with its own parameters has "
            "a committed report to publish; drop --publish (this run writes to build/runs/)."
        )
    figures = FIGURES_DIR if publish and profile == README_PROFILE else out / "figures"
    if profile == "evidence" and "CURLORA_RESULTS" not in os.environ:
        os.environ["CURLORA_RESULTS"] = str(EVIDENCE_RESULTS)
    _compute_experiments(plans, profile, executor, recompute, log)
    rows, findings = _execute_notebooks(plans, out, figures, profile, reported, log)
    executed = [out / "notebooks" / p.name for p, _ in plans]
    title = f"curlora — {profile} profile"
    site = render_site(
        executed, out / "site", title=title, findings=findings.page if findings else None
    )
    report = write_markdown(
        executed,
        REPORT_DIR / profile if publish else out / "report",
        title=title,
        findings=findings.page if findings else None,
    )
    if publish and profile == README_PROFILE and findings is not None:
        replace_block(ROOT / "README.md", "findings", findings.readme)
    return {
        "name": name,
        "out": out,
        "figures": figures,
        "site": site,
        "report": report,
        "rows": rows,
    }


def _plan(
    profile: str, chosen: list[Path], overrides: dict[str, Any]
) -> list[tuple[Path, dict[str, Any]]]:
    """Each chosen notebook with its checked parameters: the profile's, then the overrides."""
    plans = []
    for path in chosen:
        if path.name[:2] in PROFILES[profile] and PROFILES[profile][path.name[:2]] is None:
            continue  # not part of this profile (yet): see curlora.experiment.profiles
        params = dict(PROFILES[profile].get(path.name[:2], {}))
        params.update({k: v for k, v in overrides.items() if k in declared_parameters(path)})
        plans.append((path, validate(path, params)))
    unknown = set(overrides) - {n for p in chosen for n in declared_parameters(p)}
    if unknown:
        raise ValueError(f"No chosen notebook has parameter(s) {sorted(unknown)}.")
    return plans


def _compute_experiments(plans, profile: str, executor: str, recompute: bool, log) -> None:
    """Compute the runs the notebooks will read that are not cached yet, after checking inputs."""
    from curlora.experiment.cost import check_precision
    from curlora.experiment.machine import describe_machine
    from curlora.experiment.sweep import run_many

    designs = [d for d in (study_of(p, params) for p, params in plans) if d is not None]
    check_inputs(designs)
    domain = [s for p, params in plans for s in domain_specs_of(p, params)]
    check_domain_inputs(domain)
    specs = list({s.key(): s for d in designs for s in d.specs()}.values())
    specs += list({s.key(): s for s in domain}.values())
    if not specs:
        return
    missing = _missing(specs)
    if missing and profile == "evidence" and not recompute:
        raise RuntimeError(
            f"{len(missing)} of the evidence profile's {len(specs)} runs are not in "
            f"{os.environ['CURLORA_RESULTS']}; pass --recompute to compute them "
            "(hours on 2 cores: see benchmarks/RESULTS.md)."
        )
    if missing:
        log(describe_machine())
        check_precision(missing)
    log(f"experiments: {len(specs)} runs ({_to_compute(missing)})")
    if missing:
        run_many(missing, executor=executor, desc="experiments")


def _execute_notebooks(
    plans, out: Path, figures: Path, profile: str, reported: bool, log
) -> tuple[list[dict], Any]:
    """Execute the notebooks into ``out``; returns their timings and, for a reported profile,
    its ``Findings``."""
    from curlora.experiment.sweep import default_workers

    (out / "notebooks").mkdir(parents=True, exist_ok=True)
    # The experiments are computed first, so the notebooks only read results and draw. Each runs
    # in its own process (so its kernel inherits that process's thread setting), one per core at a
    # time: a kernel spends much of its time starting and importing, which leaves a core idle.
    context = multiprocessing.get_context("spawn")
    workers = min(len(plans), default_workers()) or 1
    # Kernels side by side, each using every core, oversubscribe them: OpenMP's waiting threads
    # made notebook 01's small matrix work 10× slower beside another kernel.
    threads = max(1, (os.cpu_count() or 1) // workers)
    rows = []
    # The findings page reads the same cached runs as the notebooks: computing it in a thread
    # of this (otherwise waiting) process overlaps it with them instead of adding it after.
    with (
        cf.ProcessPoolExecutor(workers, mp_context=context) as pool,
        cf.ThreadPoolExecutor(1) as here,
    ):
        findings = here.submit(_findings, plans, profile) if reported else None
        futures = {}
        for path, params in plans:
            params = {**params, "figures_dir": as_notebook_path(figures), "interactive": False}
            job = (path, out / "notebooks" / path.name, params, out / "kernel.log", threads)
            futures[pool.submit(execute_notebook, *job)] = path
        for future in cf.as_completed(futures):
            rows.append({"notebook": futures[future].stem, "seconds": future.result()})
            log(f"✓ {rows[-1]['notebook']} ({rows[-1]['seconds']:.0f} s)")
        found = findings.result() if findings else None
    rows.sort(key=lambda row: row["notebook"])
    return rows, found


def as_notebook_path(folder: Path) -> str:
    """``folder`` as the notebooks' parameters name it: relative to the notebooks' working
    directory when inside the project, so executed notebooks name no checkout's path."""
    folder = folder.resolve()
    return os.path.relpath(folder, NOTEBOOK_DIR) if folder.is_relative_to(ROOT) else str(folder)


def execute_notebook(
    path: Path, target: Path, params: dict[str, Any], kernel_log: Path, threads: int
) -> float:
    """Execute one notebook with papermill into ``target`` (its kernel using ``threads`` threads);
    returns the seconds it took."""
    import papermill

    # This is a worker process of its own: the kernel it starts inherits the setting.
    os.environ["OMP_NUM_THREADS"] = str(threads)
    # A report is read, not watched: transformers' "Loading weights" bars would be left in it.
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    start = time.perf_counter()
    # A short private folder: socket paths are limited to about 100 characters.
    with _quiet_kernel(), tempfile.TemporaryDirectory(prefix="curlora-kernel-") as sockets:
        papermill.execute_notebook(
            str(path),
            str(target),
            parameters=params,
            kernel_name="python3",
            cwd=str(NOTEBOOK_DIR),
            progress_bar=False,
            kernel_manager_class=_kernel_manager(kernel_log, Path(sockets)),
        )
    return time.perf_counter() - start


def _findings(plans, profile: str):
    """The profile's ``Findings`` (page and README block), from the studies of its main and
    ablation notebooks and, where one runs, notebook 06's continued-training study."""
    from curlora.experiment.loading import load_study
    from curlora.findings import Findings, findings
    from curlora.peer_table import bench_costs

    studies = {}
    for role, prefix in FINDINGS_NOTEBOOKS.items():
        for path, params in plans:
            values = study_parameters(path, params) if path.name.startswith(prefix) else None
            if values is not None:
                _design, _runs, studies[role] = load_study(**values, executor="serial")
    title = f"# Findings ({profile} profile)\n\n"
    if profile != README_PROFILE:
        title += (
            f"> **{profile} profile (small sample) — the {README_PROFILE} profile is the "
            f"reference.** Where these readings differ from `report/{README_PROFILE}/FINDINGS.md`"
            ", read those: this profile runs fewer seeds, examples and rates, to show the "
            "analysis end to end in minutes.\n\n"
        )
    if "main" not in studies:
        missing = f"Notebook {FINDINGS_NOTEBOOKS['main']} was not part of this run.\n"
        return Findings(title + missing, missing)
    costs = bench_costs(BENCH_PEERS)
    found = findings(studies["main"], studies.get("ablation"), costs=costs)
    page, readme = title + found.page, found.readme
    for path, params in plans:
        specs = domain_specs_of(path, params)
        if specs:
            from curlora.domain_findings import domain_section
            from curlora.domain_study import DomainStudy
            from curlora.experiment.sweep import run_many
            from curlora.findings import PUBLISHED_PAGE
            from curlora.protocol_agreement import (
                agreement_markdown,
                agreement_sentence,
                shared_claims,
            )

            runs = run_many(specs, executor="serial", progress=False)
            domain = domain_section(
                DomainStudy(runs, base_rank=specs[0].rank), page=PUBLISHED_PAGE, costs=costs
            )
            pairs = shared_claims(list(found.readings), list(domain.readings))
            page = f"{page}\n{domain.page}\n{agreement_markdown(pairs)}"
            readme = f"{readme}\n{domain.readme}\n{agreement_sentence(pairs)}\n"
    return Findings(page, readme)


def _to_compute(missing: list) -> str:
    """'7 to compute, about 25 min here': the estimate from the runs' work and this machine's rate."""
    from curlora.experiment.cost import duration, estimate_seconds
    from curlora.experiment.machine import machine_measurement

    if not missing:
        return "all cached"
    seconds = estimate_seconds(missing, machine_measurement()["matmul_gflops"])
    about = f", about {duration(seconds)} here" if seconds is not None else ""
    return f"{len(missing)} to compute{about}"


def _missing(specs) -> list:
    from curlora.experiment.sweep import cached

    return [s for s in specs if cached(s) is None]


def _kernel_manager(log: Path, sockets: Path):
    """A kernel manager on IPC sockets under ``sockets`` (a local kernel needs no TCP ports; its
    own folder, because kernels started at once would otherwise pick the same socket names) whose
    own chatter — transport notices, shutdown messages — goes to ``log`` instead of the runner's
    console. Errors in the notebook's code still stop the run with papermill's own report."""
    from jupyter_client.manager import KernelManager
    from traitlets import default

    class QuietKernelManager(KernelManager):
        @default("transport")
        def _default_transport(self):
            return "ipc"

        @default("ip")
        def _default_ip(self):
            return str(sockets / "kernel")

        async def _async_launch_kernel(self, kernel_cmd, **kw):
            kw["stderr"] = log.open("a")
            return await super()._async_launch_kernel(kernel_cmd, **kw)

    return QuietKernelManager


class _quiet_kernel:
    """Keep the kernel's transport chatter (zmq/jupyter_client warnings) off the console."""

    def __enter__(self):
        self.levels = {
            n: logging.getLogger(n).level for n in ("papermill", "traitlets", "jupyter_client")
        }
        for n in self.levels:
            logging.getLogger(n).setLevel(logging.ERROR)
        self.filters = warnings.catch_warnings()
        self.filters.__enter__()
        warnings.simplefilter("ignore")

    def __exit__(self, *exc):
        self.filters.__exit__(*exc)
        for n, level in self.levels.items():
            logging.getLogger(n).setLevel(level)


def main(argv: list[str] | None = None) -> int:
    """Command line for the notebook runner."""
    from curlora.experiment.sweep import EXECUTORS, executor_name

    parser = argparse.ArgumentParser(prog="python -m curlora.notebooks")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="execute notebooks with papermill")
    run.add_argument("--profile", default="cpu", choices=list(PROFILES))
    run.add_argument("--only", default="", help="comma-separated notebook prefixes, e.g. 01,04")
    run.add_argument("-p", "--parameter", action="append", default=[], metavar="NAME=VALUE")
    run.add_argument("--out", type=Path, help="folder for this run (default build/runs/<run>)")
    run.add_argument(
        "--executor",
        default="auto",
        type=executor_name,
        help=f"{', '.join(EXECUTORS)} or a dask scheduler address (tcp://host:8786)",
    )
    run.add_argument(
        "--recompute", action="store_true", help="evidence profile: compute missing runs"
    )
    run.add_argument(
        "--publish",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also write the committed report/<profile>/ (default: evidence yes, cpu no)",
    )
    sub.add_parser("list", help="show the notebooks and their parameters")
    args = parser.parse_args(argv)
    if args.command == "list":
        for path in notebooks():
            print(path.name)
            for name, (annotation, default) in declared_parameters(path).items():
                print(f"    {name}: {annotation} = {default!r}")
        return 0
    try:
        overrides = dict(parse_assignment(p) for p in args.parameter)
        only = [o for o in args.only.split(",") if o] or None
        start = time.perf_counter()
        done = run_suite(
            args.profile, only, overrides, args.out, args.executor, args.recompute, args.publish
        )
    except (ValueError, TypeError, FileNotFoundError, OSError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"\nrun {done['name']}: executed notebooks in {done['out'] / 'notebooks'}")
    print(f"  figures in {done['figures']}")
    print(f"  report (opens offline): {done['site'] / 'index.html'}")
    print(f"  Markdown report: {done['report'] / 'README.md'}")
    for row in done["rows"]:
        print(f"  {row['notebook']:<28} {row['seconds']:8.1f} s")
    print(f"  {'total':<28} {time.perf_counter() - start:8.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
