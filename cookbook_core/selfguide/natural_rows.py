"""Natural-language instruction rows to mix into a fine-tune (the paper's 128 samples).

The Cookbook paper adds a small number of natural-language instruction samples to
every template mixture so the model keeps its general ability.  This module makes
such a file from data already on disk: the validation rows of the held-in
Super-NaturalInstructions tasks in the SELF-GUIDE pack (``natural_instructions/``,
found like the evaluation data).  Each row becomes ``{"prompt": instruction + input,
"completion": output}``; tasks are taken in turn (round robin over a seeded shuffle
of each task's rows), so 128 rows cover every task about equally.  The test rows
(``public_200.jsonl``, SELF-GUIDE's evaluation split) are never used.

``--natural-data sni`` (CLI) or ``sni`` (Training page) names this file; training mixes
``natural_n`` of its rows in (:mod:`cookbook_core.train.training`, which reads any
file and knows no alias).  It does not train or evaluate.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from cookbook_core import paths, storage
from cookbook_core.errors import BadInput

ALIAS = "sni"  # what --natural-data accepts for the file built here
DEFAULT_N = 128  # the paper's number of natural-language samples


def pack_rows(data_dir: str | Path | None = None, *, seed: int = 0) -> list[dict[str, Any]]:
    """Every validation row of the pack's held-in tasks as a prompt/completion row,
    interleaved task by task (seeded order within each task)."""
    from cookbook_core.selfguide import tasks as ni

    per_task: list[list[dict[str, Any]]] = []
    for name in ni.list_tasks(data_dir):
        task = ni.load_task(name, data_dir)
        if "validation" not in task.splits():
            continue
        rows = task.rows("validation")
        random.Random(f"{seed}:{name}").shuffle(rows)
        per_task.append(
            [
                {
                    "prompt": f"{task.instruction.strip()}\n\n{r['input'].strip()}",
                    "completion": r["output"].strip(),
                    "meta": {"source": "natural_instructions", "id": r["id"], "task": name},
                }
                for r in rows
                if r["output"].strip()
            ]
        )
    out: list[dict[str, Any]] = []
    for i in range(max((len(t) for t in per_task), default=0)):
        out += [t[i] for t in per_task if i < len(t)]
    if not out:
        raise BadInput("the natural_instructions pack has no validation rows to use")
    return out


def default_file(data_dir: str | Path | None = None, *, seed: int = 0) -> Path:
    """The workspace's natural-row file (written once from the pack, then reused)."""
    target = paths.home() / "natural" / f"sni-validation-seed{seed}.jsonl"
    if not target.is_file():
        storage.write_jsonl(target, pack_rows(data_dir, seed=seed))
    return target


def resolve(spec: str | None, data_dir: str | Path | None = None) -> str | None:
    """``--natural-data``'s value as a file path: ``sni`` builds :func:`default_file`."""
    if spec is None or spec != ALIAS:
        return spec
    return str(default_file(data_dir))
