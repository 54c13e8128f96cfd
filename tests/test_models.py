"""Model resolution and the embedded model's safetensors cache."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from cookbook_core.errors import BadInput
from cookbook_core.train import models


def test_resolve_default_is_embedded() -> None:
    for name in ("default", "embedded", "SmolLM2-135M-Instruct"):
        res = models.resolve(name)
        assert res.kind == "embedded"
        assert Path(res.source) == models.embedded_cache_dir()


def test_resolve_rejects_unknown_names(tmp_path: Path) -> None:
    with pytest.raises(models.UnknownModel, match="not 'default'"):
        models.resolve("no such model at all")
    with pytest.raises(models.UnknownModel, match="config.json"):
        models.resolve(str(tmp_path))  # a folder that is not a model
    with pytest.raises(BadInput):
        models.resolve("")


def test_hub_id_offline_names_the_id_and_asks_for_a_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(models.UnknownModel) as err:
        models.resolve("someone/not-cached-model-xyz")
    assert "someone/not-cached-model-xyz" in str(err.value)
    assert "local model folder" in str(err.value)


def test_embedded_cache_is_plain_safetensors(embedded_model: Path) -> None:
    cfg = json.loads((embedded_model / "config.json").read_text())
    assert "quantization_config" not in cfg
    assert (embedded_model / "model.safetensors").is_file()
    started = time.time()
    assert models.ensure_embedded() == embedded_model  # cached: no second conversion
    assert time.time() - started < 1.0
    assert models.resolve(str(embedded_model)).kind == "local"


def test_load_has_chat_template_and_generates(embedded_model: Path) -> None:
    import torch

    model, tok = models.load("default")
    assert tok.chat_template and tok.pad_token_id is not None
    ids = tok.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=8, do_sample=False)
    text = tok.decode(out[0][ids["input_ids"].shape[1] :], skip_special_tokens=True)
    assert "Paris" in text
