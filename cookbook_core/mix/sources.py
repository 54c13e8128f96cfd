"""Mixtures that include existing datasets (e.g. a SELF-GUIDE run's pairs) next to templates.

A mixture source is either a template name or ``dataset:PATH``, a dataset folder
in the project's layout (a SELF-GUIDE run writes one as ``RUN/dataset/``).  Cookbook-Mix
treats both alike: a row of the accuracy matrix, a weight in a mixture.  :func:`build`
writes such a mixture with exact per-source counts (largest remainder, as for
templates): the template part comes from :func:`cookbook_core.generate.generate`,
each dataset contributes a seeded sample of its rows (drawn without replacement,
cycling through fresh shuffles when it has fewer rows than asked), and all rows are
interleaved by a seeded shuffle.  The manifest lists every source with its count and
a content hash.  Pure-template mixtures do not come here (``generate`` alone).
"""

from __future__ import annotations

import hashlib
import random
import shutil
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cookbook_core import storage
from cookbook_core.errors import BadInput

PREFIX = "dataset:"


def is_dataset(name: str) -> bool:
    return name.startswith(PREFIX)


def _raw_path(name: str) -> Path:
    return Path(name[len(PREFIX) :]).expanduser()


def normalize(name: str) -> str:
    """``dataset:PATH`` with an absolute PATH (workers run in their own folder); a template
    name unchanged."""
    return PREFIX + str(_raw_path(name).resolve()) if is_dataset(name) else name


def dataset_path(name: str) -> Path:
    """The folder of a ``dataset:PATH`` source (``BadInput`` when it is not a dataset)."""
    from cookbook_core import dataset_io

    path = _raw_path(name)
    if not (path / "manifest.json").is_file():
        raise BadInput(f"mixture source {name!r}: {path} is not a dataset folder (no manifest)")
    dataset_io.read_manifest(path)
    return path


def fingerprint(name: str) -> str:
    """A content hash of a source: the template's source code, or the dataset's data file."""
    from cookbook_core import dataset_io, discovery

    if not is_dataset(name):
        entry = discovery.find(name)
        if entry.ok and not entry.trusted:  # never imported here: hash its file
            return hashlib.sha256(entry.file.read_bytes()).hexdigest()
        return discovery.source_sha256(discovery.get(name))
    data, _ = dataset_io.data_path(dataset_path(name))
    h = hashlib.sha256()
    files = sorted(data.rglob("*")) if data.is_dir() else [data]
    for f in files:
        if f.is_file():
            h.update(f.read_bytes())
    return h.hexdigest()


def short_name(name: str) -> str:
    """The template's name, or a dataset's folder name."""
    return _raw_path(name).name if is_dataset(name) else name


def label(name: str) -> str:
    """A display name: the template, or ``dataset FOLDER`` (no absolute path)."""
    return f"dataset {short_name(name)}" if is_dataset(name) else name


def describe(name: str) -> str:
    """One sentence on what a dataset source holds, with the ``cookbook generate`` command
    that remakes it from its manifest, into the same folder (template sources: just the
    name)."""
    from cookbook_core import dataset_io

    if not is_dataset(name):
        return name
    m = dataset_io.read_manifest(dataset_path(name))
    parts = []
    for e in m.get("templates") or []:
        space = (e.get("token_space") or {}).get("spec", "tokenizer")
        command = [
            f"cookbook generate -t {e['name']} -n {e.get('count', m.get('n'))}",
            f"--seed {m.get('seed', 0)} --token-space {space}",
            *(f"--param {e['name']}.{k}={v}" for k, v in (e.get("params") or {}).items()),
            f"--out {_raw_path(name)}",
        ]
        parts.append(
            f"{e.get('count', '?')} samples of {e['name']} over the `{space}` token space "
            f"(`{' '.join(command)}`)"
        )
    return f"`{label(name)}`: " + ("; ".join(parts) or f"{m.get('n', '?')} rows")


def template_of(name: str) -> str | None:
    """The template a source stands for: the name itself, or for a dataset the single
    template its manifest lists (``None`` for a mixed or non-template dataset)."""
    from cookbook_core import dataset_io

    if not is_dataset(name):
        return name
    entries = dataset_io.read_manifest(dataset_path(name)).get("templates") or []
    names = {e.get("name") for e in entries}
    return names.pop() if len(names) == 1 and None not in names else None


def check(name: str) -> None:
    """Raise ``BadInput`` for an unknown template or a missing dataset (an untrusted
    template is checked in the sandbox, never imported here)."""
    from cookbook_core.sandbox.generation import template_for

    if is_dataset(name):
        dataset_path(name)
    else:
        template_for(name)


def _sample(rows: list[dict[str, Any]], k: int, rng: random.Random) -> list[dict[str, Any]]:
    if not rows:
        raise BadInput("a dataset source has no rows")
    out: list[dict[str, Any]] = []
    while len(out) < k:
        order = list(range(len(rows)))
        rng.shuffle(order)
        out += [rows[i] for i in order[: k - len(out)]]
    return out


def build(
    weights: Mapping[str, float],
    n: int,
    out: Path | str,
    *,
    seed: int = 0,
    provenance: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Write the mixture into folder ``out`` (atomically); return its manifest."""
    from cookbook_core import __version__, dataset_io
    from cookbook_core.generate import GenerateConfig, Source, generate, plan_counts

    names = [t for t, w in weights.items() if w > 0]
    if not names or any(w < 0 for w in weights.values()):
        raise BadInput("mixture weights must be >= 0 with at least one positive")
    for name in names:
        check(name)
    counts = dict(zip(names, plan_counts([weights[t] for t in names], n), strict=True))
    out = Path(out).resolve()
    with storage.staged_dir(out) as tmp:
        rows: list[dict[str, Any]] = []
        entries: list[dict[str, Any]] = []
        templates = [t for t in names if not is_dataset(t) and counts[t] > 0]
        if templates:
            part = tmp / "templates"
            total = sum(counts[t] for t in templates)
            cfg = GenerateConfig(
                sources=[Source(t, counts[t]) for t in templates], n=total, seed=seed
            )
            m = generate(cfg, part)
            rows += list(dataset_io.iter_rows(part))
            entries += m["templates"]
            shutil.rmtree(part)
        for name in names:
            if not is_dataset(name) or counts[name] == 0:
                continue
            src = list(dataset_io.iter_rows(dataset_path(name)))
            picked = _sample(src, counts[name], random.Random(f"{seed}:{name}"))
            rows += [{**r, "meta": {**(r.get("meta") or {}), "source": name}} for r in picked]
            entries.append(
                {
                    "name": name,
                    "file": None,
                    "source_sha256": fingerprint(name),
                    "count": counts[name],
                }
            )
        random.Random(f"{seed}:interleave").shuffle(rows)
        storage.write_jsonl(tmp / "data.jsonl", rows)
        total_w = sum(weights[t] for t in names)
        for e in entries:
            e["weight"] = weights[e["name"]] / total_w
            e["share"] = e["count"] / n
        manifest = {
            "kind": "cookbook-dataset",
            "version": __version__,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "n": len(rows),
            "seed": seed,
            "format": "jsonl",
            "data": "data.jsonl",
            "bytes": (tmp / "data.jsonl").stat().st_size,
            "templates": entries,
            "extra": {
                "mixture": {
                    **(provenance or {}),
                    "weights": {t: weights[t] / total_w for t in names},
                }
            },
        }
        storage.write_json(tmp / "manifest.json", manifest)
    return manifest
