"""The link to a Ray cluster shared by the Ray executors (cells, generation).

* :func:`import_ray`: the ``ray`` module, or a ``BadInput`` saying how to install it
  (``ray`` is an optional dependency: ``requirements-ray.txt`` or the ``ray`` extra).
* :func:`connected`: ``ray`` connected for the duration of a block.  ``address``
  ``None`` connects to ``$RAY_ADDRESS`` when set and otherwise starts a private local
  cluster that is stopped afterwards; ``"auto"`` finds a cluster already running on
  this machine; ``HOST:PORT`` is a cluster's head.  A connection made before the block
  (a notebook, an outer call) is used and left open.
* :func:`task_env`: the environment variables a task needs to see the driver's
  workspace (``COOKBOOK_*`` with ``COOKBOOK_HOME`` made absolute, ``HF_*``,
  ``TRANSFORMERS_*``) and its thread settings.

Ray reads ``RAY_AUTH_MODE`` when it is imported: a cluster started with token
authentication needs ``RAY_AUTH_MODE=token`` (and the token) in the environment of the
``cookbook`` command.  What it does not do: start, size or stop a shared cluster, or
submit any work (``mix.ray_cells``, ``generate_ray``).  Nothing heavy is imported
until a function runs.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

from cookbook_core import paths, threads
from cookbook_core.errors import BadInput

INSTALL_HINT = "pip install -r requirements-ray.txt (or pip install -e '.[ray]')"
ENV_PREFIXES = ("COOKBOOK_", "HF_", "TRANSFORMERS_")


def import_ray() -> Any:
    """The ``ray`` module, or ``BadInput`` saying how to install it."""
    try:
        import ray
    except ImportError:
        raise BadInput(f"--executor ray needs the ray package: {INSTALL_HINT}") from None
    return ray


@contextlib.contextmanager
def connected(address: str | None) -> Iterator[Any]:
    """``ray``, connected to ``address`` while the block runs (see the module docstring)."""
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    kwargs: dict[str, Any] = {"logging_level": "WARNING", "log_to_driver": False}
    if address is None and not os.environ.get("RAY_ADDRESS"):
        kwargs["include_dashboard"] = False
    try:
        ray.init(address=address, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        hint = ""
        if address not in (None, "auto") and os.environ.get("RAY_AUTH_MODE") != "token":
            hint = (
                " (a cluster started with token authentication needs RAY_AUTH_MODE=token "
                "and its token in ~/.ray/auth_token or RAY_AUTH_TOKEN: see docs/SCALING.md)"
            )
        raise BadInput(
            f"cannot connect to the Ray cluster at {address or 'auto'}: {exc}{hint}"
        ) from None
    try:
        yield ray
    finally:
        ray.shutdown()


def task_env(cpus: float) -> dict[str, str]:
    """Environment variables for a task that uses ``cpus`` cores of the driver's workspace."""
    env = {k: v for k, v in os.environ.items() if k.startswith(ENV_PREFIXES)}
    env["COOKBOOK_HOME"] = str(paths.home())  # absolute: workers start elsewhere
    env["OMP_WAIT_POLICY"] = os.environ.get("OMP_WAIT_POLICY", threads.WAIT_POLICY)
    env["OMP_NUM_THREADS"] = str(max(1, int(cpus)))
    return env
