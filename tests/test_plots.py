"""Every figure function returns a Figure, called as the notebooks call it."""

from __future__ import annotations

import os

import pandas as pd
import pytest
import torch
from matplotlib.figure import Figure

from curlora import findings, plots, sampling, tables
from curlora.counting import parameter_table
from curlora.experiment import run_many
from curlora.experiment.design import study_design
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


def test_sampling_figures(tmp_path):
    W = torch.randn(32, 48) * torch.linspace(0.1, 2, 48)
    stats = pd.DataFrame(sampling.selection_statistics(W, 8, ("inverse", "norm", "lowest"), [0, 1]))
    assert {"C_duplicates", "R_rank", "C_cond"} <= set(stats) and (stats["C_rank"] <= 8).all()
    figs = [
        plots.norm_distributions({"a": W, "b": W.T}),
        plots.leverage_vs_norm(W, 4),
        plots.selection_probabilities(W),
        plots.picked_columns(W, 8, "inverse", 0),
        plots.picked_columns(W, 8, "lowest", 0),
        plots.distance_from_uniform(
            pd.DataFrame(sampling.uniformity_vs_width([16, 64], ("inverse", "norm")))
        ),
        plots.picked_energy(
            pd.DataFrame(sampling.picked_energy_share(W, 4, ("inverse", "lowest"), [0, 1]))
        ),
        plots.selection_statistics(stats),
        plots.reconstruction_error(
            pd.DataFrame(sampling.reconstruction_table(W, [4, 8], ("norm",), [0])),
            pd.DataFrame(sampling.svd_error(W, [4, 8])),
        ),
        plots.parameter_counts(pd.DataFrame(parameter_table(["gpt2"], [16]))),
    ]
    assert all(isinstance(f, Figure) for f in figs)
    path = plots.save(figs[0], tmp_path / "a.png")
    assert path.read_bytes()[:4] == b"\x89PNG" and b"matplotlib" not in path.read_bytes()


def test_leverage_scores_sum_to_one_and_follow_the_singular_vectors():
    W = torch.randn(20, 30)
    lev = sampling.leverage_scores(W, 5)
    assert lev.sum().item() == pytest.approx(1.0) and (lev >= 0).all()
    assert sampling.svd_error(W, [20])[0]["error"] == pytest.approx(0.0, abs=1e-9)


def test_result_figures_and_tables(smoke_study):
    study = smoke_study
    layers = pd.concat(
        [
            r.layers.assign(arm=a)
            for a in study.arms
            if a != "head-only"
            for r in study.runs_of(a)[:1]
        ]
    )
    figs = [
        plots.delta_spectra(layers),
        plots.delta_spectra(layers, "u_sv"),
        plots.change_by_layer(layers, "delta_rel"),
        plots.change_by_layer(layers, "output_shift"),
        plots.effective_step(layers),
        plots.accuracy_heatmaps(study),
        plots.task_accuracy_curves(study),
        plots.perplexity_trajectory(study),
        plots.frontiers(study),
        plots.matched_vs_same_rate(tables.ablation_table(study)),
    ]
    assert all(isinstance(f, Figure) for f in figs)
    # Every result figure states how many seeds it pools.
    assert "n = 2 seeds" in figs[6]._suptitle.get_text()
    # Perplexity ratios are drawn as the findings read them: geometric means, on a log axis.
    ppl_axis = figs[7].axes[0]
    bands = [v for c in ppl_axis.collections for v in c.get_paths()[0].vertices[:, 1]]
    assert ppl_axis.get_yscale() == "log" and min(bands) > 0
    table = tables.comparison_table(study)
    assert "wiki-pairs after movie-snippets" in table.index and "majority class" in table.columns
    assert len(findings.verdicts(study)) >= 4


def test_paper_table_is_the_papers():
    paper = tables.paper_results().set_index(["model", "metric"])
    assert paper.loc[("Mistral-7B", "final_ppl"), "LoRA-16"] == 65055.02
    assert paper.loc[("GPT-2-large", "initial_ppl"), "CURLoRA-8"] == 28.25
