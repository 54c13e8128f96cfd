"""Reading generated datasets back: manifests, rows, and the list of datasets in a workspace.

A dataset is a folder holding ``manifest.json`` and its data in one of the
formats that :mod:`cookbook_core.generate` writes (``data.jsonl``,
``data.parquet`` or a Hugging Face ``hf/`` folder).  A plain JSONL file of
``prompt``/``completion`` rows (no manifest) is read too, so users can bring their
own data.  This module only reads; it never writes or converts.

Rows written in the ``compact`` layout (the default of ``generate``) leave out
``messages`` and store a long ``meta.parent``/``meta.child`` string (or list of
strings) that occurs in the prompt as spans of the prompt (``meta["in_prompt"]``,
see :func:`expand_in_prompt`); every row read here comes back whole either way.
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


DATA_FORMATS = ("jsonl", "parquet", "hf")


def read_manifest(folder: Path | str) -> dict[str, Any]:
    """The manifest of a dataset folder (a JSON object; :class:`DatasetError` when it is
    missing, not UTF-8 JSON, or not an object)."""
    path = Path(folder) / "manifest.json"
    if not path.is_file():
        raise DatasetError(f"{folder} has no manifest.json (is it a generated dataset?)")
    try:
        manifest = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError:
        raise DatasetError(f"{path}: not UTF-8 text (is it a binary file?)") from None
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except RecursionError:
        raise DatasetError(f"{path}: JSON nested too deeply") from None
    if not isinstance(manifest, dict):
        raise DatasetError(f"{path}: expected a JSON object, got {type(manifest).__name__}")
    return manifest


def _manifest_data(folder: Path) -> tuple[Path, str]:
    """(path, format) named by a dataset's manifest, checked: both fields present, a known
    format, a path inside the dataset folder that exists with the right kind."""
    where = folder / "manifest.json"
    m = read_manifest(folder)
    name, fmt = m.get("data"), m.get("format")
    if not isinstance(name, str) or not name:
        raise DatasetError(f"{where}: field 'data' (the data file's name) is missing or not text")
    if fmt not in DATA_FORMATS:
        raise DatasetError(
            f"{where}: field 'format' must be one of {', '.join(DATA_FORMATS)}, got {fmt!r}"
        )
    root = folder.resolve()
    path = (root / name).resolve()
    if not path.is_relative_to(root) or path == root:
        raise DatasetError(f"{where}: data {name!r} points outside the dataset folder")
    if not path.exists():
        raise DatasetError(f"{where}: data file {name!r} does not exist in {folder}")
    if (fmt == "hf") != path.is_dir():
        kind = "a folder" if fmt == "hf" else "a file"
        raise DatasetError(f"{where}: data {name!r} must be {kind} for format {fmt!r}")
    return path, fmt


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
        return _manifest_data(folder)
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
    import pyarrow as pa
    import pyarrow.parquet as pq

    n = 0
    try:
        pf = pq.ParquetFile(path)
        for batch in pf.iter_batches(batch_size=1024):
            for row in batch.to_pylist():
                n += 1
                yield _checked(row, f"{path} row {n}")
    except (pa.ArrowException, OSError) as exc:
        raise DatasetError(f"{path}: not a readable Parquet file ({_first_line(exc)})") from None


def _hf_rows(path: Path) -> Iterator[dict[str, Any]]:
    import datasets

    try:
        ds = datasets.load_from_disk(str(path))
    except (OSError, ValueError) as exc:  # FileNotFoundError, a bad arrow file, bad JSON
        raise DatasetError(
            f"{path}: not a readable Hugging Face dataset ({_first_line(exc)})"
        ) from None
    for i, row in enumerate(ds):
        yield _checked(dict(row), f"{path} row {i + 1}")


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _checked(row: Any, where: str) -> dict[str, Any]:
    if not isinstance(row, dict):
        raise DatasetError(f"{where}: expected an object with prompt and completion")
    for key in ("prompt", "completion"):
        if not isinstance(row.get(key), str):
            raise DatasetError(f"{where}: field {key!r} is missing or not a string")
    meta = row.get("meta")
    if isinstance(meta, str):
        try:
            row["meta"] = json.loads(meta)
        except (json.JSONDecodeError, RecursionError):
            raise DatasetError(f"{where}: field 'meta' is text but not valid JSON") from None
    elif meta is None:
        row["meta"] = {}
    if not isinstance(row["meta"], dict):
        raise DatasetError(f"{where}: field 'meta' must be a JSON object")
    messages = row.get("messages")
    if messages and not (
        isinstance(messages, list)
        and all(
            isinstance(m, dict)
            and isinstance(m.get("role"), str)
            and isinstance(m.get("content"), str)
            for m in messages
        )
    ):
        raise DatasetError(f"{where}: field 'messages' must be a list of {{role, content}} texts")
    if "in_prompt" in row["meta"]:
        try:
            expand_in_prompt(row["meta"], row["prompt"])
        except (TypeError, ValueError, AttributeError) as exc:
            raise DatasetError(f"{where}: bad meta.in_prompt ({exc})") from None
    if not row.get("messages"):
        row["messages"] = [
            {"role": "user", "content": row["prompt"]},
            {"role": "assistant", "content": row["completion"]},
        ]
    return row


def expand_in_prompt(meta: dict[str, Any], prompt: str) -> dict[str, Any]:
    """Put back, in place, the meta values a compact row stores as prompt spans.

    ``meta["in_prompt"]`` is ``{section: {key: span}}`` where a span is ``[start, end]``
    (character offsets: the value is ``prompt[start:end]``) or a list of them (the
    value is the list of those strings).  It is removed and ``meta[section][key]`` is
    set.  Returns ``meta``; ``ValueError`` for a span that is not inside the prompt.
    """
    refs = meta.pop("in_prompt")
    for section, fields in refs.items():
        target = meta.setdefault(section, {})
        for key, ref in fields.items():
            if ref and isinstance(ref[0], list):
                target[key] = [_span(prompt, s) for s in ref]
            else:
                target[key] = _span(prompt, ref)
    return meta


def _span(prompt: str, span: Any) -> str:
    start, end = span
    if not (type(start) is int and type(end) is int and 0 <= start <= end <= len(prompt)):
        raise ValueError(f"span {span!r} is outside the prompt")
    return prompt[start:end]


def count_rows(folder: Path | str) -> int:
    """Number of rows (from the manifest when there is one)."""
    folder = Path(folder)
    if folder.is_dir() and (folder / "manifest.json").is_file():
        n = read_manifest(folder).get("n")
        if isinstance(n, int) and not isinstance(n, bool) and n >= 0:
            return n
    return sum(1 for _ in iter_rows(folder))


def list_datasets(root: Path | None = None) -> list[dict[str, Any]]:
    """Every dataset folder (with a manifest) directly under ``root``, newest first."""
    root = root or datasets_root()
    out = []
    if root.is_dir():
        for d in root.iterdir():
            if d.is_dir() and not d.name.startswith(".") and (d / "manifest.json").is_file():
                try:
                    m = read_manifest(d)
                except DatasetError:  # a broken manifest: not listed (reading it says why)
                    continue
                out.append({"name": d.name, "path": str(d), **m})
    return sorted(out, key=lambda m: m.get("created", ""), reverse=True)
