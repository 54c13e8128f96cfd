"""SELF-GUIDE task definitions: one Super-NaturalInstructions task folder as a typed object.

A task folder (``<data>/natural_instructions/<task>/``, see that pack's README) holds
``task.json`` (instruction, demonstrations, labels, metric, the noise filter's
``optional_list``) and the evaluation rows ``public_200.jsonl`` (test) and, for
held-in tasks, ``validation_100.jsonl``.  :func:`load_task` reads and checks one;
:func:`list_tasks` lists the pack.  The data folder is found like the evaluation
data: an explicit folder, else ``$COOKBOOK_EVAL_DATA``, else ``../shared/data``
beside the project.

What it does not do: generate, filter, train or score anything (``selfguide``,
``selfguide_filters``).
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cookbook_core import paths, storage
from cookbook_core.errors import BadInput
from cookbook_core.eval import tasks

PACK = "natural_instructions"
FAMILIES = ("classification", "generation")
SPLIT_FILES = {"test": "public_200.jsonl", "validation": "validation_100.jsonl"}


class SelfGuideTaskError(BadInput):
    """A task that is missing, malformed, or cannot be used for SELF-GUIDE."""


@dataclass(frozen=True)
class Demonstration:
    """One worked example from the task definition."""

    input: str
    output: str


@dataclass(frozen=True)
class NITask:
    """A Super-NaturalInstructions task as SELF-GUIDE uses it."""

    name: str  # short id, e.g. "task1345"
    ni_name: str
    family: str  # "classification" | "generation"
    split_role: str  # "held_in" | "held_out"
    instruction: str
    demonstrations: tuple[Demonstration, ...]
    labels: tuple[str, ...]
    metric: str  # "exact_match" | "rouge_l"
    optional_list: tuple[str, ...] = ()
    folder: Path = field(default_factory=Path)

    @property
    def is_classification(self) -> bool:
        return self.family == "classification"

    def splits(self) -> list[str]:
        """The evaluation splits this task has on disk (``test``, maybe ``validation``)."""
        return [s for s, f in SPLIT_FILES.items() if (self.folder / f).is_file()]

    def rows(self, split: str = "test", limit: int | None = None) -> list[dict[str, Any]]:
        """Evaluation rows ``{id, task, input, output}`` of a split (the first ``limit``)."""
        if split not in SPLIT_FILES:
            raise SelfGuideTaskError(f"unknown split {split!r} (choose from test, validation)")
        path = self.folder / SPLIT_FILES[split]
        if not path.is_file():
            have = ", ".join(self.splits()) or "none"
            raise SelfGuideTaskError(f"task {self.name} has no {split} rows (it has: {have})")
        out: list[dict[str, Any]] = []
        for lineno, row in storage.iter_jsonl(path, error=SelfGuideTaskError):
            if not isinstance(row.get("input"), str) or not isinstance(row.get("output"), str):
                raise SelfGuideTaskError(f"{path}:{lineno}: needs string 'input' and 'output'")
            row.setdefault("id", f"{self.name}-{split}-{lineno - 1}")
            out.append(row)
            if limit is not None and len(out) >= limit:
                break
        if not out:
            raise SelfGuideTaskError(f"{path} holds no rows")
        return out

    def summary(self) -> dict[str, Any]:
        """A small dict for tables and run records."""
        return {
            "task": self.name,
            "ni_task": self.ni_name,
            "family": self.family,
            "role": self.split_role,
            "metric": self.metric,
            "demonstrations": len(self.demonstrations),
            "labels": ", ".join(self.labels),
        }


def data_root(data_dir: str | Path | None = None) -> Path:
    """The folder that holds ``natural_instructions/``: ``data_dir`` (either that folder or
    its parent), else ``$COOKBOOK_EVAL_DATA``, else ``../shared/data`` beside the project."""
    candidates: list[Path] = []
    if data_dir is not None:
        candidates = [Path(data_dir).expanduser()]
    else:
        env = tasks.default_data_dir()
        if env is not None:
            candidates.append(env)
        candidates.append(paths.PROJECT_ROOT.parent / "shared" / "data")
    for c in candidates:
        if (c / PACK).is_dir():
            return (c / PACK).resolve()
        if c.is_dir() and c.name == PACK:
            return c.resolve()
    where = ", ".join(str(c) for c in candidates)
    raise SelfGuideTaskError(
        f"no {PACK}/ task pack found (looked in {where}); pass --data-dir FOLDER (the folder "
        f"holding {PACK}/) or set ${tasks.DATA_DIR_ENV}"
    )


def list_tasks(data_dir: str | Path | None = None) -> list[str]:
    """Short ids of every task folder in the pack (those with a ``task.json``), sorted."""
    root = data_root(data_dir)
    names = [d.name for d in root.iterdir() if (d / "task.json").is_file()]
    return sorted(names, key=lambda n: (len(n), n))


def parse_task(d: dict[str, Any], folder: Path) -> NITask:
    """An :class:`NITask` from a ``task.json`` dict, checked for what SELF-GUIDE needs.

    Raises :class:`SelfGuideTaskError` for a task without demonstrations, a
    classification task without labels, an unknown family, or malformed fields.
    """
    name = str(d.get("task_name") or folder.name)
    family = d.get("family")
    if family not in FAMILIES:
        raise SelfGuideTaskError(f"task {name}: family must be one of {FAMILIES}, got {family!r}")
    instruction = d.get("instruction")
    if not isinstance(instruction, str) or not instruction.strip():
        raise SelfGuideTaskError(f"task {name} has no instruction")
    demos_raw = d.get("demonstrations") or []
    demos = []
    for i, item in enumerate(demos_raw):
        if not isinstance(item, dict) or not all(
            isinstance(item.get(k), str) for k in ("input", "output")
        ):
            raise SelfGuideTaskError(f"task {name}: demonstration {i} needs string input/output")
        demos.append(Demonstration(item["input"], item["output"]))
    if not demos:
        raise SelfGuideTaskError(
            f"task {name} has no demonstrations: SELF-GUIDE needs a few worked examples to "
            "write new inputs from"
        )
    labels = tuple(str(x) for x in d.get("labels") or [])
    if family == "classification" and not labels:
        raise SelfGuideTaskError(
            f"task {name} is a classification task without labels: the input prompts are "
            "conditioned on a label and the vote keeps only exact labels"
        )
    metric = d.get("metric") or ("exact_match" if family == "classification" else "rouge_l")
    return NITask(
        name=name,
        ni_name=str(d.get("ni_task_name") or name),
        family=family,
        split_role=str(d.get("split_role") or "unknown"),
        instruction=instruction.strip(),
        demonstrations=tuple(demos),
        labels=labels,
        metric=str(metric),
        optional_list=tuple(str(x) for x in d.get("optional_list") or []),
        folder=folder,
    )


def load_task(name: str, data_dir: str | Path | None = None) -> NITask:
    """The task ``name`` (e.g. ``task1345`` or its full NI name) from the pack."""
    root = data_root(data_dir)
    short = name.split("_", 1)[0]
    folder = root / short
    if not (folder / "task.json").is_file():
        known = list_tasks(root.parent)
        hint = difflib.get_close_matches(short, known, n=1, cutoff=0.6)
        raise SelfGuideTaskError(
            f"unknown SELF-GUIDE task {name!r} in {root}"
            + (f"; did you mean {hint[0]!r}?" if hint else "")
            + f" (known: {', '.join(known)})"
        )
    try:
        d = json.loads((folder / "task.json").read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise SelfGuideTaskError(f"{folder / 'task.json'}: not valid JSON ({exc.msg})") from None
    return parse_task(d, folder)
