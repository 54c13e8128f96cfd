"""What the studio's Evaluation page shows, computed from evaluation runs on disk.

Builds the config of an ``eval`` job from widget values (tasks and groups, limit,
model or any finished adapter: a training job's, a mix cell's, a SELF-GUIDE run's);
labels runs by the model that made them; turns run summaries into a long table
of per-task main metrics with their bootstrap 95% intervals and draws it as grouped
bars with error bars (one colour per run, so runs compare side by side); turns a
task's per-example records into a table with a correct/incorrect verdict and the
model's answer, with filters.

What it does not do: run evaluations (``evaluation``), or render Streamlit widgets.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from cookbook_core import configs
from cookbook_core.align import runs as alignment_runs
from cookbook_core.errors import BadInput
from cookbook_core.eval import evaluation, tasks
from cookbook_core.eval.config import EvalConfig
from cookbook_core.jobs import store as jobs

FILTERS = ("all", "correct", "incorrect")


def eval_config(
    task_names: Iterable[str],
    groups: Iterable[str] = (),
    *,
    adapter_run: str | None = None,
    **options: Any,
) -> dict[str, Any]:
    """The config of an ``eval`` job (an :class:`~cookbook_core.eval.config.EvalConfig` dict).

    Groups are expanded into their tasks.  With ``adapter_run`` (a training job id, or an
    adapter folder such as :func:`cookbook_core.train.adapters.list_adapters` lists) the
    base model is the one that adapter was trained on.  ``options`` are other
    ``EvalConfig`` fields (``limit``, ``model``, ``data_dir``, ...; left out: the declared
    default; an empty ``model`` or ``data_dir`` counts as left out).  Raises ``BadInput``
    when no task is chosen or an option is unknown; the job's validator checks the rest
    (data present, model known, ...).
    """
    names = list(dict.fromkeys([*task_names, *(t for g in groups for t in tasks.GROUPS[g])]))
    if not names:
        raise BadInput("choose at least one task or group to evaluate")
    model = str(options.pop("model", None) or "").strip() or configs.default(EvalConfig, "model")
    if adapter_run:
        model = adapter_base_model(adapter_run) or model
    data_dir = str(options.pop("data_dir", None) or "").strip() or None
    given = {"tasks": names, "model": model, "adapter": adapter_run or None, "data_dir": data_dir}
    cfg = EvalConfig.from_dict({**options, **given})
    return cfg.to_dict()


def adapter_base_model(adapter: str) -> str | None:
    """The base model an adapter was trained on, from its training run's ``config.json``
    (a training job id, ``<run>/adapter`` or ``<cell|SELF-GUIDE run>/train/adapter``)."""
    path = Path(adapter).expanduser()
    if not path.exists():
        path = jobs.runs_root() / adapter
    for cfg_path in (path / "config.json", path.parent / "config.json"):
        if cfg_path.is_file():
            try:
                model = json.loads(cfg_path.read_text()).get("model")
            except ValueError:
                return None
            return str(model) if model else None
    return None


_RUN_ID = re.compile(r"^\d{4}(\d{2})(\d{2})-(\d{2})(\d{2})(\d{2})-.*-([0-9a-f]{4})$")


def short_id(run_id: str) -> str:
    """``20261121-201020-eval-squad-62b7`` -> ``11-21 20:10:20 ·62b7``; other names as is."""
    m = _RUN_ID.match(run_id)
    if not m:
        return run_id
    mo, d, h, mi, sec, tag = m.groups()
    return f"{mo}-{d} {h}:{mi}:{sec} ·{tag}"


def model_label(origin: Mapping[str, Any]) -> str:
    """What made a run, from :func:`evaluation.run_origin`: ``base``, ``cell document_qa``,
    ``cell dirichlet-0 [document_qa 0.60, retrieval 0.40]``, ``training job <id>``,
    ``SELF-GUIDE <run>``."""
    kind, name = origin.get("kind"), str(origin.get("name", ""))
    if kind == "mix cell":
        weights = origin.get("weights") or {}
        if not weights:
            return "cell base (untrained)" if name == "base" else f"cell {name} (untrained)"
        if len(weights) == 1 and next(iter(weights)) == name:
            return f"cell {name}"
        mix = ", ".join(f"{t} {w:.2f}" for t, w in weights.items())
        return f"cell {name} [{mix}]"
    if kind == "base model":
        return "base"
    if kind == "training job":
        return "tuned " + short_id(name)
    return f"{kind} {name}"


def run_label(summary: Mapping[str, Any]) -> str:
    """A short name for a run: the model that made it (base, a training run's adapter, a
    mix cell and its mixture, a SELF-GUIDE run), then which run; the base model is named
    when it is not the embedded default."""
    origin = summary.get("origin")
    adapter = summary.get("adapter")
    if origin:
        what = model_label(origin)
    elif adapter:
        p = Path(adapter)
        if p.name == "adapter":
            p = p.parent.parent if p.parent.name == "train" else p.parent
        what = "tuned " + short_id(p.name)
    else:
        what = "base"
    model = str(summary.get("model") or "default")
    if model not in ("default", "embedded"):
        what += f" ({summary.get('model_display') or Path(model).name})"
    run_id = str(summary.get("run_id", "?"))
    if run_id.startswith(evaluation.CELLS_DIR + "/"):  # cells/<cell>/<settings>/<k>
        run_id = "/".join(run_id.split("/")[-2:])
    return f"{what} · run {short_id(run_id)}"


def main_metric(task_name: str) -> str:
    """The metric a task is compared on (its first: exact_match, acc, f1 or accuracy)."""
    try:
        return tasks.get(task_name).metrics[0]
    except BadInput:
        return ""


def scores_frame(summaries: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Long table: one row per (run, task) with the main metric, its 95% interval and n."""
    rows = []
    for s in summaries:
        label = run_label(s)
        for task_name, t in s.get("tasks", {}).items():
            metric = main_metric(task_name)
            m = t.get("metrics", {}).get(metric) or next(iter(t.get("metrics", {}).values()), None)
            if m is None:
                continue
            lo, hi = (list(m.get("ci95") or []) + [None, None])[:2]
            rows.append(
                {
                    "run": label,
                    "run_dir": s.get("run_dir", ""),
                    "task": task_name,
                    "metric": metric,
                    "value": m.get("value"),
                    "ci_low": lo,
                    "ci_high": hi,
                    "n": t.get("n"),
                }
            )
    cols = ["run", "run_dir", "task", "metric", "value", "ci_low", "ci_high", "n"]
    return pd.DataFrame(rows, columns=cols)


def scores_figure(frame: pd.DataFrame, series: str = "run") -> go.Figure:
    """Grouped bars: x = task (its metric), one bar per value of column ``series`` (a run,
    a compared model), 95% bootstrap intervals as error bars, in percent."""
    fig = go.Figure()
    for run, part in frame.groupby(series, sort=False):
        value = 100 * part["value"].astype(float)
        hi = 100 * part["ci_high"].astype(float) - value
        lo = value - 100 * part["ci_low"].astype(float)
        fig.add_trace(
            go.Bar(
                name=str(run),
                x=[
                    f"{t}<br><sub>{m} (n={n})</sub>"
                    for t, m, n in zip(part["task"], part["metric"], part["n"], strict=True)
                ],
                y=value,
                error_y={
                    "type": "data",
                    "symmetric": False,
                    "array": hi.fillna(0).clip(lower=0),
                    "arrayminus": lo.fillna(0).clip(lower=0),
                },
                text=[f"{v:.1f}" for v in value],
                textposition="outside",
                hovertemplate="%{x}<br>%{y:.1f}%<extra>" + str(run) + "</extra>",
            )
        )
    fig.update_layout(
        barmode="group",
        yaxis={"title": "score (%) with 95% bootstrap interval", "range": [0, 105]},
        height=420,
        margin={"l": 50, "r": 20, "t": 30, "b": 40},
        legend={"orientation": "h", "y": -0.25},
    )
    return fig


def short_text(value: Any, width: int = 80) -> str:
    """``value`` as one line of at most ``width`` characters (gold lists joined by ``|``)."""
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        value = " | ".join(dict.fromkeys(value))  # gold answers: each distinct one once
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def answer_and_gold(
    record: Mapping[str, Any], task_name: str, metric: str | None = None
) -> tuple[Any, Any]:
    """The model's answer and the gold answer of one record, as shown to people: the
    generation; for multiple choice ``"<index>: <choice>"`` (the choice ``acc_norm``
    picked when ``metric`` is ``acc_norm``); for cloze the greedy word, ``"?"`` when
    the record does not say."""
    task = tasks.get(task_name)
    family = "multiple_choice" if task.method == "loglikelihood" else "qa"
    if task.kind == "cloze":
        family = "cloze_last_word"
    scores = record.get("scores") or {}
    try:
        if metric == "acc_norm" and "pred_norm" in scores:
            answer: Any = int(scores["pred_norm"])
        else:
            answer = alignment_runs.model_answer(record, family)
    except BadInput:
        answer = "?"
    gold = record.get("gold")
    conts = record.get("continuations") or []
    if family == "multiple_choice" and isinstance(answer, int) and conts:
        answer = f"{answer}: {str(conts[answer]).strip()}"
    if isinstance(gold, int) and not isinstance(gold, bool) and 0 <= gold < len(conts):
        gold = f"{gold}: {str(conts[gold]).strip()}"
    return answer, gold


def records_frame(records: Sequence[Mapping[str, Any]], task_name: str) -> pd.DataFrame:
    """One row per example: index, id, correct, main score, the model's answer and gold."""
    rows = []
    for i, r in enumerate(records):
        score = alignment_runs.primary(r.get("scores", {}))
        answer, gold = answer_and_gold(r, task_name)
        rows.append(
            {
                "index": i,
                "id": r.get("id"),
                "correct": score >= 0.5,
                "score": round(score, 3),
                "answer": short_text(answer),
                "gold": short_text(gold),
            }
        )
    cols = ["index", "id", "correct", "score", "answer", "gold"]
    return pd.DataFrame(rows, columns=cols)


def filter_records(frame: pd.DataFrame, which: str) -> pd.DataFrame:
    """Rows of :func:`records_frame` that are ``all``, ``correct`` or ``incorrect``."""
    if which not in FILTERS:
        raise BadInput(f"filter must be one of {', '.join(FILTERS)}, got {which!r}")
    if which == "all" or frame.empty:
        return frame
    return frame[frame["correct"] == (which == "correct")]
