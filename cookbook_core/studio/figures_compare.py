"""Plotly figures of the side-by-side model comparison (the Compare page).

Pure figure builders over the tables of :mod:`cookbook_core.studio.compare`: per-task
bars of 2–4 models with their bootstrap 95% intervals, and the mixture weights that
made each model.  It computes nothing itself and imports no Streamlit (so the CLI may
export these figures too).
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from cookbook_core.studio import evaluation as studio_eval


def task_bars_figure(frame: pd.DataFrame) -> go.Figure:
    """Grouped bars from :func:`compare.scores_frame`: x = task (with its metric), one bar
    per model, the run's 95% bootstrap interval as asymmetric error bars, in percent (the
    Evaluation page's figure, one series per compared model)."""
    return studio_eval.scores_figure(frame, series="label")


def weights_figure(frame: pd.DataFrame, models: list[str]) -> go.Figure:
    """Stacked horizontal bars from :func:`compare.weights_frame`: one bar per model (in
    ``models``' order, empty for a model without a mixture), one colour per template."""
    fig = go.Figure()
    for template, part in frame.groupby("template", sort=True):
        w = dict(zip(part["model"], part["weight"], strict=True))
        fig.add_trace(
            go.Bar(
                name=str(template),
                y=models,
                x=[w.get(m, 0.0) for m in models],
                orientation="h",
                text=[f"{w[m]:.2f}" if m in w else "" for m in models],
                textposition="inside",
                hovertemplate="model %{y}<br>%{x:.2f}<extra>" + str(template) + "</extra>",
            )
        )
    fig.update_layout(
        barmode="stack",
        xaxis={"title": "weight in the training mixture", "range": [0, 1]},
        yaxis={"autorange": "reversed"},
        height=120 + 40 * len(models),
        margin={"l": 40, "r": 20, "t": 20, "b": 40},
        legend={"orientation": "h", "y": -0.4},
    )
    return fig
