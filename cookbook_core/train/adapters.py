"""Every fine-tuned LoRA adapter in the workspace, wherever it was trained.

Adapters are made by training jobs (``<home>/runs/<id>/adapter``), by Cookbook-Mix
cells, which sweeps and experiments are built from (``<home>/cells/<cell>/train/
adapter``), and by SELF-GUIDE runs (``<home>/selfguide/<run>/train/adapter``).
:func:`list_adapters` finds them all by their folders, with a label saying where
each came from and, when the training run recorded it, what it was trained on.
It reads files only: it loads no model and does not serve anything.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

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


def list_adapters() -> list[AdapterRef]:
    """Every adapter folder (with ``adapter_config.json``) in the workspace, newest first."""
    out: list[AdapterRef] = []
    home = paths.home()
    for folder, kind, pattern in SOURCES:
        root = home / folder
        if not root.is_dir():
            continue
        for cfg in root.glob(f"{pattern}/adapter_config.json"):
            adapter = cfg.parent
            run_dir = adapter.parent if adapter.parent.name != "train" else adapter.parent.parent
            train_dir = adapter.parent
            out.append(
                AdapterRef(
                    path=adapter,
                    kind=kind,
                    run=run_dir.name,
                    trained_on=_trained_on(train_dir),
                    mtime=cfg.stat().st_mtime,
                )
            )
    return sorted(out, key=lambda a: -a.mtime)
