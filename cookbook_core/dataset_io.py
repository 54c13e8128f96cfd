"""Reading generated datasets back: manifests, rows, and the list of datasets in a workspace.

A dataset is a folder holding ``manifest.json`` and its data in one of the
formats that :mod:`cookbook_core.generate` writes (``data.jsonl``,
``data.parquet`` or a Hugging Face ``hf/`` folder).  A plain JSONL file of
``prompt``/``completion`` rows (no manifest) is read too, so users can bring their
own data.  This module only reads; it never writes or converts.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cookbook_core import paths, storage
from cookbook_core.errors import BadInput


class DatasetError(BadInput):
    """A dataset that is missing, empty or lacks the expected fields."""


def datasets_root() -> Path:
    """``<home>/datasets``: where the studio and CLI put generated datasets by default."""
    return paths.home() / "datasets"


def read_manifest(folder: Path | str) -> dict[str, Any]:
    """The manifest of a dataset folder."""
    path = Path(folder) / "manifest.json"
    if not path.is_file():
        raise DatasetError(f"{folder} has no manifest.json (is it a generated dataset?)")
    return json.loads(path.read_text())


def data_path(folder: Path | str) -> tuple[Path, str]:
    """(path, format) of a dataset's data: a folder with a manifest, or a bare JSONL file."""
    folder = Path(folder)
    if folder.is_file():
        if folder.suffix in (".jsonl", ".json"):
            return folder, "jsonl"
        if folder.suffix == ".parquet":
            return folder, "parquet"
        raise DatasetError(f"{folder}: unsupported file type (use .jsonl or .parquet)")
    if not folder.exists():
        raise DatasetError(f"dataset {folder} does not exist")
    if (folder / "manifest.json").is_file():
        m = read_manifest(folder)
        return folder / m["data"], m["format"]
    for name, fmt in (("data.jsonl", "jsonl"), ("data.parquet", "parquet"), ("hf", "hf")):
        if (folder / name).exists():
            return folder / name, fmt
    raise DatasetError(f"{folder} holds no data.jsonl, data.parquet or hf/ folder")


def iter_rows(folder: Path | str, limit: int | None = None) -> Iterator[dict[str, Any]]:
    """Rows as dicts with ``prompt``, ``completion``, ``messages`` and ``meta`` (a dict)."""
    path, fmt = data_path(folder)
    rows: Iterator[dict[str, Any]]
    if fmt == "jsonl":
        rows = _jsonl_rows(path)
    elif fmt == "parquet":
        rows = _parquet_rows(path)
    else:
        rows = _hf_rows(path)
    return itertools.islice(rows, limit) if limit is not None else rows


def _jsonl_rows(path: Path) -> Iterator[dict[str, Any]]:
    for lineno, row in storage.iter_jsonl(path, error=DatasetError):
        yield _checked(row, f"{path}:{lineno}")


def _parquet_rows(path: Path) -> Iterator[dict[str, Any]]:
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    n = 0
    for batch in pf.iter_batches(batch_size=1024):
        for row in batch.to_pylist():
            n += 1
            yield _checked(row, f"{path} row {n}")


def _hf_rows(path: Path) -> Iterator[dict[str, Any]]:
    import datasets

    ds = datasets.load_from_disk(str(path))
    for i, row in enumerate(ds):
        yield _checked(dict(row), f"{path} row {i + 1}")


def _checked(row: dict[str, Any], where: str) -> dict[str, Any]:
    for key in ("prompt", "completion"):
        if not isinstance(row.get(key), str):
            raise DatasetError(f"{where}: field {key!r} is missing or not a string")
    meta = row.get("meta")
    if isinstance(meta, str):
        row["meta"] = json.loads(meta)
    elif meta is None:
        row["meta"] = {}
    if not row.get("messages"):
        row["messages"] = [
            {"role": "user", "content": row["prompt"]},
            {"role": "assistant", "content": row["completion"]},
        ]
    return row


def count_rows(folder: Path | str) -> int:
    """Number of rows (from the manifest when there is one)."""
    folder = Path(folder)
    if folder.is_dir() and (folder / "manifest.json").is_file():
        return int(read_manifest(folder)["n"])
    return sum(1 for _ in iter_rows(folder))


def list_datasets(root: Path | None = None) -> list[dict[str, Any]]:
    """Every dataset folder (with a manifest) directly under ``root``, newest first."""
    root = root or datasets_root()
    out = []
    if root.is_dir():
        for d in root.iterdir():
            if d.is_dir() and not d.name.startswith(".") and (d / "manifest.json").is_file():
                m = read_manifest(d)
                out.append({"name": d.name, "path": str(d), **m})
    return sorted(out, key=lambda m: m.get("created", ""), reverse=True)
