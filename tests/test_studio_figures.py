"""The studio's Plotly figure builders on hand-made inputs, and the results page's figures
matching the names its Markdown links to (no experiment is run here)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from cookbook_core.experiments import report
from cookbook_core.mix import mixing
from cookbook_core.mix.mixing import Run
from cookbook_core.studio import figures_align, figures_experiments, figures_mix, figures_selfguide

A = pd.DataFrame(
    {"squad": [0.10, 0.50, 0.20], "boolq": [0.55, 0.45, 0.60]},
    index=["base", "document_qa", "yes_no_qa"],
)


def test_mixing_figures() -> None:
    res = mixing.optimize(A, "maxmin")
    bars = figures_mix.weights_figure(res)
    assert list(bars.data[0].x) == list(res.weights)
    heat = figures_mix.heatmap_figure(A)
    assert heat.data[0].z.shape == (3, 2)
    assert heat.data[0].z[1][0] == pytest.approx(50.0)  # points, not fractions
    table = mixing.validation_table(A, [Run("m", {"document_qa": 1.0}, {"squad": 0.52})])
    fig = figures_mix.scatter_figure(table)
    assert any(t.name == "y = x" for t in fig.data)
    what = mixing.what_if(A, {"document_qa": 0.5, "yes_no_qa": 0.5}, A.loc["base"])
    assert [t.name for t in figures_mix.what_if_figure(what).data] == [
        "reference",
        "mixture (predicted)",
    ]


def test_funnel_figure_counts_what_each_stage_kept() -> None:
    funnel = {
        "stages": [
            {"stage": "generated", "entered": 10, "kept": 10, "dropped": 0, "reason": ""},
            {"stage": "duplicate", "entered": 10, "kept": 7, "dropped": 3, "reason": "dup"},
            {"stage": "trained", "entered": 7, "kept": 7, "dropped": 0, "reason": ""},
        ]
    }
    fig = figures_selfguide.funnel_figure(funnel)
    assert list(fig.data[0].y) == ["generated", "duplicate", "trained"]
    assert list(fig.data[0].x) == [10, 7, 7]
    assert list(fig.data[0].hovertext) == ["", "-3: dup", ""]


def test_delta_figure_in_points() -> None:
    deltas = pd.DataFrame(
        {"run": ["a", "b"], "delta_alignment": [0.1, -0.05], "delta_accuracy": [0.02, 0.0]}
    )
    fig = figures_align.delta_figure(deltas)
    assert list(fig.data[0].x) == pytest.approx([10.0, -5.0])
    assert list(fig.data[0].y) == pytest.approx([2.0, 0.0])


def _collected() -> dict:
    """What :func:`report.collect` returns for one single-task row and one mix experiment."""
    single = pd.DataFrame(
        {
            "template": ["document_qa"],
            "task": ["squad"],
            "source": ["single-task exp1"],
            "base": [10.0],
            "tuned": [20.0],
            "base_ci": [[8.0, 12.0]],
            "tuned_ci": [[18.0, 22.0]],
        }
    )
    mix = {
        "name": "mix1",
        "matrix": {"document_qa": {"squad": 50.0}, "yes_no_qa": {"squad": 20.0}},
        "validation": {
            "stats": {"cells": 1},
            "table": mixing.validation_table(
                A, [Run("m", {"document_qa": 1.0}, {"squad": 0.52})]
            ).to_dict("records"),
        },
        "comparison": {"base model": {"squad": 10.0, "average": 10.0, "worst": 10.0}},
    }
    points = pd.DataFrame(
        {"template": ["document_qa"], "delta_alignment": [0.1], "delta_accuracy": [0.02]}
    )
    return {"single": [], "mixes": [mix], "single_table": single, "alignment_points": points}


def test_report_figures_are_the_ones_the_page_links(tmp_path: Path) -> None:
    c = _collected()
    names = report.figure_names(c)
    assert names == ["single_task", "alignment", "mix1_matrix", "mix1_fit", "mix1_comparison"]
    figs = figures_experiments.report_figures(c)
    assert list(figs) == names
    assert figs["mix1_matrix"].layout.title.text == "Accuracy matrix (mix1)"
    assert [b.name for b in figs["single_task"].data] == ["base model", "fine-tuned on template"]
    # without a fit table or alignment points those figures (and their links) go away
    c["mixes"][0]["validation"] = {"error": "too few mixtures"}
    c["alignment_points"] = pd.DataFrame()
    assert report.figure_names(c) == ["single_task", "mix1_matrix", "mix1_comparison"]
    assert list(figures_experiments.report_figures(c)) == report.figure_names(c)
