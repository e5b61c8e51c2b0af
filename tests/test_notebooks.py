"""Notebook hygiene, the runner's checks, the suite under papermill (smoke), your own data and model."""

from __future__ import annotations

import hashlib
import json
import re

import numpy as np
import pandas as pd
import pytest

from curlora import notebooks as runner
from curlora.experiment.profiles import PROFILES, STUDY_PARAMETERS
from curlora.notebook_parameters import (
    absolute_references,
    declared_parameters,
    matches,
    parse_assignment,
    validate,
)

NOTEBOOKS = runner.notebooks()


def test_the_seven_notebooks_exist():
    assert [p.stem[:2] for p in NOTEBOOKS] == ["00", "01", "02", "03", "04", "05", "06"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_hygiene(path):
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), (
        "strip outputs"
    )
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    ids = [c.get("id") for c in nb["cells"]]
    assert all(ids) and len(set(ids)) == len(ids), "every cell needs its own id (nbformat 4.5)"
    params = declared_parameters(path)  # exactly one tagged cell, all `name: type = value`
    assert {"figures_dir", "interactive"} <= set(params) and params["interactive"][1] is True
    for name, (annotation, default) in params.items():
        assert matches(default, annotation), f"{name}: default does not fit {annotation}"
    assert nb["cells"][0]["cell_type"] == "markdown" and "".join(
        nb["cells"][0]["source"]
    ).startswith("# ")
    text = json.dumps(nb["cells"])
    assert "$" not in text.replace("\\\\$", ""), "no TeX: the offline report renders no math"
    # A teaching notebook states what it teaches, ends with exercises whose answers are
    # asserted when it runs, and prompts the reader to try its explorer.
    sources = ["".join(c["source"]) for c in nb["cells"]]
    assert "**Learning objectives.**" in sources[0]
    exercises = next(i for i, s in enumerate(sources) if s.startswith("## Exercises"))
    answers = nb["cells"][exercises + 1]
    assert answers["cell_type"] == "code" and "assert " in "".join(answers["source"])
    assert any(s.startswith("## Explore") and "Try this" in s for s in sources)


def test_parameter_validation_errors():
    (path,) = runner.notebooks(["01"])
    with pytest.raises(ValueError, match=r"no parameter 'rnak'.*rank: int"):
        validate(path, {"rnak": 3})
    with pytest.raises(TypeError, match="expects int"):
        validate(path, {"rank": "16"})
    with pytest.raises(TypeError, match=r"expects list\[int\]"):
        validate(path, {"layers": [0, "1"]})
    with pytest.raises(TypeError, match="expects int"):
        validate(path, {"rank": True})
    (four,) = runner.notebooks(["04"])
    assert validate(four, {"lrs": {"curlora": [1e-3]}}) == {"lrs": {"curlora": [1e-3]}}
    with pytest.raises(TypeError, match=r"dict\[str, list\[float\]\]"):
        validate(four, {"lrs": {"curlora": 1e-3}})
    with pytest.raises(FileNotFoundError, match="01_cur_sampling"):
        runner.notebooks(["09"])
    assert parse_assignment("lrs=[0.1, 0.2]") == ("lrs", [0.1, 0.2])
    assert parse_assignment("model=tiny-gpt2") == ("model", "tiny-gpt2")
    with pytest.raises(ValueError, match="name=value"):
        parse_assignment("rank")


def test_every_profile_fits_every_notebook_and_the_findings_notebooks_read_studies():
    for profile, per_notebook in PROFILES.items():
        assert set(per_notebook) == {p.name[:2] for p in NOTEBOOKS}, profile
        for path in NOTEBOOKS:
            if per_notebook[path.name[:2]] is not None:  # None: not in this profile yet
                validate(path, per_notebook[path.name[:2]])
    for prefix in runner.FINDINGS_NOTEBOOKS.values():
        (path,) = runner.notebooks([prefix])
        assert runner.study_parameters(path, {}) is not None


def test_load_study_takes_the_study_parameters(tmp_path, monkeypatch):
    import inspect

    from curlora.experiment.loading import load_study

    assert tuple(inspect.signature(load_study).parameters)[: len(STUDY_PARAMETERS)] == (
        STUDY_PARAMETERS
    )
    monkeypatch.setenv("CURLORA_RESULTS", str(tmp_path / "results"))
    smoke = PROFILES["smoke"]["04"]
    values = {k: smoke[k] for k in STUDY_PARAMETERS if k in smoke}
    values |= {
        "arms": ["curlora", "head-only"],
        "lrs": {"*": [3e-2]},
        "seeds": [0],
        "orders": "paper",
    }
    design, runs, study = load_study(**values, executor="serial")
    assert [r.spec for r in runs] == design.specs() and design.base.rank == 4
    assert study.arms == ["curlora", "head-only"] and study.base_rank == 4


def test_command_line_reports_bad_parameters_and_inputs(capsys):
    assert runner.main(["run", "--profile", "smoke", "--only", "03", "-p", "bogus=1"]) == 2
    assert "bogus" in capsys.readouterr().err
    assert (
        runner.main(["run", "--profile", "smoke", "--only", "04", "-p", "tasks=['missing.csv']"])
        == 2
    )
    assert "No task file" in capsys.readouterr().err


def _hashes(folder):
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.png"))
    }


def test_figures_folder_is_named_relative_to_the_notebooks_inside_the_project(tmp_path):
    # The committed report shows the parameters cell: no checkout's absolute path in it.
    assert runner.as_notebook_path(runner.FIGURES_DIR) == "../figures"
    assert runner.as_notebook_path(runner.ROOT / "build" / "runs" / "x" / "figures") == (
        "../build/runs/x/figures"
    )
    assert runner.as_notebook_path(tmp_path) == str(tmp_path.resolve())


@pytest.mark.notebooks
def test_smoke_suite_runs_renders_and_keeps_to_its_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("CURLORA_RESULTS", str(tmp_path / "results"))
    # Report this profile as the cpu and evidence profiles are, into a temporary folder.
    monkeypatch.setattr(runner, "REPORTED", ("smoke",))
    monkeypatch.setattr(runner, "REPORT_DIR", tmp_path / "report")
    committed = _hashes(runner.FIGURES_DIR)
    lines = []
    done = runner.run_suite("smoke", out=tmp_path / "run", publish=True, log=lines.append)
    assert done["report"] == tmp_path / "report" / "smoke"
    page = (done["report"] / "FINDINGS.md").read_text()
    assert (
        page.startswith("# Findings (smoke profile)") and "CURLoRA keeps perplexity fixed" in page
    )
    assert "(FINDINGS.md)" in (done["report"] / "README.md").read_text()
    assert [r["notebook"][:2] for r in done["rows"]] == ["00", "01", "02", "03", "04", "05", "06"]
    # Protocol 2 has its own section and decision box, on the page and in the README block.
    assert '<a id="protocol-2"></a>' in page and "curlora-vs-lora-domain" in page
    # Each protocol's "which method forgets least" table, and their verdicts side by side.
    assert page.count("Which method forgets least for the same learning") == 2
    # Notebook 04's smoke arms are every method: the plan's secondary peers read as such.
    assert all(name in page for name in ("DoRA", "PiSSA", "MiLoRA-style", "OSF", "CorDA"))
    assert "(10 here, marked)" in page and "A peer the plan registers as secondary" in page
    assert "## The same questions under both protocols" in page
    # The page opens with the small-sample flag, then the decision box; no progress bars.
    _title, flag, body = page.split("\n\n", 2)
    assert flag.startswith("> **smoke profile (small sample) — the evidence profile is the ref")
    assert body.startswith("> **Decision box**")
    assert "SHA-256" in page and "## Robustness" in page and "## The claims" in page
    for report in done["report"].glob("*.md"):
        text = report.read_text()
        assert "it/s]" not in text and "Loading weights" not in text, report.name
    # Before any run: the machine's rates and precision, then the work with its estimate here.
    assert lines[0].startswith("machine:") and "GFLOP/s; precision" in lines[0]
    assert re.fullmatch(r"experiments: \d+ runs \(\d+ to compute, about \d+ s here\)", lines[1])
    assert {line.split(" (")[0] for line in lines if line.startswith("✓")} == {
        f"✓ {p.stem}" for p in runner.notebooks()
    }
    figures = tmp_path / "run" / "figures"
    assert done["figures"] == figures and _hashes(runner.FIGURES_DIR) == committed
    pngs = sorted(figures.glob("*.png"))
    assert {p.name[:2] for p in pngs} == {"00", "01", "02", "03", "04", "05", "06"}
    assert len(pngs) == 22
    # Every figure the notebooks saved passed the figure lint (plots.save warns otherwise).
    for path in (tmp_path / "run" / "notebooks").glob("*.ipynb"):
        assert "FigureDefect" not in path.read_text(), path.name
    executed = json.loads(
        (tmp_path / "run" / "notebooks" / "04_forgetting_curves.ipynb").read_text()
    )
    text = json.dumps(executed["cells"])
    assert "Exploratory verdicts" in text and "CURLoRA keeps perplexity fixed" in text
    assert "n = 2 seeds" in text
    site = done["site"]
    pages = sorted(p.name for p in site.glob("*.html"))
    assert pages == [
        "00_concepts.html",
        "01_cur_sampling.html",
        "02_u_spectra.html",
        "03_parameter_counts.html",
        "04_forgetting_curves.html",
        "05_sampling_ablation.html",
        "06_continued_training.html",
        "findings.html",
        "index.html",
    ]
    # The site opens with the decision box, its links into the findings page.
    index = (site / "index.html").read_text()
    assert index.index("Decision box") < index.index("01_cur_sampling.html")
    assert (
        'href="findings.html#claim-' in index
        and 'id="claim-' in (site / "findings.html").read_text()
    )
    for page in site.glob("*.html"):
        html = page.read_text()
        assert not re.search(r"<script[^>]*src=\"https?://", html) and "cdnjs" not in html
    assert "data:image/png;base64" in (site / "04_forgetting_curves.html").read_text()
    # Re-rendering from cached results gives byte-identical figures.
    before = _hashes(figures)
    again = runner.run_suite(
        "smoke", only=["01", "02", "04"], out=tmp_path / "run", log=lines.append
    )
    assert _hashes(figures) == before
    # Not published: the Markdown report stays in the run's folder.
    assert again["report"] == tmp_path / "run" / "report"
    assert [line for line in lines if line.startswith("experiments:")][-1].endswith("(all cached)")


def _tables(folder, seed=0):
    rng = np.random.default_rng(seed)
    words = ["good", "bad", "fine", "awful", "great", "dull"]
    paths = []
    for i, suffix in enumerate((".csv", ".jsonl", ".parquet")):
        labels = rng.choice(["neg", "pos", "mid"][: 2 + (i == 2)], 80)
        frame = pd.DataFrame(
            {
                "text": [f"{rng.choice(words)} {rng.choice(words)} item {k}" for k in range(80)],
                "label": labels,
            }
        )
        path = folder / f"task{i}{suffix}"
        if suffix == ".csv":
            frame.to_csv(path, index=False)
        elif suffix == ".jsonl":
            frame.to_json(path, orient="records", lines=True)
        else:
            frame.to_parquet(path)
        paths.append(path)
    return paths


@pytest.mark.notebooks
def test_your_own_files_and_model_folder_with_one_command(tmp_path, monkeypatch):
    from curlora.models import load_model

    monkeypatch.setenv("CURLORA_RESULTS", str(tmp_path / "results"))
    model, tok = load_model("tiny-llama", seed=3)
    model.save_pretrained(tmp_path / "my-model")
    tok.save_pretrained(tmp_path / "my-model")
    a, b, c = _tables(tmp_path)
    common = {
        "model": str(tmp_path / "my-model"),
        "seeds": [0, 1],
        "arms": ["curlora", "head-only"],
        "lrs": {"curlora": [1e-2, 3e-2]},
    }
    lines = []
    # As a user types it, from the folder holding the files: relative paths, which the runner
    # resolves before papermill runs the notebook inside notebooks/.
    monkeypatch.chdir(tmp_path)
    assert (
        runner.main(
            [
                "run",
                "--profile",
                "smoke",
                "--only",
                "04",
                "--out",
                str(tmp_path / "byo"),
                "-p",
                "model=./my-model",
                "-p",
                f"tasks={[a.name, b.name, c.name]!r}",
                "-p",
                "seeds=[0, 1]",
                "-p",
                "arms=['curlora', 'head-only']",
                "-p",
                "lrs={'curlora': [0.01, 0.03]}",
            ]
        )
        == 0
    )
    executed = (tmp_path / "byo" / "notebooks" / "04_forgetting_curves.ipynb").read_text()
    assert "`task0` → `task1` → `task2`" in executed
    assert absolute_references({"tasks": ["task0.csv?text=text"], "model": "smollm2-135m"}) == {
        "tasks": [f"{a}?text=text"],
        "model": "smollm2-135m",
    }
    # A second design on two of the files, then one file edited: only runs that read it recompute.
    two = {**common, "tasks": [str(a), str(b)]}
    three = {**common, "tasks": [str(a), str(b), str(c)]}
    runner.run_suite("smoke", only=["04"], overrides=two, out=tmp_path / "two", log=lines.append)
    pd.read_parquet(c).assign(text=lambda d: d["text"] + " edited").to_parquet(c)
    lines.clear()
    runner.run_suite("smoke", only=["04"], overrides=two, out=tmp_path / "two", log=lines.append)
    runner.run_suite(
        "smoke", only=["04"], overrides=three, out=tmp_path / "three", log=lines.append
    )
    counts = [line for line in lines if line.startswith("experiments:")]
    assert counts[0] == "experiments: 6 runs (all cached)"
    assert "(6 to compute, about " in counts[1]
