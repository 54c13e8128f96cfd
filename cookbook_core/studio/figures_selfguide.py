"""Plotly figure of a SELF-GUIDE run's funnel (generated, kept after each filter, trained).

Draws the funnel dict that :func:`cookbook_core.selfguide.pipeline.read_funnel` returns;
used by the SELF-GUIDE page.  It reads no run and imports no Streamlit.
"""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go


def funnel_figure(funnel: dict[str, Any]) -> go.Figure:
    """A Plotly funnel: generated → kept after each filter → voted → trained."""
    stages = funnel.get("stages", [])
    names = [s["stage"] for s in stages]
    values = [s["entered"] if s["stage"] == "generated" else s["kept"] for s in stages]
    text = [
        "" if s["stage"] in ("generated", "trained") else f"-{s['dropped']}: {s['reason']}"
        for s in stages
    ]
    fig = go.Figure(
        go.Funnel(
            y=names,
            x=values,
            textinfo="value+percent initial",
            hovertext=text,
            hoverinfo="text+x",
        )
    )
    fig.update_layout(title="SELF-GUIDE funnel", height=max(300, 48 * len(names) + 80))
    return fig
