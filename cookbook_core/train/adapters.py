"""Every fine-tuned LoRA adapter in the workspace, wherever it was trained.

Adapters are made by training jobs (``<home>/runs/<id>/adapter``), by Cookbook-Mix
cells, which sweeps and experiments are built from (``<home>/cells/<cell>/train/
adapter``), and by SELF-GUIDE runs (``<home>/selfguide/<run>/train/adapter``).
:func:`list_adapters` finds them all by their folders, with a label saying where
each came from and, when the training run recorded it, what it was trained on;
:func:`describe` says the same of one adapter folder (for an evaluation run's
``adapter``).  It reads files only: it loads no model and does not serve anything.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from cookbook_core import paths

SOURCES = (
    ("runs", "training job", "*/adapter"),
    ("cells", "mix cell", "*/train/adapter"),
    ("selfguide", "SELF-GUIDE", "*/train/adapter"),
)


@dataclass(frozen=True)
class AdapterRef:
    """One finished adapter: where it is and what made it."""

    path: Path
    kind: str  # "training job" | "mix cell" | "SELF-GUIDE"
    run: str  # the run, cell or SELF-GUIDE folder name
    trained_on: str  # the training data's folder name ('' when unknown)
    mtime: float

    @property
    def label(self) -> str:
        on = f" · on {self.trained_on}" if self.trained_on else ""
        return f"{self.kind}: {self.run}{on}"


def _trained_on(run_dir: Path) -> str:
    for cfg in (run_dir / "config.json", run_dir / "train" / "config.json"):
        try:
            data = json.loads(cfg.read_text()).get("data")
        except (OSError, ValueError, AttributeError):
            continue
        if data:
            return Path(str(data)).name
    return ""


def _ref(adapter: Path, kind: str) -> AdapterRef:
    cfg = adapter / "adapter_config.json"
    run_dir = adapter.parent if adapter.parent.name != "train" else adapter.parent.parent
    return AdapterRef(
        path=adapter,
        kind=kind,
        run=run_dir.name,
        trained_on=_trained_on(adapter.parent),
        mtime=cfg.stat().st_mtime,
    )


def list_adapters() -> list[AdapterRef]:
    """Every adapter folder (with ``adapter_config.json``) in the workspace, newest first."""
    out: list[AdapterRef] = []
    home = paths.home()
    for folder, kind, pattern in SOURCES:
        root = home / folder
        if not root.is_dir():
            continue
        for cfg in root.glob(f"{pattern}/adapter_config.json"):
            out.append(_ref(cfg.parent, kind))
    return sorted(out, key=lambda a: -a.mtime)


def describe(adapter: Path | str) -> AdapterRef | None:
    """What made the adapter folder ``adapter``, or None when it is not a finished adapter
    in one of the workspace's places (:data:`SOURCES`), e.g. a folder given by path."""
    path = Path(adapter).expanduser()
    if not (path / "adapter_config.json").is_file():
        return None
    home = paths.home()
    for folder, kind, pattern in SOURCES:
        try:
            rel = path.resolve().relative_to((home / folder).resolve())
        except ValueError:
            continue
        if len(rel.parts) == len(pattern.split("/")) and PurePosixPath(*rel.parts).match(pattern):
            return _ref(path, kind)
    return None
