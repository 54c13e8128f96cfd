"""Template data artifacts: versioned JSON files stored next to the template that uses them.

A template may need data that is not code: a rhyme dictionary, a word list, a table of
facts.  It declares each artifact by name with a one-line description of its shape,
``@template(..., artifacts={"rhymes": "JSON list of rhyme groups, ..."})``, and reads
it inside its function or checker with
:func:`cookbook_core.template_helpers.artifact` (``artifact("rhymes")``).

Layout, beside ``<folder>/<stem>.py``::

    <folder>/<stem>.artifacts/<name>.v1.json              the data (UTF-8 JSON)
    <folder>/<stem>.artifacts/<name>.v1.provenance.json   who made it: model, prompt hash, date, checks
    <folder>/<stem>.artifacts/<name>.v2.json              a later version; the highest one is used

A version is never overwritten (:func:`save` writes the next number, atomically), so a
dataset's manifest, which records each artifact's version and SHA-256
(:func:`manifest_entry`), names bytes that still exist.

Trust follows the template: a trusted template's artifacts are read in-process
(:func:`load`); an untrusted template's artifact texts are only read as bytes here and
parsed inside the sandbox child, where the template runs (``sandbox.runner``,
``sandbox.generation``).  What this module does not do: draft artifacts with a model
(``drafting.artifact``) or decide trust (``discovery``).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cookbook_core import storage
from cookbook_core.templates import ARTIFACT_NAME, TemplateError

MAX_BYTES = 8_000_000
"""Largest artifact file accepted (it travels to the sandbox child in one request)."""

_VERSION = re.compile(r"^(?P<name>[a-z][a-z0-9_]{0,47})\.v(?P<v>[1-9][0-9]{0,5})\.json$")


class MissingArtifact(TemplateError):
    """A template reads an artifact that has no version yet (or names an undeclared one)."""


@dataclass(frozen=True)
class ArtifactRef:
    """One stored version of an artifact."""

    name: str
    version: int
    sha256: str
    path: Path

    def manifest(self) -> dict[str, Any]:
        return {"version": self.version, "sha256": self.sha256, "file": self.path.name}


def check_name(name: str) -> str:
    """``name`` when it is a valid artifact name (lowercase identifier, ≤ 48 characters)."""
    if not isinstance(name, str) or not ARTIFACT_NAME.match(name):
        raise TemplateError(
            f"artifact name {name!r} must be a lowercase identifier (a-z, 0-9, _), "
            "at most 48 characters, starting with a letter"
        )
    return name


def folder(template_file: str | Path) -> Path:
    """The folder holding the artifacts of the templates in ``template_file``."""
    p = Path(template_file)
    return p.with_name(p.stem + ".artifacts")


def versions(template_file: str | Path, name: str) -> list[int]:
    """The stored versions of ``name`` for ``template_file``, ascending."""
    check_name(name)
    d = folder(template_file)
    if not d.is_dir():
        return []
    found = []
    for p in d.iterdir():
        m = _VERSION.match(p.name)
        if m and m["name"] == name:
            found.append(int(m["v"]))
    return sorted(found)


def ref(template_file: str | Path, name: str, version: int) -> ArtifactRef:
    """Version ``version`` of ``name`` (hashed now)."""
    return _read_version(template_file, name, version)[0]


def _read_version(template_file: str | Path, name: str, version: int) -> tuple[ArtifactRef, bytes]:
    """Version ``version`` of ``name`` and its bytes, read once (hash and content agree)."""
    path = folder(template_file) / f"{check_name(name)}.v{version}.json"
    data = read_bytes(path)
    return ArtifactRef(name, version, hashlib.sha256(data).hexdigest(), path), data


def read_bytes(path: Path) -> bytes:
    """The bytes of an artifact file, refusing links and files over :data:`MAX_BYTES`."""
    if path.is_symlink():
        raise TemplateError(f"artifact {path} is a symbolic link; store the file itself")
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise TemplateError(f"artifact {path} has {size:,} bytes; the limit is {MAX_BYTES:,}")
        return path.read_bytes()
    except OSError as exc:
        raise TemplateError(f"cannot read artifact {path}: {exc}") from None


def _latest_version(template_file: str | Path, name: str, template: str) -> int:
    vs = versions(template_file, name)
    if not vs:
        who = f"template {template!r}" if template else str(template_file)
        raise MissingArtifact(
            f"{who} needs the artifact {name!r}, and {folder(template_file)} holds no "
            f"version of it: draft one with `cookbook templates artifact draft "
            f"{template or '<template>'} {name}`, or save a JSON file there as {name}.v1.json"
        )
    return vs[-1]


def latest(template_file: str | Path, name: str, template: str = "") -> ArtifactRef:
    """The highest stored version of ``name``; :class:`MissingArtifact` when there is none."""
    return ref(template_file, name, _latest_version(template_file, name, template))


def latest_texts(
    template_file: str | Path, names: list[str] | tuple[str, ...], template: str = ""
) -> dict[str, tuple[ArtifactRef, str]]:
    """The latest version of each name as (reference, text), for a sandboxed run: the text
    is only decoded here, never parsed (the child parses it)."""
    out: dict[str, tuple[ArtifactRef, str]] = {}
    for n in names:
        found, data = _read_version(template_file, n, _latest_version(template_file, n, template))
        try:
            out[n] = (found, data.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise TemplateError(f"artifact {found.path} is not UTF-8 text: {exc}") from None
    return out


def load(template_file: str | Path, name: str, template: str = "") -> Any:
    """The parsed data of the latest version (trusted templates only: read in-process)."""
    found, data = _read_version(template_file, name, _latest_version(template_file, name, template))
    try:
        return json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TemplateError(f"artifact {found.path} is not valid JSON: {exc}") from None


def save(
    template_file: str | Path, name: str, text: str, provenance: dict[str, Any] | None = None
) -> ArtifactRef:
    """Store ``text`` as the next version of ``name`` (never overwriting one), with an
    optional provenance record beside it.  Only size and encoding are checked here; a
    caller saving untrusted data checks it in the sandbox first."""
    check_name(name)
    data = text.encode("utf-8")
    if len(data) > MAX_BYTES:
        raise TemplateError(
            f"artifact {name!r} has {len(data):,} bytes; the limit is {MAX_BYTES:,}"
        )
    d = folder(template_file)
    d.mkdir(parents=True, exist_ok=True)
    v = (versions(template_file, name) or [0])[-1] + 1
    path = d / f"{name}.v{v}.json"
    if provenance is not None:
        storage.write_json(d / f"{name}.v{v}.provenance.json", provenance)
    storage.write_bytes(path, data)
    return ArtifactRef(name, v, hashlib.sha256(data).hexdigest(), path)


def provenance(version: ArtifactRef) -> dict[str, Any] | None:
    """The provenance record saved with ``version`` (None when there is none)."""
    p = version.path.with_name(version.path.name.removesuffix(".json") + ".provenance.json")
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def manifest_entry(
    template_file: str | Path | None, names: list[str] | tuple[str, ...], template: str = ""
) -> dict[str, dict[str, Any]]:
    """``{name: {version, sha256, file}}`` of the versions a run uses (for manifests)."""
    if not names:
        return {}
    if template_file is None:
        raise MissingArtifact(f"template {template!r} has no file, so no artifacts")
    return {n: latest(template_file, n, template).manifest() for n in names}
