"""The import rules of docs/ARCHITECTURE.md, checked on every import statement with ``ast``.

The layer table is read from docs/ARCHITECTURE.md itself, so the page and the code cannot
disagree: a module outside every part, an import of a higher or same-layer part, Streamlit
or Plotly outside the studio, heavy libraries in pages, or a shipped template importing
more than the template API each fail with the file, line and import named.
"""

from __future__ import annotations

import ast
import fnmatch
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "cookbook_core"
DOC = ROOT / "docs" / "ARCHITECTURE.md"

PRESENTATION_ONLY = ("streamlit", "plotly")
NOT_IN_PAGES = (
    "torch",
    "transformers",
    "peft",
    "vllm",
    "subprocess",
    "multiprocessing",
    "sqlite3",
    "pyarrow",
    "datasets",
)
TEMPLATE_API = ("cookbook_core.templates", "cookbook_core.template_helpers")
NOT_IN_TEMPLATES = (
    "os",
    "sys",
    "subprocess",
    "shutil",
    "socket",
    "pathlib",
    "io",
    "importlib",
    "ctypes",
    "multiprocessing",
    "threading",
)


@dataclass(frozen=True)
class Part:
    layer: int
    name: str
    modules: tuple[str, ...]  # dotted names under cookbook_core ("cookbook_core" = the root)
    also: tuple[str, ...]  # patterns of modules of other parts it may import


def read_parts(text: str) -> list[Part]:
    """The rows of the layer table (those whose first cell is a number)."""
    parts = []
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 5 or not cells[0].isdigit():
            continue
        names = tuple(re.findall(r"`([^`]+)`", cells[2]))
        also = tuple(re.findall(r"`([^`]+)`", cells[4]))
        parts.append(Part(int(cells[0]), cells[1], names, also))
    return parts


PARTS = read_parts(DOC.read_text(encoding="utf-8"))


def _dotted(name: str) -> str:
    return "cookbook_core" if name == "cookbook_core" else f"cookbook_core.{name}"


def part_of(module: str) -> Part | None:
    """The part of a dotted module name (longest matching module prefix), or None."""
    best: tuple[int, Part] | None = None
    for part in PARTS:
        for name in part.modules:
            full = _dotted(name)
            # the root package is a part of its own (its __init__), not a prefix of all
            if module == full or (name != "cookbook_core" and module.startswith(full + ".")):
                if best is None or len(full) > best[0]:
                    best = (len(full), part)
    return best[1] if best else None


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@dataclass(frozen=True)
class Import:
    file: Path
    line: int
    module: str  # the imported module (for ``from a import b``: ``a.b`` when that is a module)

    def where(self) -> str:
        return f"{self.file.relative_to(ROOT)}:{self.line}: imports {self.module}"


def _is_module(dotted: str) -> bool:
    p = ROOT.joinpath(*dotted.split("."))
    return p.with_suffix(".py").is_file() or (p / "__init__.py").is_file()


def imports_of(path: Path, source: str | None = None) -> Iterator[Import]:
    """Every import in a file (or in ``source`` as if it were that file), at any depth:
    inside functions and ``if TYPE_CHECKING`` blocks too."""
    text = path.read_text(encoding="utf-8") if source is None else source
    tree = ast.parse(text, filename=str(path))
    here = module_name(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(path, node.lineno, alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod == "__future__":
                continue
            for alias in node.names:
                sub = f"{mod}.{alias.name}"
                yield Import(path, node.lineno, sub if _is_module(sub) else mod)


def top(module: str) -> str:
    return module.split(".")[0]


def library_files() -> list[Path]:
    return sorted(PKG.rglob("*.py"))


def page_files() -> list[Path]:
    return sorted((ROOT / "pages").glob("*.py")) + [ROOT / "app.py"]


def template_files() -> list[Path]:
    return sorted((ROOT / "templates").glob("*.py"))


# ----------------------------------------------------------------------------------


def test_the_table_is_read_and_names_each_part_once() -> None:
    names = [p.name for p in PARTS]
    assert len(names) == len(set(names)) and len(PARTS) >= 15, names
    modules = [m for p in PARTS for m in p.modules]
    assert len(modules) == len(set(modules))
    assert part_of("cookbook_core.eval.backends.hf").name == "model backends"
    assert part_of("cookbook_core.eval.tasks").name == "eval"
    assert part_of("cookbook_core.storage").name == "foundation"
    assert part_of("cookbook_core.studio.figures_mix").name == "studio"
    assert part_of("cookbook_core.nonexistent") is None


def test_every_module_of_the_package_belongs_to_a_part() -> None:
    orphans = [str(f.relative_to(ROOT)) for f in library_files() if part_of(module_name(f)) is None]
    assert orphans == [], "add these to the table in docs/ARCHITECTURE.md"


def _allowed(src: Part, dst: Part, module: str) -> bool:
    if dst == src or dst.layer < src.layer:
        return True
    return any(fnmatch.fnmatchcase(module, _dotted(pattern)) for pattern in src.also)


def test_lower_layers_never_import_higher_ones() -> None:
    bad = []
    for f in library_files():
        src = part_of(module_name(f))
        if src is None:
            continue  # reported by test_every_module_of_the_package_belongs_to_a_part
        for imp in imports_of(f):
            if top(imp.module) != "cookbook_core":
                continue
            dst = part_of(imp.module)
            if dst is None:
                bad.append(f"{imp.where()} (a module in no part)")
            elif not _allowed(src, dst, imp.module):
                bad.append(
                    f"{imp.where()} ({src.name}, layer {src.layer} -> "
                    f"{dst.name}, layer {dst.layer})"
                )
    assert bad == [], "\n".join(bad)


def test_the_exception_for_cli_is_only_the_figure_modules() -> None:
    cli = next(p for p in PARTS if p.name == "cli")
    studio = part_of("cookbook_core.studio.widgets")
    assert studio is not None
    assert _allowed(cli, studio, "cookbook_core.studio.figures_experiments")
    assert not _allowed(cli, studio, "cookbook_core.studio.widgets")
    mix = part_of("cookbook_core.mix.mixing")
    assert mix is not None and not _allowed(mix, studio, "cookbook_core.studio.figures_mix")


def test_streamlit_and_plotly_only_in_the_studio_and_pages() -> None:
    studio = PKG / "studio"
    bad = [
        imp.where()
        for f in library_files()
        if studio not in f.parents
        for imp in imports_of(f)
        if top(imp.module) in PRESENTATION_ONLY
    ]
    assert bad == [], "\n".join(bad)


def test_figure_modules_do_not_import_streamlit() -> None:
    figures = sorted((PKG / "studio").glob("figures_*.py"))
    assert len(figures) >= 4
    bad = [
        imp.where()
        for f in figures
        for imp in imports_of(f)
        if top(imp.module) == "streamlit" or imp.module == "cookbook_core.studio.widgets"
    ]
    assert bad == [], "\n".join(bad)


def test_pages_stay_thin() -> None:
    bad = [
        imp.where()
        for f in page_files()
        for imp in imports_of(f)
        if top(imp.module) in NOT_IN_PAGES or imp.module.startswith("cookbook_core.cli")
    ]
    assert bad == [], "\n".join(bad)


def test_templates_import_only_the_template_api_and_pure_stdlib() -> None:
    files = template_files()
    assert len(files) >= 10
    bad = []
    for f in files:
        for imp in imports_of(f):
            name = top(imp.module)
            if name == "cookbook_core":
                ok = imp.module in TEMPLATE_API
            else:
                ok = name in sys.stdlib_module_names and name not in NOT_IN_TEMPLATES
            if not ok:
                bad.append(imp.where())
    assert bad == [], "\n".join(bad)


# ----------------------------------------------------------------------------------
# The checker itself catches what it should (so the tests above cannot pass vacuously)


@pytest.mark.parametrize(
    ("source", "module"),
    [
        ("import streamlit as st\n", "streamlit"),
        ("def f():\n    from plotly import graph_objects as go\n", "plotly"),
        ("from cookbook_core.studio import widgets\n", "cookbook_core.studio.widgets"),
        ("from . import cells\n", "cookbook_core.mix.cells"),
        ("from ..eval import tasks\n", "cookbook_core.eval.tasks"),
    ],
)
def test_imports_are_found_at_any_depth_and_resolved(source: str, module: str) -> None:
    probe = PKG / "mix" / "_architecture_probe.py"  # never written: the source is given
    assert [i.module for i in imports_of(probe, source)] == [module]


def test_a_violation_is_reported() -> None:
    mix = part_of("cookbook_core.mix.sweep")
    studio = part_of("cookbook_core.studio.jobs")
    train = part_of("cookbook_core.train.training")
    jobs = part_of("cookbook_core.jobs.store")
    align = part_of("cookbook_core.align.runs")
    assert mix and studio and train and jobs and align
    assert not _allowed(mix, studio, "cookbook_core.studio.jobs")  # up
    assert not _allowed(jobs, train, "cookbook_core.train.training")  # up
    assert not _allowed(mix, align, "cookbook_core.align.runs")  # same layer, other part
    assert not _allowed(align, mix, "cookbook_core.mix.mixing")
    assert _allowed(train, jobs, "cookbook_core.jobs.store")  # down
