"""Finding templates on disk: list them without running them, load them on demand.

``scan()`` parses every ``*.py`` file in the template folders with ``ast`` and
returns one :class:`TemplateEntry` per ``@template(...)`` declaration (name, family,
task, docstring, file), or one entry carrying the error for a file that does not
parse, so one broken file never hides the others.  ``get(name)`` imports the file
that declares ``name`` (re-importing it when its mtime changed) and returns the
:class:`~cookbook_core.templates.Template`.  Unknown names get a did-you-mean;
two files declaring the same name are an error naming both.

**Trust.**  Only files in a trusted folder are ever imported in-process: the
shipped ``templates/`` folder and folders listed in ``COOKBOOK_TRUSTED_TEMPLATES``
(:func:`~cookbook_core.paths.trusted_template_dirs`).  Everything else on the
search path (the user folder where the studio saves, ``COOKBOOK_TEMPLATES``
folders, drafts) is listed by parsing only, and :func:`get` / :func:`load_file`
refuse it with :class:`UntrustedTemplate`; such templates run only in the sandbox
(``cookbook_core.sandbox``; datasets from them through ``sandbox.generation``).  This
module does not generate data.
"""

from __future__ import annotations

import ast
import difflib
import hashlib
import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path

from cookbook_core import paths
from cookbook_core.templates import Template, TemplateError


class UnknownTemplate(TemplateError):
    """No template of that name."""


class DuplicateTemplate(TemplateError):
    """Two files declare the same template name."""


class UntrustedTemplate(TemplateError):
    """The template's folder is not trusted, so it is never imported in this process."""


def is_trusted(path: Path) -> bool:
    """Whether ``path`` lies directly in a trusted template folder."""
    folder = Path(path).resolve().parent
    return any(folder == d.resolve() for d in paths.trusted_template_dirs())


def untrusted_message(name: str, file: Path) -> str:
    """The one message for a refused in-process use of an untrusted template."""
    return (
        f"template {name!r} ({file}) is untrusted: only the shipped folder and folders "
        "listed in COOKBOOK_TRUSTED_TEMPLATES are imported into this process. It runs "
        f"only in the sandbox: `cookbook templates preview {name}` previews it and "
        f"`cookbook generate -t {name}` writes datasets from it there. If you wrote or "
        f"reviewed every file in it, trust its folder: COOKBOOK_TRUSTED_TEMPLATES={file.parent}"
    )


@dataclass(frozen=True)
class TemplateEntry:
    """A template as seen by reading its file, without running it."""

    name: str
    family: str
    tasks: tuple[str, ...]
    doc: str
    file: Path
    line: int
    error: str | None = None
    trusted: bool = False
    artifacts: tuple[str, ...] = ()  # declared artifact names (``@template(artifacts=...)``)

    @property
    def ok(self) -> bool:
        return self.error is None


def _const(node: ast.AST) -> object:
    try:
        return ast.literal_eval(node)
    except (ValueError, SyntaxError):
        return None


def parse_file(path: Path) -> list[TemplateEntry]:
    """The template declarations in one file (an error entry if it does not parse)."""
    trusted = is_trusted(path)
    try:
        source = path.read_text(encoding="utf-8")
        tree = ast.parse(source, filename=str(path))
    except SyntaxError as exc:
        msg = f"syntax error at line {exc.lineno}, column {exc.offset}: {exc.msg}"
        return [TemplateEntry(path.stem, "?", (), "", path, exc.lineno or 0, msg, trusted)]
    except (MemoryError, RecursionError):
        msg = "cannot parse: nested too deeply"
        return [TemplateEntry(path.stem, "?", (), "", path, 0, msg, trusted)]
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return [TemplateEntry(path.stem, "?", (), "", path, 0, f"cannot read: {exc}", trusted)]
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef):
            continue
        for deco in node.decorator_list:
            if not (isinstance(deco, ast.Call) and _is_template_call(deco.func)):
                continue
            kw = {k.arg: _const(k.value) for k in deco.keywords if k.arg}
            task = kw.get("task")
            tasks = (task,) if isinstance(task, str) else tuple(task or ())
            declared = kw.get("artifacts")
            names = tuple(str(k) for k in declared) if isinstance(declared, dict) else ()
            found.append(
                TemplateEntry(
                    name=str(kw.get("name") or node.name),
                    family=str(kw.get("family") or "?"),
                    tasks=tasks,
                    doc=ast.get_docstring(node) or "",
                    file=path,
                    line=node.lineno,
                    trusted=trusted,
                    artifacts=names,
                )
            )
    return found


def declared_artifacts(source: str) -> dict[str, str]:
    """``{name: description}`` of the artifacts the ``@template`` declarations in
    ``source`` declare (literal dicts only), read without running it; empty when the
    source does not parse."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return {}
    out: dict[str, str] = {}
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef):
            continue
        for deco in node.decorator_list:
            if isinstance(deco, ast.Call) and _is_template_call(deco.func):
                for k in deco.keywords:
                    value = _const(k.value) if k.arg == "artifacts" else None
                    if isinstance(value, dict):
                        out.update({str(n): str(d) for n, d in value.items()})
    return out


def _is_template_call(func: ast.AST) -> bool:
    return (isinstance(func, ast.Name) and func.id == "template") or (
        isinstance(func, ast.Attribute) and func.attr == "template"
    )


def template_files(dirs: list[Path] | None = None) -> list[Path]:
    """Every ``*.py`` file (not starting with ``_``) in the template folders, sorted."""
    files: list[Path] = []
    for d in dirs if dirs is not None else paths.template_dirs():
        if d.is_dir():
            files += sorted(p for p in d.glob("*.py") if not p.name.startswith("_"))
    return files


def scan(dirs: list[Path] | None = None) -> list[TemplateEntry]:
    """All template entries, broken files included, sorted by name."""
    entries: list[TemplateEntry] = []
    for f in template_files(dirs):
        entries += parse_file(f)
    return sorted(entries, key=lambda e: (e.name, str(e.file)))


def _index(dirs: list[Path] | None) -> dict[str, TemplateEntry]:
    index: dict[str, TemplateEntry] = {}
    for e in scan(dirs):
        if e.name in index and e.ok and index[e.name].ok:
            raise DuplicateTemplate(
                f"template {e.name!r} is declared twice: {index[e.name].file}:{index[e.name].line} "
                f"and {e.file}:{e.line}"
            )
        if e.name not in index or e.ok:
            index[e.name] = e
    return index


def names(dirs: list[Path] | None = None) -> list[str]:
    """Names of the templates whose files parse."""
    return [e.name for e in scan(dirs) if e.ok]


def suggest(name: str, choices: list[str]) -> str:
    """`` ; did you mean 'x'?`` or an empty string."""
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.5)
    return f"; did you mean {close[0]!r}?" if close else ""


_loaded: dict[Path, tuple[int, dict[str, Template]]] = {}


def load_file(path: Path) -> dict[str, Template]:
    """Import a trusted template file (again if its mtime changed); its templates by
    name.  Raises :class:`UntrustedTemplate` for a file outside the trusted folders."""
    path = path.resolve()
    if not is_trusted(path):
        raise UntrustedTemplate(untrusted_message(path.stem, path))
    mtime = path.stat().st_mtime_ns
    hit = _loaded.get(path)
    if hit and hit[0] == mtime:
        return hit[1]
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:10]
    modname = f"cookbook_templates_{path.stem}_{digest}"
    spec = importlib.util.spec_from_file_location(modname, path)
    if spec is None or spec.loader is None:
        raise TemplateError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[modname] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(modname, None)
        raise TemplateError(f"{path}: failed to load: {type(exc).__name__}: {exc}") from exc
    found = {t.name: t for t in vars(module).values() if isinstance(t, Template)}
    _loaded[path] = (mtime, found)
    return found


def find(name: str, dirs: list[Path] | None = None) -> TemplateEntry:
    """The parsed entry of the template called ``name`` (nothing is imported)."""
    index = _index(dirs)
    entry = index.get(name)
    if entry is None:
        raise UnknownTemplate(
            f"unknown template {name!r}{suggest(name, sorted(index))} "
            f"(available: {', '.join(sorted(k for k, e in index.items() if e.ok))})"
        )
    return entry


def get(name: str, dirs: list[Path] | None = None) -> Template:
    """The template called ``name``, imported from the file that declares it (trusted
    folders only: :class:`UntrustedTemplate` otherwise)."""
    entry = find(name, dirs)
    if not entry.ok:
        raise TemplateError(f"template {name!r} in {entry.file} is broken: {entry.error}")
    if not entry.trusted:
        raise UntrustedTemplate(untrusted_message(name, entry.file))
    found = load_file(entry.file)
    if name not in found:
        raise TemplateError(f"{entry.file} declares {name!r} but defines no such Template")
    return found[name]


def source_sha256(tpl: Template) -> str:
    """sha256 of the file that defines ``tpl`` (what a manifest records)."""
    if not tpl.source_file:
        return ""
    return hashlib.sha256(Path(tpl.source_file).read_bytes()).hexdigest()
