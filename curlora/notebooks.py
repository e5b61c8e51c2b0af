"""Run the notebook suite headless with papermill: profiles, parameter checks, figures, timings.

    python -m curlora.notebooks run [--profile smoke|cpu|paper] [--only 01,04] [-p name=value ...]

Executed copies go to ``build/notebooks`` (ignored by git), figures to ``figures/``.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
BUILD_DIR = ROOT / "build" / "notebooks"
FIGURES_DIR = ROOT / "figures"

#: Parameter overrides per profile and notebook prefix. The notebooks' own defaults are the
#: ``cpu`` profile (real SmolLM2-135M, offline tasks).
PROFILES: dict[str, dict[str, dict[str, Any]]] = {
    "smoke": {
        "01": {
            "model": "tiny-llama",
            "layers": [0, 1],
            "rank": 4,
            "widths": [64, 256, 1024],
            "ranks": [4, 8],
            "seeds": [0, 1],
        },
        "02": {"preset": "smoke"},
        "03": {"models": ["gpt2", "HuggingFaceTB/SmolLM2-135M-Instruct"], "ranks": [8, 16]},
        "04": {"preset": "smoke", "seeds": [0, 1], "lrs": [1e-3, 1e-2]},
    },
    "cpu": {"01": {}, "02": {}, "03": {}, "04": {}},
    "paper": {
        "01": {"model": "gpt2-large", "projection": "c_attn", "layers": [0, 18, 35]},
        "02": {"preset": "paper-gpt2"},
        "03": {},
        "04": {
            "preset": "paper-gpt2",
            "seeds": [0, 1, 2],
            "lrs": [2.5e-4, 1e-3, 4e-3],
            "lr_task": "glue/sst2",
        },
    },
}


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


def run_suite(
    profile: str = "cpu",
    only: list[str] | None = None,
    overrides: dict[str, Any] | None = None,
    figures_dir: Path = FIGURES_DIR,
    build_dir: Path = BUILD_DIR,
) -> list[dict]:
    """Execute the chosen notebooks with papermill; returns one row per notebook with timings."""
    import papermill

    if profile not in PROFILES:
        raise ValueError(f"Unknown profile {profile!r}; choose one of {', '.join(PROFILES)}.")
    chosen = notebooks(only)
    # Check every notebook's parameters before running any, so a typo fails in a second.
    plans = []
    for path in chosen:
        params = dict(PROFILES[profile].get(path.name[:2], {}))
        params.update(
            {k: v for k, v in (overrides or {}).items() if k in declared_parameters(path)}
        )
        params["figures_dir"] = str(Path(figures_dir).resolve())
        plans.append((path, validate(path, params)))
    unknown = set(overrides or {}) - {n for p in chosen for n in declared_parameters(p)}
    if unknown:
        raise ValueError(f"No chosen notebook has parameter(s) {sorted(unknown)}.")
    build_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for path, params in plans:
        start = time.perf_counter()
        papermill.execute_notebook(
            str(path),
            str(build_dir / path.name),
            parameters=params,
            kernel_name="python3",
            cwd=str(NOTEBOOK_DIR),
            progress_bar=False,
        )
        rows.append({"notebook": path.stem, "seconds": time.perf_counter() - start})
    return rows


def main(argv: list[str] | None = None) -> int:
    """Command line for the notebook runner."""
    parser = argparse.ArgumentParser(prog="python -m curlora.notebooks")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="execute notebooks with papermill")
    run.add_argument("--profile", default="cpu", choices=list(PROFILES))
    run.add_argument("--only", default="", help="comma-separated notebook prefixes, e.g. 01,04")
    run.add_argument("-p", "--parameter", action="append", default=[], metavar="NAME=VALUE")
    run.add_argument("--figures-dir", type=Path, default=FIGURES_DIR)
    run.add_argument("--build-dir", type=Path, default=BUILD_DIR)
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
        only = [o for o in args.only.split(",") if o]
        start = time.perf_counter()
        rows = run_suite(args.profile, only, overrides, args.figures_dir, args.build_dir)
    except (ValueError, TypeError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(
        f"\nprofile {args.profile}: figures in {args.figures_dir}, executed notebooks in {args.build_dir}"
    )
    for row in rows:
        print(f"  {row['notebook']:<28} {row['seconds']:8.1f} s")
    print(f"  {'total':<28} {time.perf_counter() - start:8.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
