"""What the studio's Datasets, Training and Jobs pages show about jobs, computed here.

Builds the configs those pages submit (``generate`` and ``train`` jobs) from widget
values, with clear ``BadInput`` messages for empty or impossible choices; turns
jobs into table rows, a progress fraction with a one-line status, and a failure
explanation (the reason plus the error lines at the end of the log); draws the
Plotly loss curve of a training run from its ``metrics.jsonl``.

What it does not do: render Streamlit widgets, run work, or change job states
(``jobs`` does that).
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from cookbook_core import configs, dataset_io
from cookbook_core import generate as gen
from cookbook_core.errors import BadInput
from cookbook_core.generate_config import GenerateConfig, Source
from cookbook_core.jobs import store as jobs
from cookbook_core.train import training

# Plain symbols (in DejaVu Sans), so they render without an emoji font.
STATE_ICONS = {
    "queued": "○",
    "running": "▶",
    "succeeded": "✓",
    "failed": "✗",
    "cancelled": "■",
    "lost": "⚠",
}
_NAME_OK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+=-]*$")


# ----------------------------------------------------------------------------------
# Configs built from page widgets


def dataset_name(weights: Mapping[str, float], n: int, seed: int) -> str:
    """The default folder name of a dataset: ``<t1>+<t2>-n<N>-s<seed>`` (as the CLI names it)."""
    names = "+".join(t for t, w in weights.items() if w > 0)
    return f"{names}-n{n}-s{seed}"


def generate_config(
    weights: Mapping[str, float],
    n: int,
    *,
    seed: int | None = None,
    fmt: str | None = None,
    name: str | None = None,
    overwrite: bool = False,
    params: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """The config of a ``generate`` job writing ``<datasets>/<name>``.

    ``weights`` maps template names to relative weights; templates at weight 0 are
    left out; ``seed`` and ``fmt`` default to ``GenerateConfig``'s.  Raises ``BadInput`` for no template, no positive weight, or a bad
    folder name; the job's validator checks the rest (n, seed, format, parameters).
    """
    if not weights:
        raise BadInput("choose at least one template")
    bad = [t for t, w in weights.items() if not (isinstance(w, int | float) and math.isfinite(w))]
    if bad or any(w < 0 for w in weights.values()):
        raise BadInput("template weights must be finite numbers >= 0")
    kept = {t: float(w) for t, w in weights.items() if w > 0}
    if not kept:
        raise BadInput("give at least one template a weight above 0")
    seed = configs.default(GenerateConfig, "seed") if seed is None else seed
    fmt = configs.default(GenerateConfig, "format") if fmt is None else fmt
    name = (name or "").strip() or dataset_name(kept, n, seed)
    if not _NAME_OK.match(name) or ".." in name:
        raise BadInput(
            f"dataset name {name!r}: use letters, digits and . _ + = - only (no spaces or slashes)"
        )
    out = dataset_io.datasets_root() / name
    if out.exists() and not overwrite:
        raise BadInput(
            f"a dataset named {name!r} already exists: choose another folder name, "
            "or allow replacing it"
        )
    params = params or {}
    cfg = GenerateConfig(
        sources=[Source(t, w, dict(params.get(t, {}))) for t, w in kept.items()],
        n=int(n),
        seed=int(seed),
        format=fmt,
    )
    return {
        "config": gen.config_to_dict(cfg),
        "out": str(out),
        "overwrite": bool(overwrite),
    }


def planned_counts(weights: Mapping[str, float], n: int) -> dict[str, int]:
    """Samples per template that a dataset of ``n`` rows with these weights will hold."""
    kept = {t: w for t, w in weights.items() if w > 0}
    if not kept or n < 1:
        return {}
    return dict(zip(kept, gen.plan_counts(list(kept.values()), n), strict=True))


def train_config(data: str | Path, **options: Any) -> dict[str, Any]:
    """The config of a ``train`` job (a :class:`training.TrainConfig` dict).

    Unknown option names raise ``BadInput``; values are checked by the job's validator.
    """
    if not str(data).strip():
        raise BadInput("choose a dataset to train on (generate one on the Datasets page)")
    return training.config_from_dict({"data": str(data), **options}).to_dict()


# ----------------------------------------------------------------------------------
# Progress and status


def progress_fraction(job: jobs.Job) -> float | None:
    """Done/total in [0, 1] (1 for a succeeded job), or None when unknown."""
    if job.state == "succeeded":
        return 1.0
    done, total = job.progress.get("done"), job.progress.get("total")
    if not total or done is None:
        return None
    return max(0.0, min(1.0, float(done) / float(total)))


def _duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return ""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def status_line(job: jobs.Job, now: float | None = None) -> str:
    """One line: state, progress in the job's unit, loss/speed/eta when reported, elapsed."""
    now = time.time() if now is None else now
    parts = [f"{STATE_ICONS.get(job.state, '')} {job.state}".strip()]
    p = job.progress
    if p.get("total"):
        parts.append(f"{p.get('done', 0):,} / {p['total']:,} {p.get('unit', '')}".rstrip())
    elif job.state == "running":
        parts.append("starting (loading model or data)")
    if p.get("loss") is not None:
        parts.append(f"loss {p['loss']:.4f}")
    if p.get("tokens_per_s"):
        parts.append(f"{p['tokens_per_s']:,.0f} tokens/s")
    if job.state == "running" and p.get("eta") is not None:
        parts.append(f"ETA {_duration(p['eta'])}")
    if p.get("task"):
        parts.append(f"task {p['task']}")
    if job.started:
        end = job.finished if job.finished and not job.active else now
        parts.append(f"elapsed {_duration(end - job.started)}")
    return " · ".join(parts)


def jobs_frame(job_list: Sequence[jobs.Job], now: float | None = None) -> pd.DataFrame:
    """One row per job (newest first as given): id, kind, name, state, progress, times, reason."""
    now = time.time() if now is None else now
    rows = []
    for j in job_list:
        frac = progress_fraction(j)
        end = j.finished if j.finished and not j.active else now
        rows.append(
            {
                "id": j.id,
                "kind": j.kind,
                "name": j.name or "",
                "state": f"{STATE_ICONS.get(j.state, '')} {j.state}",
                "progress": None if frac is None else round(100 * frac, 1),
                "created": time.strftime("%m-%d %H:%M:%S", time.localtime(j.created)),
                "duration": _duration(end - j.started) if j.started else "",
                "reason": j.reason or "",
            }
        )
    columns = ["id", "kind", "name", "state", "progress", "created", "duration", "reason"]
    return pd.DataFrame(rows, columns=columns)


LOG_TAIL_BYTES = 512 * 1024  # read at most this much of the end of a log


def log_tail(job: jobs.Job, lines: int = 50) -> str:
    """The last ``lines`` lines of a job's log, each progress bar shown at its last state.

    Progress bars (tqdm) redraw a line with carriage returns; only the text after the
    last ``\\r`` of each line is kept, so a model-loading bar is one line, not hundreds.
    """
    path = job.run_dir / "log.txt"
    if not path.is_file():
        return ""
    with open(path, "rb") as fh:
        fh.seek(0, 2)
        size = fh.tell()
        fh.seek(max(0, size - LOG_TAIL_BYTES))
        text = fh.read().decode("utf-8", errors="replace")
    out = []
    for raw in text.split("\n"):
        parts = [p for p in raw.split("\r") if p.strip()]
        if parts:
            out.append(parts[-1].rstrip())
        elif not raw.strip() and out and out[-1]:
            out.append("")
    while out and not out[-1]:
        out.pop()
    return "\n".join(out[-lines:])


_ERROR_LINE = re.compile(r"^\w*(Error|Exception|Interrupt)\b|^\w+\.\w+(Error|Exception)\b")


def failure_details(job: jobs.Job, log: str) -> str | None:
    """Why a failed or lost job ended: its recorded reason, then the log's error lines."""
    if job.state not in ("failed", "lost"):
        return None
    lines = [ln for ln in log.splitlines() if ln.strip()]
    errors = [ln.strip() for ln in lines if _ERROR_LINE.match(ln.strip())]
    out = job.reason or f"the job is {job.state} without a recorded reason"
    extra = [e for e in errors[-3:] if e not in out]
    if extra:
        out += "\n\nFrom the log:\n" + "\n".join(extra)
    return out


# ----------------------------------------------------------------------------------
# Training runs


def loss_figure(metrics: Sequence[Mapping[str, Any]], title: str = "Training loss") -> go.Figure:
    """Loss per optimizer step (markers for short runs), the learning rate on a second axis."""
    steps = [m["step"] for m in metrics if "step" in m and m.get("loss") is not None]
    losses = [m["loss"] for m in metrics if "step" in m and m.get("loss") is not None]
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=steps,
            y=losses,
            name="loss",
            mode="lines+markers" if len(steps) <= 50 else "lines",
            line={"color": "#1f77b4", "width": 2},
        )
    )
    lrs = [(m["step"], m["lr"]) for m in metrics if m.get("lr") is not None and "step" in m]
    if lrs:
        fig.add_trace(
            go.Scatter(
                x=[s for s, _ in lrs],
                y=[v for _, v in lrs],
                name="learning rate",
                yaxis="y2",
                mode="lines",
                line={"color": "#aaaaaa", "dash": "dot", "width": 1},
            )
        )
    fig.update_layout(
        title=title,
        xaxis={"title": "step", "rangemode": "tozero", "dtick": 1 if len(steps) <= 20 else None},
        yaxis={"title": "loss (completion tokens)"},
        yaxis2={
            "title": "learning rate",
            "overlaying": "y",
            "side": "right",
            "showgrid": False,
            "tickformat": ".1e",
            "rangemode": "tozero",
        },
        height=360,
        margin={"l": 50, "r": 60, "t": 50, "b": 40},
        legend={"orientation": "h", "y": -0.2},
    )
    return fig


def train_summary(job: jobs.Job) -> dict[str, Any]:
    """First/last loss, steps done and outputs of a training job's run directory."""
    metrics = training.read_metrics(job.run_dir)
    out: dict[str, Any] = {
        "steps_done": metrics[-1]["step"] if metrics else 0,
        "steps": job.config.get("steps"),
        "first_loss": metrics[0].get("loss") if metrics else None,
        "last_loss": metrics[-1].get("loss") if metrics else None,
        "outputs": [
            d for d in ("adapter", "model", "merged", "checkpoints") if (job.run_dir / d).is_dir()
        ],
    }
    return out
