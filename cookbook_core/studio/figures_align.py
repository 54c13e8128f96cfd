"""Plotly figure of template alignment across runs: Δ generation alignment vs Δ accuracy.

Draws the deltas that :mod:`cookbook_core.align.runs` computes (``delta_alignment``,
``delta_accuracy`` per run and task); used by the Alignment and Experiments pages and
by ``docs/RESULTS.md``.  It computes no statistic and imports no Streamlit.
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
