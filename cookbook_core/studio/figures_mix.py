"""Plotly figures of Cookbook-Mix: the accuracy matrix, predicted-vs-observed, weights, what-if.

Pure figure builders over the tables that :mod:`cookbook_core.mix.mixing` computes (an
accuracy matrix ``A``, a validation table, a :class:`~cookbook_core.mix.mixing.MixResult`,
a what-if table); used by the Mixing and Experiments pages and by the PNGs of
``docs/RESULTS.md``.  It computes nothing itself and imports no Streamlit.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from cookbook_core.mix.mixing import MixResult


def heatmap_figure(A: pd.DataFrame, title: str = "Accuracy matrix") -> go.Figure:
    """Templates x tasks heatmap (accuracy in points, annotated)."""
    z = 100 * A.astype(float).to_numpy()
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=list(A.columns),
            y=list(A.index),
            colorscale="Viridis",
            text=np.vectorize(lambda v: "" if np.isnan(v) else f"{v:.1f}")(z),
            texttemplate="%{text}",
            colorbar={"title": "acc (pts)"},
            hovertemplate="template %{y}<br>task %{x}<br>%{z:.1f} pts<extra></extra>",
        )
    )
    fig.update_layout(
        title=title,
        xaxis_title="task",
        yaxis_title="trained on",
        height=max(340, 140 + 50 * len(A)),
    )
    return fig


def scatter_figure(
    table: pd.DataFrame, title: str = "Linear mixing: predicted vs observed"
) -> go.Figure:
    """Predicted vs observed per (mixture, task), with y = x and a band of ± the mean
    absolute error.  When the table has the error's interval (``error_lo``,
    ``error_hi``: observed - predicted, points) each point gets a vertical bar from
    predicted + lo to predicted + hi, which crosses y = x exactly when the interval
    contains zero."""
    df = table.assign(predicted_pts=100 * table["predicted"], observed_pts=100 * table["observed"])
    bars = {}
    if {"error_lo", "error_hi"} <= set(df.columns):
        lo = pd.to_numeric(df["error_lo"], errors="coerce")
        hi = pd.to_numeric(df["error_hi"], errors="coerce")
        df = df.assign(
            bar_up=(hi - df["error_points"]).fillna(0),
            bar_down=(df["error_points"] - lo).fillna(0),
            interval=[
                f"[{a:+.1f}, {b:+.1f}]" if np.isfinite(a) and np.isfinite(b) else "-"
                for a, b in zip(lo, hi, strict=True)
            ],
        )
        bars = {"error_y": "bar_up", "error_y_minus": "bar_down"}
    hover = ["mixture", "task", "error_points", *(["interval"] if bars else [])]
    fig = px.scatter(
        df,
        x="predicted_pts",
        y="observed_pts",
        color="task",
        symbol="role" if "role" in df.columns else "mixture",
        hover_data=hover,
        title=title,
        **bars,
    )
    lo = float(min(df["predicted_pts"].min(), df["observed_pts"].min(), 0)) if len(df) else 0
    hi = float(max(df["predicted_pts"].max(), df["observed_pts"].max(), 1)) if len(df) else 100
    band = float(table["abs_error_points"].mean()) if len(df) else 0
    xs = [lo, hi]
    fig.add_trace(
        go.Scatter(
            x=xs + xs[::-1],
            y=[x + band for x in xs] + [x - band for x in xs[::-1]],
            fill="toself",
            fillcolor="rgba(120,120,120,0.15)",
            line={"width": 0},
            name=f"± mean |error| ({band:.1f} pts)",
            hoverinfo="skip",
        )
    )
    fig.add_trace(
        go.Scatter(x=xs, y=xs, mode="lines", line={"dash": "dash", "color": "black"}, name="y = x")
    )
    fig.update_layout(xaxis_title="predicted accuracy (pts)", yaxis_title="observed accuracy (pts)")
    return fig


def weights_figure(result: MixResult) -> go.Figure:
    """Bar chart of a mixture's weights, titled with its objective."""
    names = list(result.weights)
    fig = go.Figure(
        go.Bar(
            x=names,
            y=[result.weights[n] for n in names],
            text=[f"{result.weights[n]:.2f}" for n in names],
            textposition="outside",
        )
    )
    fig.update_layout(
        title=f"Mixture weights (objective: {result.objective})",
        yaxis={"title": "weight", "range": [0, 1.1]},
    )
    return fig


def what_if_figure(table: pd.DataFrame, title: str = "Predicted accuracy per task") -> go.Figure:
    """Grouped bars: the mixture's predicted accuracy next to the reference's, per task."""
    tasks = list(table.index)
    fig = go.Figure(
        [
            go.Bar(name="reference", x=tasks, y=100 * table["reference"], marker_color="#bbbbbb"),
            go.Bar(
                name="mixture (predicted)",
                x=tasks,
                y=100 * table["predicted"],
                text=[f"{100 * c:+.1f}" for c in table["change"]],
                textposition="outside",
            ),
        ]
    )
    fig.update_layout(title=title, barmode="group", yaxis_title="accuracy (pts)")
    return fig
