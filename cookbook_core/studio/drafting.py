"""What the Templates page's Draft tab shows and submits, computed without Streamlit.

Builds a ``draft`` job's config from widget values (a known task, or a new task's
name, kind, description and pasted rows; the endpoint: the managed server, a base
URL with the *name* of the variable holding its key, or the model in-process), the
candidates table of a draft run, the diff of a candidate against another candidate
or a shipped template (by default the closest one, by text similarity), and the
dataset made from a saved template (for the Training page link).

What it does not do: render widgets (``studio.draft_tab``), run a model or any
template code (``drafting.job`` does, in a job, with every candidate in the
sandbox), or read an API key's value (only whether the named variable is set).
"""

from __future__ import annotations

import difflib
import json
import os
from typing import Any

import pandas as pd

from cookbook_core import dataset_io, discovery, paths
from cookbook_core.drafting import contracts
from cookbook_core.drafting.job import DraftRun, check_endpoint
from cookbook_core.drafting.loop import Candidate
from cookbook_core.errors import BadInput

NEW_TASK = "(a new task)"
ENDPOINT_LABELS = {
    "managed": "Managed local server (cookbook serve)",
    "url": "OpenAI-compatible base URL",
    "in_process": "Embedded model in the job (transformers, slow)",
}
STAGE_ICONS = {"passed": "✓", "failed": "✗"}


def task_choices() -> list[str]:
    """Known tasks drafting can measure (a row contract exists), then the new-task entry."""
    return [*contracts.supported_tasks(), NEW_TASK]


def example_rows_text(kind: str, n: int = 1) -> str:
    """The placeholder for pasted rows of a kind: ``n`` JSON lines in its row format."""
    row = contracts.EXAMPLE_ROWS[kind]
    return "\n".join(json.dumps(row, ensure_ascii=False) for _ in range(n))


def key_status(api_key_env: str | None) -> str:
    """Whether the named variable is set in the studio's environment (never its value)."""
    name = (api_key_env or "").strip()
    if not name:
        return "no key: the endpoint is asked without one"
    return f"${name} is set" if os.environ.get(name) else f"${name} is not set here"


def job_config(
    *,
    task: str,
    endpoint: dict[str, Any],
    k: int,
    rounds: int,
    examples: int = 3,
    align_rows: int = 200,
    new_task: bool = False,
    kind: str | None = None,
    description: str = "",
    pasted: str = "",
    data_dir: str = "",
    samples: int = 8,
    max_new_tokens: int = 1024,
    seed: int = 0,
    worked: int = 2,
    cpu_seconds: int = 5,
) -> dict[str, Any]:
    """The config of a ``draft`` job from the tab's widgets (``BadInput`` on a problem
    the page can name before submitting; the job's validator checks the rest)."""
    cfg: dict[str, Any] = {
        "task": task.strip(),
        "endpoint": check_endpoint(endpoint),
        "k": int(k),
        "rounds": int(rounds),
        "examples": int(examples),
        "align_rows": int(align_rows),
        "samples": int(samples),
        "max_new_tokens": int(max_new_tokens),
        "seed": int(seed),
        "worked": int(worked),
        "cpu_seconds": int(cpu_seconds),
        "description": description.strip() or None,
    }
    if new_task:
        if not kind:
            raise BadInput("choose what kind of task the new task is")
        cfg["kind"] = kind
        cfg["pasted"] = contracts.parse_rows(pasted)
    else:
        if not task.strip() or task == NEW_TASK:
            raise BadInput("choose a task")
        cfg["data_dir"] = data_dir.strip() or None
    return cfg


# ----------------------------------------------------------------------------------
# A run's candidates


def _pct(x: Any) -> float | None:
    return None if x is None else round(100 * float(x), 1)


def candidates_frame(run: DraftRun) -> pd.DataFrame:
    """One row per candidate, ranked: status, stage, template, scores (%), reason."""
    rows = []
    for r in run.table():
        rows.append(
            {
                "rank": r["rank"],
                "id": r["id"],
                "round": r["round"],
                "status": f"{STAGE_ICONS['passed']} passed"
                if r["passed"]
                else f"{STAGE_ICONS['failed']} {r['stage']}",
                "template": r["template"] or "",
                "alignment %": _pct(r["alignment"]),
                "wrong accepted %": _pct(r["wrong_accept"]),
                "margin": None if r["margin"] is None else round(r["margin"], 3),
                "own samples accepted %": _pct(r["self_accept"]),
                "corrupted rejected %": _pct(r["corrupt_reject"]),
                "reason": r["reason"],
            }
        )
    columns = [
        "rank",
        "id",
        "round",
        "status",
        "template",
        "alignment %",
        "wrong accepted %",
        "margin",
        "own samples accepted %",
        "corrupted rejected %",
        "reason",
    ]
    return pd.DataFrame(rows, columns=columns)


def funnel_line(run: DraftRun) -> str:
    """How many candidates passed each stage so far (repairs included)."""
    from cookbook_core.drafting.checks import STAGES

    n = len(run.candidates)
    parts = [f"{s} {sum(s in c.outcome.passed_stages for c in run.candidates)}" for s in STAGES]
    return f"{n} candidate(s); passed: " + " · ".join(parts)


def shipped_sources() -> dict[str, str]:
    """The shipped templates' source, by template name."""
    out = {}
    for e in discovery.scan([paths.SHIPPED_TEMPLATES]):
        if e.ok and e.name not in out:
            out[e.name] = e.file.read_text(encoding="utf-8")
    return out


def closest_shipped(code: str, shipped: dict[str, str] | None = None) -> tuple[str, float] | None:
    """The shipped template whose source is most like ``code`` (difflib ratio)."""
    shipped = shipped if shipped is not None else shipped_sources()
    best: tuple[str, float] | None = None
    for name, source in sorted(shipped.items()):
        ratio = difflib.SequenceMatcher(None, code, source, autojunk=False).ratio()
        if best is None or ratio > best[1]:
            best = (name, ratio)
    return best


def compare_targets(
    run: DraftRun, candidate: Candidate, shipped: dict[str, str] | None = None
) -> dict[str, str]:
    """What a candidate can be diffed against, label -> source: the closest shipped
    template first, then the run's other candidates with code, then every shipped one."""
    shipped = shipped if shipped is not None else shipped_sources()
    out: dict[str, str] = {}
    code = candidate.outcome.source or ""
    near = closest_shipped(code, shipped) if code else None
    if near:
        out[f"shipped {near[0]} (closest, {near[1]:.0%} alike)"] = shipped[near[0]]
    for c in run.candidates:
        if c.id != candidate.id and c.outcome.source:
            out[f"candidate {c.id}"] = c.outcome.source
    for name, source in sorted(shipped.items()):
        if not near or name != near[0]:
            out[f"shipped {name}"] = source
    return out


def diff(before: str, after: str, before_name: str, after_name: str) -> str:
    """A unified diff from ``before`` to ``after`` ('' when equal)."""
    return "".join(
        difflib.unified_diff(
            before.splitlines(keepends=True),
            after.splitlines(keepends=True),
            fromfile=before_name,
            tofile=after_name,
        )
    )


def dataset_for(template: str) -> str | None:
    """The newest dataset whose manifest lists ``template`` (its folder), or None."""
    for d in dataset_io.list_datasets():
        if any(t.get("name") == template for t in d.get("templates") or []):
            return str(d["path"])
    return None
