"""Run the notebook suite headless with papermill: profiles, parameter checks, progress, outputs.

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
"""

from __future__ import annotations

import argparse
import ast
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
from typing import Any

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

#: Learning-rate grids: from rates where an adapter barely learns to rates where it breaks
#: (perplexity several-fold), chosen from a one-seed pilot on the cpu tasks (benchmarks/NOTES.md).
CURLORA_RATES = [1e-3, 3e-3, 1e-2, 3e-2]
LORA_RATES = [3e-4, 1e-3, 3e-3, 1e-2]
_EVIDENCE = {
    "preset": "evidence",
    "model": "smollm2-135m",
    "tasks": ["wiki-pairs", "movie-snippets", "tweets-3class"],
    "rank": 16,
    "train_size": 200,
    "val_size": 100,
    "eval_size": 400,
    "seeds": [0, 1, 2],
}
#: The committed evidence: three seeds; notebook 04's arms and the sampling ablation, each in
#: the paper's task order and its reverse. The sampling variants take three rates
#: spanning "barely learns" to "near breaking", placed by the scale of their C and R against
#: eq. 4's (benchmarks/NOTES.md): norm and uniform factors are larger, so their grid moves
#: down; lowest-norm factors are smaller, so its grid moves up; the reference code's
#: 1/(p + 0.001) is close to eq. 4's. The SVD peer takes two rates (its frontier is a segment).
#: LoRA at rank 1 takes CURLoRA's grid: with the paper's unscaled x·A·B·alpha its update is
#: about √16 = 4× smaller per step than rank 16's (benchmarks/NOTES.md).
_MAIN_ARMS = ["curlora", "lora", "lora-r1", "head-only"]
#: CURLoRA with each sampling rule: eq. 4, the reference code's, classical CUR, uniform, lowest-norm.
_CURLORA_SAMPLINGS = [
    "curlora",
    "curlora-inverse_eps",
    "curlora-norm",
    "curlora-uniform",
    "curlora-lowest",
]
_SAMPLING_ARMS = [*_CURLORA_SAMPLINGS, "svd", "head-only"]
_EVIDENCE_LRS = {
    # 3e-4 too: at 1e-3, the pilot's lowest, CURLoRA already learned most on validation, so
    # without a lower rate its frontier had no rising part to be read at matched plasticity.
    "curlora": [3e-4, *CURLORA_RATES],
    "curlora-inverse_eps": [1e-3, 3e-3, 1e-2],
    "curlora-norm": [3e-4, 1e-3, 3e-3],
    "curlora-uniform": [3e-4, 1e-3, 3e-3],
    "curlora-lowest": [3e-3, 1e-2, 3e-2],
    "lora": LORA_RATES,
    "lora-r1": CURLORA_RATES,
    "svd": [3e-4, 1e-3],
}
_SMOKE = {
    "preset": "smoke",
    "model": "tiny-llama",
    "tasks": ["wiki-pairs", "movie-snippets"],
    "rank": 4,
    "train_size": 32,
    "val_size": 16,
    "eval_size": 16,
    "seeds": [0, 1],
    "lrs": {"*": [3e-3, 3e-2]},
}
#: The paper's setting (§6): GPT-2-large, the hub data sets; rates around its 2.5e-4.
_PAPER = {
    "preset": "paper-gpt2",
    "model": "gpt2-large",
    "tasks": ["glue/mrpc", "glue/sst2", "sentiment140-paper"],
    "eval_size": 1000,
    "val_size": 100,
    "lrs": {"*": [1e-4, 2.5e-4, 1e-3, 4e-3]},
}
#: Parameter overrides per profile and notebook prefix. The notebooks' own defaults are the
#: ``cpu`` profile's, so an interactive session starts from it.
PROFILES: dict[str, dict[str, dict[str, Any]]] = {
    "smoke": {
        "01": {
            "model": "tiny-llama",
            "layers": [0, 1],
            "rank": 4,
            "widths": [64, 256, 1024],
            "ranks": [2, 4, 8],
            "seeds": [0, 1],
        },
        "02": _SMOKE,
        "03": {"models": ["gpt2", "HuggingFaceTB/SmolLM2-135M-Instruct"], "ranks": [8, 16]},
        "04": _SMOKE,
        "05": _SMOKE,
    },
    "cpu": {"01": {}, "02": {}, "03": {}, "04": {}, "05": {}},
    "evidence": {
        "01": {},
        "02": {
            **_EVIDENCE,
            "arms": [*_CURLORA_SAMPLINGS, "lora", "svd", "head-only"],
            "lrs": _EVIDENCE_LRS,
        },
        "03": {},
        "04": {**_EVIDENCE, "arms": _MAIN_ARMS, "lrs": _EVIDENCE_LRS, "orders": "all"},
        "05": {
            **_EVIDENCE,
            "arms": _SAMPLING_ARMS,
            "lrs": _EVIDENCE_LRS,
            "orders": "paper+reverse",
        },
    },
    "paper": {
        "01": {"model": "gpt2-large", "projection": "c_attn", "layers": [0, 18, 35]},
        "02": _PAPER,
        "03": {},
        "04": _PAPER,
        "05": _PAPER,
    },
}
#: Notebooks that read experiments, and the parameters that define them (passed to study_design).
STUDY_PARAMETERS = (
    "preset",
    "model",
    "tasks",
    "rank",
    "train_size",
    "val_size",
    "eval_size",
    "arms",
    "lrs",
    "seeds",
    "orders",
)


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


def declared_parameters(path: Path) -> dict[str, tuple[str, Any]]:
    """The notebook's ``parameters`` cell as {name: (type annotation, default)}."""
    cells = json.loads(path.read_text())["cells"]
    tagged = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(tagged) != 1:
        raise ValueError(
            f"{path.name} must have exactly one cell tagged 'parameters', found {len(tagged)}."
        )
    tree = ast.parse("".join(tagged[0]["source"]))
    params = {}
    for node in tree.body:
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            raise ValueError(f"{path.name}: every parameters line must read `name: type = value`.")
        params[node.target.id] = (ast.unparse(node.annotation), ast.literal_eval(node.value))
    return params


def _matches(value: Any, annotation: str) -> bool:
    scalar = {"int": int, "float": (int, float), "str": str, "bool": bool}
    if annotation in scalar:
        if annotation != "bool" and isinstance(value, bool):
            return False
        return isinstance(value, scalar[annotation])
    if annotation.startswith("list[") and annotation.endswith("]"):
        inner = annotation[5:-1]
        return isinstance(value, list) and all(_matches(v, inner) for v in value)
    if annotation.startswith("dict[str, ") and annotation.endswith("]"):
        inner = annotation[len("dict[str, ") : -1]
        return isinstance(value, dict) and all(
            isinstance(k, str) and _matches(v, inner) for k, v in value.items()
        )
    return False


def validate(path: Path, overrides: dict[str, Any]) -> dict[str, Any]:
    """Check ``overrides`` against the notebook's declared names and types; returns them."""
    declared = declared_parameters(path)
    listing = ", ".join(f"{n}: {t}" for n, (t, _) in declared.items())
    for name, value in overrides.items():
        if name not in declared:
            raise ValueError(f"{path.name} has no parameter {name!r}. Its parameters: {listing}.")
        annotation = declared[name][0]
        if not _matches(value, annotation):
            raise TypeError(
                f"{path.name}: parameter {name} expects {annotation}, got {value!r} "
                f"({type(value).__name__})."
            )
    return overrides


def parse_assignment(text: str) -> tuple[str, Any]:
    """'name=value' from the command line; the value is a Python literal, else a string."""
    name, sep, raw = text.partition("=")
    if not sep or not name.strip():
        raise ValueError(f"Expected -p name=value, got {text!r}.")
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        value = raw
    return name.strip(), value


def study_of(path: Path, params: dict[str, Any]):
    """The experiment design a notebook reads, from its full parameters (None if it reads none)."""
    from curlora.experiment.design import study_design

    declared = declared_parameters(path)
    if not set(STUDY_PARAMETERS) <= set(declared):
        return None
    values = {k: params.get(k, declared[k][1]) for k in STUDY_PARAMETERS}
    return study_design(**values)


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
            for seed in design.seeds:
                if (ref, seed) not in seen:
                    load_task(ref, base.train_size, base.val_size, base.eval_size, seed)
                    seen.add((ref, seed))


def run_name(profile: str, overrides: dict[str, Any]) -> str:
    """A folder name for a run: the profile, plus a short hash when parameters were changed."""
    if not overrides:
        return profile
    digest = hashlib.sha256(json.dumps(overrides, sort_keys=True, default=str).encode()).hexdigest()
    return f"{profile}-{digest[:8]}"


#: Parameters that name models or tasks, which may be paths relative to where the runner starts.
REFERENCE_PARAMETERS = ("model", "models", "tasks")


def absolute_references(overrides: dict[str, Any]) -> dict[str, Any]:
    """``overrides`` with local files and folders among models and tasks made absolute.

    The runner starts wherever the user is, but papermill runs each notebook inside
    ``notebooks/``: a relative ``reviews.csv`` must name the same file in both places.
    """

    def absolute(ref: Any) -> Any:
        if not isinstance(ref, str) or ref.startswith("hub:"):
            return ref
        base, sep, query = ref.partition("?")
        path = Path(base).expanduser()
        return f"{path.resolve()}{sep}{query}" if path.exists() else ref

    return {
        k: ([absolute(r) for r in v] if isinstance(v, list) else absolute(v))
        if k in REFERENCE_PARAMETERS
        else v
        for k, v in overrides.items()
    }


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
    from curlora.experiment.cost import check_precision
    from curlora.experiment.machine import describe_machine
    from curlora.experiment.sweep import default_workers, run_many
    from curlora.report import render_site, write_markdown

    if profile not in PROFILES:
        raise ValueError(f"Unknown profile {profile!r}; choose one of {', '.join(PROFILES)}.")
    overrides = absolute_references(overrides or {})
    chosen = notebooks(only)
    plans = []
    for path in chosen:
        params = dict(PROFILES[profile].get(path.name[:2], {}))
        params.update({k: v for k, v in overrides.items() if k in declared_parameters(path)})
        plans.append((path, validate(path, params)))
    unknown = set(overrides) - {n for p in chosen for n in declared_parameters(p)}
    if unknown:
        raise ValueError(f"No chosen notebook has parameter(s) {sorted(unknown)}.")
    name = run_name(profile, overrides)
    out = Path(out or RUNS_DIR / name)
    reported = profile in REPORTED and not overrides and only is None
    publish = (reported and profile == README_PROFILE) if publish is None else publish
    if publish and not reported:
        raise ValueError(
            f"Only a whole run of the {' or '.join(REPORTED)} profile with its own parameters has "
            "a committed report to publish; drop --publish (this run writes to build/runs/)."
        )
    publish_figures = publish and profile == README_PROFILE
    figures = FIGURES_DIR if publish_figures else out / "figures"
    if profile == "evidence" and "CURLORA_RESULTS" not in os.environ:
        os.environ["CURLORA_RESULTS"] = str(EVIDENCE_RESULTS)
    designs = [d for d in (study_of(p, params) for p, params in plans) if d is not None]
    check_inputs(designs)
    specs = list({s.key(): s for d in designs for s in d.specs()}.values())
    if specs:
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
    (out / "notebooks").mkdir(parents=True, exist_ok=True)
    # The experiments are computed above, so the notebooks only read results and draw. Each runs
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
        findings_text = findings.result() if findings else None
    rows.sort(key=lambda row: row["notebook"])
    executed = [out / "notebooks" / p.name for p, _ in plans]
    site = render_site(executed, out / "site", title=f"curlora — {profile} profile")
    report = write_markdown(
        executed,
        REPORT_DIR / profile if publish else out / "report",
        title=f"curlora — {profile} profile",
        findings=findings_text,
    )
    return {
        "name": name,
        "out": out,
        "figures": figures,
        "site": site,
        "report": report,
        "rows": rows,
    }


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


def _findings(plans, profile: str) -> str:
    """The profile's findings page, from the runs of notebooks 04 (main) and 05 (ablation)."""
    from curlora.experiment.sweep import run_many
    from curlora.findings import summary_markdown
    from curlora.study import Study

    studies = {}
    for path, params in plans:
        design = study_of(path, params)
        if design is not None and path.name[:2] in ("04", "05"):
            runs = run_many(design.specs(), executor="serial", progress=False)
            studies[path.name[:2]] = Study(runs, base_rank=design.base.rank)
    if "04" not in studies:
        return f"# Findings ({profile} profile)\n\nNotebook 04 was not part of this run.\n"
    return f"# Findings ({profile} profile)\n\n" + summary_markdown(
        studies["04"], studies.get("05")
    )


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
    from curlora.experiment import stages

    return [s for s in specs if stages.read_results(stages.run_folder(s)) is None]


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
