"""Finished drafting runs, kept for the results page.

Every finished ``cookbook templates draft`` run (CLI or ``draft`` job) stores its
summary (:meth:`cookbook_core.drafting.loop.Drafting.summary`: the funnel of how many
candidates passed each stage, the ranked table with reasons, the shipped template
measured on the same rows, the model that answered, seconds) with the command that
reproduces it, as ``<home>/drafts/records/<task>-<time>.json``.  :func:`latest` reads
the newest record per task.  It does not draft, check or save templates.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from cookbook_core import paths, storage


def records_dir() -> Path:
    return paths.home() / "drafts" / "records"


def command(cfg: Any, backend: str | None = None, base_url: str | None = None) -> str:
    """The CLI command that drafts with the settings of ``cfg`` (a ``DraftConfig``) from
    the same endpoint (a ``base_url`` is an address, never a key)."""
    parts = ["cookbook templates draft", f"--task {cfg.task}", f"-k {cfg.k}"]
    parts += [f"--rounds {cfg.rounds}", f"--align-rows {cfg.align_rows}"]
    if cfg.data_dir:
        parts.append(f"--data-dir {cfg.data_dir}")
    if cfg.model != "default":
        parts.append(f"--model {cfg.model}")
    if base_url:
        parts.append(f"--base-url {base_url}")
    elif backend:
        parts.append(f"--backend {backend}")
    return " ".join(parts)


def store(summary: dict[str, Any], cmd: str, handwritten: dict[str, Any] | None = None) -> Path:
    """Write one finished run's record; returns its path."""
    stamp = time.strftime("%Y%m%dT%H%M%S")
    record = {
        **summary,
        "baseline_handwritten": handwritten,
        "command": cmd,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "stored_ns": time.time_ns(),  # orders runs finished within the same second
    }
    path = records_dir() / f"{summary['task']}-{stamp}.json"
    n = 1
    while path.exists():  # two runs for a task within a second
        path = records_dir() / f"{summary['task']}-{stamp}-{n}.json"
        n += 1
    return storage.write_json(path, record, default=str)


def latest() -> list[dict[str, Any]]:
    """The newest record of each task (sorted by task); unreadable files are skipped."""
    newest: dict[str, dict[str, Any]] = {}
    folder = records_dir()
    for f in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            rec = json.loads(f.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(rec, dict) and "task" in rec and "funnel" in rec:
            old = newest.get(rec["task"])
            if old is None or rec.get("stored_ns", 0) >= old.get("stored_ns", 0):
                newest[rec["task"]] = rec
    return [newest[t] for t in sorted(newest)]
