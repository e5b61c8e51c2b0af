"""Notebook hygiene, the runner's parameter checks, and the whole suite under papermill (smoke)."""

from __future__ import annotations

import hashlib
import json

import pytest

from curlora import notebooks as runner

NOTEBOOKS = runner.notebooks()


def test_the_four_notebooks_exist():
    assert [p.stem[:2] for p in NOTEBOOKS] == ["01", "02", "03", "04"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_hygiene(path):
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), (
        "strip outputs"
    )
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    params = runner.declared_parameters(path)  # exactly one tagged cell, all `name: type = value`
    assert {"figures_dir", "interactive"} <= set(params)
    for name, (annotation, default) in params.items():
        assert runner._matches(default, annotation), f"{name}: default does not fit {annotation}"
    # Narrative first: every notebook opens with a markdown cell that states its question.
    assert nb["cells"][0]["cell_type"] == "markdown" and nb["cells"][0]["source"][0].startswith(
        "# "
    )


def test_parameter_validation_errors():
    path = NOTEBOOKS[0]
    with pytest.raises(ValueError, match=r"no parameter 'rnak'.*rank: int"):
        runner.validate(path, {"rnak": 3})
    with pytest.raises(TypeError, match="expects int"):
        runner.validate(path, {"rank": "16"})
    with pytest.raises(TypeError, match=r"expects list\[int\]"):
        runner.validate(path, {"layers": [0, "1"]})
    with pytest.raises(TypeError, match="expects int"):
        runner.validate(path, {"rank": True})
    assert runner.validate(path, {"rank": 8, "layers": [0]}) == {"rank": 8, "layers": [0]}
    with pytest.raises(FileNotFoundError, match="01_cur_sampling"):
        runner.notebooks(["09"])
    assert runner.parse_assignment("lrs=[0.1, 0.2]") == ("lrs", [0.1, 0.2])
    assert runner.parse_assignment("model=tiny-gpt2") == ("model", "tiny-gpt2")
    with pytest.raises(ValueError, match="name=value"):
        runner.parse_assignment("rank")


def test_command_line_reports_bad_parameters(capsys):
    assert runner.main(["run", "--profile", "smoke", "--only", "03", "-p", "bogus=1"]) == 2
    assert "bogus" in capsys.readouterr().err


@pytest.mark.notebooks
def test_smoke_suite_runs_and_writes_identical_figures(tmp_path, monkeypatch):
    monkeypatch.setenv("CURLORA_RESULTS", str(tmp_path / "results"))
    figures, build = tmp_path / "figures", tmp_path / "build"
    rows = runner.run_suite("smoke", figures_dir=figures, build_dir=build)
    assert [r["notebook"][:2] for r in rows] == ["01", "02", "03", "04"]
    pngs = sorted(figures.glob("*.png"))
    assert {p.name[:2] for p in pngs} == {"01", "02", "03", "04"} and len(pngs) >= 13
    assert all(p.stat().st_size > 10_000 for p in pngs)
    executed = json.loads((build / "04_forgetting_curves.ipynb").read_text())
    text = json.dumps(executed["cells"])
    assert "Verdicts" in text and "CURLoRA keeps perplexity fixed" in text
    # Re-rendering from cached results gives byte-identical figures.
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in pngs}
    runner.run_suite("smoke", only=["01", "02", "04"], figures_dir=figures, build_dir=build)
    after = {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(figures.glob("*.png"))
    }
    assert before == after
