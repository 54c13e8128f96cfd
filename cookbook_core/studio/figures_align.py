"""Plotly figures of template alignment: Δ generation alignment vs Δ accuracy across runs,
and the gain split by rule-following.

Draws the deltas that :mod:`cookbook_core.align.runs` computes (``delta_alignment``,
``delta_accuracy`` per run and task) and the contributions that
:mod:`cookbook_core.align.gain` computes; used by the Alignment and Experiments pages
and by ``docs/RESULTS.md``.  It computes no statistic and imports no Streamlit.
"""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go


def delta_figure(
    deltas: pd.DataFrame, title: str = "Change in alignment vs change in accuracy"
) -> go.Figure:
    """Scatter of Δ generation alignment vs Δ accuracy (points), one point per run/task."""
    df = deltas.assign(
        d_align=100 * deltas["delta_alignment"], d_acc=100 * deltas["delta_accuracy"]
    )
    color = "task" if "task" in df.columns else None
    fig = px.scatter(df, x="d_align", y="d_acc", color=color, hover_data=["run"], title=title)
    fig.update_layout(xaxis_title="Δ generation alignment (pts)", yaxis_title="Δ accuracy (pts)")
    return fig


def gain_split_figure(
    contributions: pd.DataFrame, title: str = "Where the gain comes from: rule-following or not"
) -> go.Figure:
    """Grouped bars per model: the total gain and the contributions of the examples whose
    tuned answer follows the template's rule and of the rest, with 95% intervals (the
    long table of :func:`cookbook_core.align.gain.contributions_frame`)."""
    colors = {
        "total gain": "#9aa5b1",
        "answer follows the rule": "#2f6fde",
        "answer does not follow": "#f2a541",
    }
    bars = []
    for group, part in contributions.groupby("group", sort=False):
        c = part["contribution"]
        bars.append(
            go.Bar(
                name=str(group),
                x=part["model"],
                y=c,
                marker_color=colors.get(str(group)),
                error_y={
                    "type": "data",
                    "symmetric": False,
                    "array": (part["hi"] - c).fillna(0).tolist(),
                    "arrayminus": (c - part["lo"]).fillna(0).tolist(),
                },
            )
        )
    fig = go.Figure(bars)
    fig.update_layout(
        title=title,
        barmode="group",
        yaxis_title="points of accuracy gain (95% CI)",
        template="plotly_white",
    )
    return fig
