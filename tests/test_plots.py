"""Every figure function returns a Figure, called as the notebooks call it, and every figure reads:
no text off the canvas, no empty series, no band outside its range, no legend entry twice."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.figure import Figure
from synthetic_runs import domain_study

from curlora import concepts, findings, plots, sampling, tables
from curlora.counting import parameter_table
from curlora.experiment import run_many
from curlora.experiment.design import study_design
from curlora.plots.lint import bounded, figure_problems
from curlora.plots.style import figure
from curlora.study import Study


@pytest.fixture(scope="module")
def smoke_study(tmp_path_factory):
    os.environ["CURLORA_RESULTS"] = str(tmp_path_factory.mktemp("results"))
    try:
        design = study_design(
            "smoke",
            tasks=["wiki-pairs", "movie-snippets"],
            train_size=16,
            arms=["curlora", "lora", "curlora-norm", "head-only"],
            lrs={"*": [3e-3, 3e-2]},
            seeds=[0, 1],
        )
        runs = run_many(design.specs(), executor="serial", progress=False)
    finally:
        del os.environ["CURLORA_RESULTS"]
    return Study(runs, base_rank=4)


@pytest.fixture(scope="module")
def sampling_figures() -> dict[str, Figure]:
    W = torch.randn(32, 48, generator=torch.Generator().manual_seed(0)) * torch.linspace(0.1, 2, 48)
    stats = pd.DataFrame(sampling.selection_statistics(W, 8, ("inverse", "norm", "lowest"), [0, 1]))
    return {
        "frontier_schematic": plots.frontier_schematic(concepts.schematic_frontiers()),
        "norm_distributions": plots.norm_distributions({"a": W, "b": W.T}),
        "leverage_vs_norm": plots.leverage_vs_norm(W, 4),
        "selection_probabilities": plots.selection_probabilities(W),
        "picked_columns": plots.picked_columns(W, 8, "inverse", 0),
        "picked_columns (deterministic)": plots.picked_columns(W, 8, "lowest", 0),
        "distance_from_uniform": plots.distance_from_uniform(
            pd.DataFrame(sampling.uniformity_vs_width([16, 64], ("inverse", "norm")))
        ),
        "picked_energy": plots.picked_energy(
            pd.DataFrame(sampling.picked_energy_share(W, 4, ("inverse", "lowest"), [0, 1]))
        ),
        "selection_statistics": plots.selection_statistics(stats),
        "reconstruction_error": plots.reconstruction_error(
            pd.DataFrame(sampling.reconstruction_table(W, [4, 8], ("norm",), [0])),
            pd.DataFrame(sampling.svd_error(W, [4, 8])),
        ),
        "parameter_counts": plots.parameter_counts(
            pd.DataFrame(parameter_table(["gpt2", "gpt2-large", "mistralai/Mistral-7B-v0.3"], [16]))
        ),
    }


@pytest.fixture(scope="module")
def result_figures(smoke_study) -> dict[str, Figure]:
    study = smoke_study
    layers = pd.concat(
        [
            r.layers.assign(arm=a)
            for a in study.arms
            if a != "head-only"
            for r in study.runs_of(a)[:1]
        ]
    )
    return {
        "delta_spectra": plots.delta_spectra(layers),
        "delta_spectra (U)": plots.delta_spectra(layers, "u_sv"),
        "change_by_layer": plots.change_by_layer(layers, "delta_rel"),
        "change_by_layer (shift)": plots.change_by_layer(layers, "output_shift"),
        "effective_step": plots.effective_step(layers, caption="seed 0; each arm at its rate"),
        "accuracy_heatmaps": plots.accuracy_heatmaps(study),
        "task_accuracy_curves": plots.task_accuracy_curves(study),
        "perplexity_trajectory": plots.perplexity_trajectory(study),
        "frontiers": plots.frontiers(study),
        "matched_vs_same_rate": plots.matched_vs_same_rate(tables.ablation_table(study)),
        "domain_frontiers": plots.domain_frontiers(domain_study(range(3))),
        "domain_losses": plots.domain_losses(domain_study(range(3))),
    }


def test_every_plots_function_is_drawn_and_reads(sampling_figures, result_figures):
    figures = {**sampling_figures, **result_figures}
    drawn = {name.split(" (")[0] for name in figures}
    assert set(plots.__all__) - {"save", "figure_problems"} <= drawn
    problems = {name: figure_problems(fig) for name, fig in figures.items()}
    assert not {k: v for k, v in problems.items() if v}


def test_the_lint_sees_each_defect():
    fig, axes = figure(1, 1, width=2.0)
    ax = axes[0, 0]
    ax.plot([np.nan, np.nan], [1, 2], label="matched")
    ax.plot([0, 1], [0.5, 0.6], label="same")
    ax.plot([0, 1], [0.4, 0.5], label="same")
    ax.fill_between([0, 1], [0.9, 0.95], [1.0, 1.1])
    bounded(ax, 0, 1)
    ax.legend()
    fig.suptitle("a title far too long for a figure two inches wide, cut at both of its ends")
    found = " | ".join(figure_problems(fig))
    for defect in (
        "runs off the canvas",
        "no finite point",
        "outside its variable's range",
        "twice",
    ):
        assert defect in found


def test_sampling_figures_save_without_a_stamp(sampling_figures, tmp_path):
    W = torch.randn(32, 48) * torch.linspace(0.1, 2, 48)
    stats = pd.DataFrame(sampling.selection_statistics(W, 8, ("inverse", "norm", "lowest"), [0, 1]))
    assert {"C_duplicates", "R_rank", "C_cond"} <= set(stats) and (stats["C_rank"] <= 8).all()
    path = plots.save(sampling_figures["norm_distributions"], tmp_path / "a.png")
    assert path.read_bytes()[:4] == b"\x89PNG" and b"matplotlib" not in path.read_bytes()


def test_leverage_scores_sum_to_one_and_follow_the_singular_vectors():
    W = torch.randn(20, 30)
    lev = sampling.leverage_scores(W, 5)
    assert lev.sum().item() == pytest.approx(1.0) and (lev >= 0).all()
    assert sampling.svd_error(W, [20])[0]["error"] == pytest.approx(0.0, abs=1e-9)


def test_result_figures_and_tables(smoke_study, result_figures):
    study = smoke_study
    # Every result figure states how many seeds it pools and in which task order.
    curves = result_figures["task_accuracy_curves"]._suptitle.get_text()
    assert "n = 2 seeds" in curves and "wiki-pairs → movie-snippets" in curves
    # Perplexity ratios are drawn as the findings read them: geometric means, on a log axis.
    ppl_axis = result_figures["perplexity_trajectory"].axes[0]
    bands = [v for c in ppl_axis.collections for v in c.get_paths()[0].vertices[:, 1]]
    assert ppl_axis.get_yscale() == "log" and min(bands) > 0
    # Accuracy bands stay inside [0, 1].
    for ax in result_figures["task_accuracy_curves"].axes:
        ys = [v for c in ax.collections for p in c.get_paths() for v in p.vertices[:, 1]]
        assert 0 <= min(ys) and max(ys) <= 1
    table = tables.comparison_table(study)
    assert "wiki-pairs after movie-snippets" in table.index and "majority class" in table.columns
    assert len(findings.verdicts(study)) >= 4


def test_paper_table_is_the_papers():
    paper = tables.paper_results().set_index(["model", "metric"])
    assert paper.loc[("Mistral-7B", "final_ppl"), "LoRA-16"] == 65055.02
    assert paper.loc[("GPT-2-large", "initial_ppl"), "CURLoRA-8"] == 28.25
