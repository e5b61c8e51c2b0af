"""Live widget explorers for the notebooks (JupyterLab and Voilà): controls that recompute.

Each function returns an ipywidgets box: controls above, the figure below, redrawn whenever a
control changes. The sampling explorer recomputes CUR on the model's real weights; the others
re-read the cached runs (changing a run's settings means training it, which the notebooks'
parameters are for).
"""

from __future__ import annotations

import torch
from IPython.display import display
from torch import nn

from curlora import cur, plots
from curlora.domain_study import DomainStudy
from curlora.outcomes import OUTCOMES, STABILITY
from curlora.sampling import named_weights, selection_statistics
from curlora.study import Study
from curlora.targets import adaptable_module_names, default_targets


def _box(controls: dict, draw) -> object:
    import ipywidgets as widgets

    out = widgets.interactive_output(draw, controls)
    return widgets.VBox([widgets.HBox(list(controls.values())), out])


def _show(fig) -> None:
    display(fig)


def sampling_explorer(model: nn.Module, rank: int = 16, seed: int = 0) -> object:
    """Pick a layer, projection, sampling mode, rank and seed; CUR is drawn again on the real weight."""
    import ipywidgets as widgets

    names = [n for n in adaptable_module_names(model)]
    projections = [t for t in default_targets(model) if any(n.endswith("." + t) for n in names)]
    layers = sorted({int(p) for n in names for p in n.split(".") if p.isdigit()})
    weights = {}

    def weight(layer: int, projection: str) -> torch.Tensor:
        key = (layer, projection)
        if key not in weights:
            weights[key] = next(iter(named_weights(model, [projection], [layer]).values()))
        return weights[key]

    controls = {
        "layer": widgets.Dropdown(options=layers, value=layers[0], description="layer"),
        "projection": widgets.Dropdown(
            options=projections, value=projections[0], description="projection"
        ),
        "mode": widgets.Dropdown(
            options=list(cur.SAMPLING_MODES), value="inverse", description="mode"
        ),
        "rank": widgets.IntSlider(value=rank, min=1, max=64, description="rank"),
        "seed": widgets.IntText(
            value=seed, description="seed", layout=widgets.Layout(width="10em")
        ),
    }

    def draw(layer, projection, mode, rank, seed):
        W = weight(layer, projection)
        rank = min(rank, *W.shape)
        fig = plots.picked_columns(W, rank, mode, seed, title=f"layer {layer} {projection}")
        stats = selection_statistics(W, rank, (mode,), [seed])[0]
        print(
            f"{mode}, r = {rank}, seed {seed}: {stats['C_duplicates']:.0%} of column picks repeat, "
            f"rank(C) = {stats['C_rank']}, cond(C) = {stats['C_cond']:.3g}, "
            f"‖C‖ = {stats['C_norm']:.2f} × an average column set"
        )
        _show(fig)

    return _box(controls, draw)


def spectra_explorer(study: Study) -> object:
    """Pick an arm, a layer and a seed: the singular values of ΔW and U after each task."""
    import ipywidgets as widgets

    arms = [a for a in study.arms if a != "head-only"]
    first = study.runs_of(arms[0])[0]
    layers = list(dict.fromkeys(first.layers["layer"]))
    controls = {
        "arm": widgets.Dropdown(options=arms, value=arms[0], description="method"),
        "layer": widgets.Dropdown(options=layers, value=layers[0], description="layer"),
        "seed": widgets.Dropdown(options=study.seeds, value=study.seeds[0], description="seed"),
    }

    def draw(arm, layer, seed):
        runs = [r for r in study.runs_of(arm) if r.spec.seed == seed][:1]
        if not runs:
            print(f"No {arm} run with seed {seed}.")
            return
        rows = runs[0].layers[runs[0].layers["layer"] == layer].assign(arm=arm)
        _show(plots.delta_spectra(rows))

    return _box(controls, draw)


def counts_explorer(model: str = "mistralai/Mistral-7B-v0.3", rank: int = 16) -> object:
    """Type a shipped config name, hub id or model folder and pick a rank: counts recomputed."""
    import ipywidgets as widgets
    import pandas as pd

    from curlora.counting import parameter_table

    controls = {
        "model": widgets.Text(value=model, description="model", continuous_update=False),
        "rank": widgets.IntSlider(value=rank, min=1, max=128, description="rank"),
    }

    def draw(model, rank):
        try:
            table = pd.DataFrame(parameter_table([model], [rank]))
        except (ValueError, TypeError, OSError) as err:
            print(err)
            return
        display(table.pivot_table(index="rank", columns="method", values="trainable").astype(int))
        _show(plots.parameter_counts(table, rank))

    return _box(controls, draw)


def forgetting_explorer(study: Study) -> object:
    """Choose arms, seeds, a measure and a task order: the figure is redrawn from the cached runs."""
    import ipywidgets as widgets

    measures = {
        "accuracy along the sequence": "curves",
        "perplexity": "perplexity",
        "accuracy matrices": "matrices",
    }
    measures |= {f"frontier: {OUTCOMES[k].description}": k for k in STABILITY}
    orders = {" → ".join(o): o for o in study.orders}
    controls = {
        "arms": widgets.SelectMultiple(
            options=study.arms, value=tuple(study.arms), description="methods"
        ),
        "seeds": widgets.SelectMultiple(
            options=study.seeds, value=tuple(study.seeds), description="seeds"
        ),
        "measure": widgets.Dropdown(options=list(measures), description="measure"),
        "order": widgets.Dropdown(options=list(orders), description="order"),
    }

    def draw(arms, seeds, measure, order):
        if not seeds or not arms:
            print("Choose at least one method and one seed.")
            return
        sub = study.of_order(orders[order]).of_seeds(seeds)
        kind = measures[measure]
        keep = [a for a in arms if a in sub.arms]
        if kind == "curves":
            fig = plots.task_accuracy_curves(sub, keep)
        elif kind == "perplexity":
            fig = plots.perplexity_trajectory(sub, keep)
        elif kind == "matrices":
            fig = plots.accuracy_heatmaps(sub, keep)
        else:
            fig = plots.frontiers(sub, keep, (kind,))
        _show(fig)

    return _box(controls, draw)


def ablation_explorer(study: Study, reference: str = "curlora") -> object:
    """Pick a sampling rule to set against eq. 4, a stability outcome and a task order: both
    frontiers are drawn, and their difference printed at one rate and at matched plasticity."""
    import ipywidgets as widgets

    from curlora.tables import ablation_table

    others = study.ablations(reference)
    orders = {"all, averaged within each seed": None} | {" → ".join(o): o for o in study.orders}
    controls = {
        "other": widgets.Dropdown(options=others, value=others[0], description="against"),
        "outcome": widgets.Dropdown(
            options={OUTCOMES[k].description: k for k in STABILITY}, description="outcome"
        ),
        "order": widgets.Dropdown(options=list(orders), description="order"),
    }

    def draw(other, outcome, order):
        sub = study if orders[order] is None else study.of_order(orders[order])
        row = ablation_table(sub, reference, outcome).set_index("label").iloc[others.index(other)]
        print(
            f"{row.name}, {row['unit']}: at one rate ({row['rate']:g}) "
            f"{row['same_mean']:+.2f} [{row['same_lo']:+.2f}, {row['same_hi']:+.2f}]; at matched "
            + (
                f"plasticity {row['matched_mean']:+.2f} [{row['matched_lo']:+.2f}, "
                f"{row['matched_hi']:+.2f}]"
                if row["matched_mean"] == row["matched_mean"]
                else f"plasticity: not defined ({row['unmatched']})"
            )
            + f"; n = {int(row['n'])} seeds."
        )
        _show(plots.frontiers(sub, [reference, other], (outcome,)))

    return _box(controls, draw)


def domain_explorer(study: DomainStudy) -> object:
    """Pick the arms and the split learning is read on; the two-axis frontier is redrawn."""
    import ipywidgets as widgets

    controls = {
        "arms": widgets.SelectMultiple(
            options=study.arms, value=tuple(study.arms), description="arms", rows=4
        ),
        "split": widgets.ToggleButtons(
            options=[("validation", "val"), ("evaluation", "eval")],
            value="val",
            description="learning on",
        ),
    }

    def draw(arms: tuple, split: str) -> None:
        if not arms:
            print("Select at least one arm.")
            return
        _show(plots.domain_frontiers(study, list(arms), split))

    return _box(controls, draw)
