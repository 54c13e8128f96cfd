"""Building a mixed dataset from mixture weights, in the foreground or as a job.

One place turns weights (and how they were chosen) into the
:class:`~cookbook_core.generate.GenerateConfig` that writes the mixture with exact
counts and records the weights and their provenance (objective, predicted accuracy)
in the manifest.  ``cookbook mix build`` and the Mixing page both use it.  The
weights themselves come from :mod:`cookbook_core.mix.mixing`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cookbook_core.errors import BadInput


def mixture_config(
    weights: dict[str, float],
    n: int,
    *,
    seed: int = 0,
    workers: int = 1,
    provenance: dict[str, Any] | None = None,
) -> Any:
    """The GenerateConfig of a mixture; ``provenance`` (e.g. an optimizer's result) goes
    to the manifest's ``mixture`` entry, with the normalized weights."""
    from cookbook_core.generate import GenerateConfig, Source

    total = sum(weights.values())
    if total <= 0 or any(w < 0 for w in weights.values()):
        raise BadInput("mixture weights must be >= 0 with a positive sum")
    norm = {t: w / total for t, w in weights.items() if w > 0}
    mixture = {"objective": "user-given", **(provenance or {}), "weights": norm}
    return GenerateConfig(
        sources=[Source(t, w) for t, w in norm.items()],
        n=n,
        seed=seed,
        workers=workers,
        extra={"mixture": mixture},
    )


def default_out(n: int, seed: int) -> Path:
    from cookbook_core import dataset_io

    return dataset_io.datasets_root() / f"mix-n{n}-s{seed}"


def submit(
    weights: dict[str, float],
    n: int,
    *,
    seed: int = 0,
    out: str | Path | None = None,
    provenance: dict[str, Any] | None = None,
) -> str:
    """Queue a ``generate`` job that writes the mixture; return the job id."""
    from cookbook_core.generate import config_to_dict
    from cookbook_core.jobs import store as jobs

    cfg = mixture_config(weights, n, seed=seed, provenance=provenance)
    target = Path(out) if out else default_out(n, seed)
    job = jobs.submit(
        "generate", {"config": config_to_dict(cfg), "out": str(target)}, name=target.name
    )
    return job.id
