"""Plotly figures of the results page (docs/RESULTS.md and the Experiments page).

:func:`report_figures` turns what :func:`cookbook_core.experiments.report.collect`
gathered into the named figures the page embeds (``single_task``, ``alignment``,
``<mix>_matrix``, ``<mix>_fit``, ``<mix>_comparison``); :func:`write_pngs` exports them
with kaleido (which drives the system Chromium).  The names and the conditions under
which each figure exists come from :mod:`cookbook_core.experiments.report`
(:func:`~cookbook_core.experiments.report.figure_names`), so the Markdown and the PNGs
agree.  It reads no experiment itself and imports no Streamlit.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from cookbook_core.experiments import report
from cookbook_core.mix import sources as mix_sources
from cookbook_core.studio.figures_align import delta_figure
from cookbook_core.studio.figures_mix import heatmap_figure, scatter_figure


def single_task_figure(table: pd.DataFrame) -> go.Figure:
    """Grouped bars: base vs fine-tuned per (template, task), with 95% intervals."""
    # one bar pair per row: the experiment's name keeps equal (template, task) rows apart
    labels = [
        f"{mix_sources.label(t)}<br>{k}<br>{src.split()[-1]}"
        for t, k, src in zip(table["template"], table["task"], table["source"], strict=True)
    ]

    def err(col: str, val: str) -> dict[str, Any]:
        ci = table[col].tolist()
        v = table[val].tolist()
        return {
            "type": "data",
            "symmetric": False,
            "array": [c[1] - x if c else 0 for c, x in zip(ci, v, strict=True)],
            "arrayminus": [x - c[0] if c else 0 for c, x in zip(ci, v, strict=True)],
        }

    fig = go.Figure(
        [
            go.Bar(
                name="base model",
                x=labels,
                y=table["base"],
                error_y=err("base_ci", "base"),
                marker_color="#9aa5b1",
            ),
            go.Bar(
                name="fine-tuned on template",
                x=labels,
                y=table["tuned"],
                error_y=err("tuned_ci", "tuned"),
                marker_color="#2f6fde",
            ),
        ]
    )
    fig.update_layout(
        title="Single-task: base vs fine-tuned on template data (95% bootstrap CI)",
        barmode="group",
        yaxis_title="score (pts)",
        template="plotly_white",
    )
    return fig


def comparison_figure(res: dict[str, Any]) -> go.Figure:
    """Grouped bars: per-task and average accuracy of base, best single, uniform, optimized."""
    comp = res["comparison"]
    colors = ["#9aa5b1", "#f2a541", "#7bc67e", "#2f6fde"]
    bars = []
    for (label, row), color in zip(comp.items(), colors, strict=False):
        keys = [k for k in row if k != "worst"]
        bars.append(go.Bar(name=label, x=keys, y=[row[k] for k in keys], marker_color=color))
    fig = go.Figure(bars)
    fig.update_layout(
        title=f"Cookbook-Mix ({res['name']}): observed accuracy per task",
        barmode="group",
        yaxis_title="accuracy (pts)",
        template="plotly_white",
    )
    return fig


def report_figures(c: Mapping[str, Any]) -> dict[str, go.Figure]:
    """The figures of collected results ``c``, named as
    :func:`~cookbook_core.experiments.report.figure_names` lists them (PNG file stems)."""
    mixes = {res["name"]: res for res in c["mixes"]}
    figs: dict[str, go.Figure] = {}
    for name in report.figure_names(dict(c)):
        if name == "single_task":
            figs[name] = single_task_figure(c["single_table"])
        elif name == "alignment":
            pts = c["alignment_points"]
            figs[name] = delta_figure(pts.assign(run=pts["template"]))
        else:
            mix, _, part = name.rpartition("_")
            res = mixes[mix]
            if part == "matrix":
                A = pd.DataFrame(res["matrix"]).T / 100
                figs[name] = heatmap_figure(A, f"Accuracy matrix ({mix})")
            elif part == "fit":
                figs[name] = scatter_figure(pd.DataFrame(res["validation"]["table"]))
            else:
                figs[name] = comparison_figure(res)
    return figs


def write_pngs(c: Mapping[str, Any], fig_dir: Path) -> list[Path]:
    """Export :func:`report_figures` of ``c`` as ``fig_dir/<name>.png`` (1000x520); the
    paths written.  Kaleido needs a Chromium on the machine."""
    fig_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, fig in report_figures(c).items():
        path = fig_dir / f"{name}.png"
        fig.write_image(str(path), width=1000, height=520, scale=1)
        written.append(path)
    return written
