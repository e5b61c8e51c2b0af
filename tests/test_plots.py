"""Every figure function returns a Figure, called as the notebooks call it."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from matplotlib.figure import Figure

from curlora import analysis, findings, plots
from curlora.continual import preset, sweep_runs


@pytest.fixture(scope="module")
def smoke_runs(tmp_path_factory):
    import os

    os.environ["CURLORA_RESULTS"] = str(tmp_path_factory.mktemp("results"))
    runs = sweep_runs(
        [preset("smoke", method=m, train_size=16) for m in ("curlora", "lora", "head-only", "svd")],
        [0, 1],
        progress=False,
    )
    del os.environ["CURLORA_RESULTS"]
    return runs


def test_sampling_figures(tmp_path):
    W = torch.randn(32, 48) * torch.linspace(0.1, 2, 48)
    figs = [
        plots.norm_distributions({"a": W, "b": W.T}),
        plots.selection_probabilities(W),
        plots.distance_from_uniform(
            pd.DataFrame(analysis.uniformity_vs_width([16, 64], ("inverse", "norm")))
        ),
        plots.picked_energy(
            pd.DataFrame(analysis.picked_energy_share(W, 4, ("inverse", "lowest"), [0, 1]))
        ),
        plots.reconstruction_error(
            pd.DataFrame(analysis.reconstruction_table(W, [4, 8], ("norm",), [0]))
        ),
        plots.parameter_counts(pd.DataFrame(analysis.parameter_table(["gpt2"], [16]))),
    ]
    assert all(isinstance(f, Figure) for f in figs)
    path = plots.save(figs[0], tmp_path / "a.png")
    assert path.read_bytes()[:4] == b"\x89PNG" and b"matplotlib" not in path.read_bytes()


def test_result_figures_and_findings(smoke_runs):
    layers = pd.concat(
        [r.layers.assign(method=r.spec.method) for r in smoke_runs if r.spec.method != "head-only"]
    )
    lr_table = pd.DataFrame(
        [
            {
                "method": "curlora",
                "lr": lr,
                "seed": 0,
                "accuracy": a,
                "majority": 0.5,
                "ppl_initial": 10.0,
                "ppl_final": f,
                "ppl_increase": f - 10,
                "delta_rel": 0.1,
            }
            for lr, a, f in [(1e-3, 0.6, 10.1), (1e-2, 0.8, 12.0)]
        ]
    )
    figs = [
        plots.u_spectra(layers),
        plots.change_by_layer(layers, "delta_rel"),
        plots.change_by_layer(layers, "output_shift"),
        plots.accuracy_heatmaps(smoke_runs),
        plots.task_accuracy_curves(smoke_runs),
        plots.perplexity_trajectory(smoke_runs),
        plots.stability_plasticity(lr_table),
    ]
    assert all(isinstance(f, Figure) for f in figs)
    table = findings.comparison_table(smoke_runs)
    assert "wiki-pairs after movie-snippets" in table.index and "majority class" in table.columns
    verdicts = findings.verdicts(smoke_runs, lr_table)
    assert len(verdicts) == 5 and all("**" in v or "Best task accuracy" in v for v in verdicts)
    assert "curlora 0.600 (lr 0.001)" in verdicts[-1]  # 1e-2 raised perplexity by 20%


def test_paper_table_is_the_papers():
    paper = findings.paper_results().set_index(["model", "metric"])
    assert paper.loc[("Mistral-7B", "final_ppl"), "LoRA-16"] == 65055.02
    assert paper.loc[("GPT-2-large", "initial_ppl"), "CURLoRA-8"] == 28.25
