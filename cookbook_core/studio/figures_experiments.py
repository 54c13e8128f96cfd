"""Plotly figures of the results page (docs/RESULTS.md and the Experiments page).

:func:`report_figures` turns what :func:`cookbook_core.experiments.report.collect`
gathered into the named figures the page embeds (``single_task``, ``alignment``,
``alignment_gain``, ``<mix>_matrix``, ``<mix>_fit`` with the protocol's interval bars,
``<mix>_comparison``); :func:`write_pngs` exports them with kaleido (which drives the
system Chromium).  The names and the conditions under
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

from cookbook_core.align import gain
from cookbook_core.experiments import report
from cookbook_core.mix import sources as mix_sources
from cookbook_core.studio.figures_align import delta_figure, gain_split_figure
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


COMPARISON_COLORS = ["#9aa5b1", "#f2a541", "#7bc67e", "#2f6fde", "#8e44ad", "#1b9e77"]


def comparison_figure(res: dict[str, Any]) -> go.Figure:
    """Grouped bars: per-task, average and worst-task accuracy of the base model, the best
    single template, the uniform mixture and the optimized mixture(s); with the
    protocol's paired 95% intervals when the result has them."""
    models = (res.get("protocol") or {}).get("models") or []
    bars = []
    if models:
        keys = [*res["protocol"]["tasks"], "average", "worst"]
        for row, color in zip(models, COMPARISON_COLORS * 2, strict=False):
            y = [row[f"{k}value"] for k in keys]
            hi = [row[f"{k}hi"] for k in keys]
            lo = [row[f"{k}lo"] for k in keys]
            up = [0 if h is None else h - v for h, v in zip(hi, y, strict=True)]
            down = [0 if a is None else v - a for a, v in zip(lo, y, strict=True)]
            bars.append(
                go.Bar(
                    name=row["model"],
                    x=keys,
                    y=y,
                    marker_color=color,
                    error_y={"type": "data", "symmetric": False, "array": up, "arrayminus": down},
                )
            )
    else:
        for (label, row), color in zip(
            res["comparison"].items(), COMPARISON_COLORS * 2, strict=False
        ):
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


def gain_figure(splits: list[dict[str, Any]]) -> go.Figure:
    """The gain of every tuned model split by rule-following (the results page's
    ``alignment_gain`` figure), one group of bars per (template, task, trained model)."""
    named = {
        f"{g['template']} / {g['task']}<br>{g['trained']}": g["split"]
        for g in splits
        if g["split"] is not None
    }
    return gain_split_figure(gain.contributions_frame(named))


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
        elif name == "alignment_gain":
            figs[name] = gain_figure(c["gain_splits"])
        else:
            mix, _, part = name.rpartition("_")
            res = mixes[mix]
            if part == "matrix":
                A = pd.DataFrame(res["matrix"]).T / 100
                figs[name] = heatmap_figure(A, f"Accuracy matrix ({mix})")
            elif part == "fit":
                figs[name] = scatter_figure(
                    report.fit_points(res),
                    "Linear mixing: predicted vs observed (paired 95% intervals)",
                )
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
