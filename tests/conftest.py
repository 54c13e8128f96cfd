"""Shared fixtures: an isolated workspace root per test session, the token spaces,
and the path of the real evaluation data beside the project."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session", autouse=True)
def _workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every test writes under a temporary COOKBOOK_HOME, never into ./data."""
    home = tmp_path_factory.mktemp("cookbook_home")
    os.environ["COOKBOOK_HOME"] = str(home)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    return home


@pytest.fixture(scope="session")
def vocab() -> tuple[str, ...]:
    """The default token space (the embedded model's word-like tokens)."""
    from cookbook_core import tokens

    return tokens.load().tokens


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real evaluation data not found at {SHARED_DATA}")
    return SHARED_DATA


# ----------------------------------------------------------------------------------
# Models, training and jobs (issue 3)


@pytest.fixture(scope="session")
def embedded_model(_workspace: Path) -> Path:
    """The embedded model converted to safetensors once per session (then fast to load)."""
    from cookbook_core.train import models

    return models.ensure_embedded()


@pytest.fixture(scope="session")
def tiny_dataset(_workspace: Path) -> Path:
    """32 short document_qa samples (20-token documents) made with the real generator."""
    from cookbook_core.generate import GenerateConfig, Source, generate

    out = _workspace / "datasets" / "tiny-dqa"
    if not out.exists():
        cfg = GenerateConfig(sources=[Source("document_qa", params={"doc_len": 20})], n=32)
        generate(cfg, out)
    return out


@pytest.fixture
def extra_templates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An extra, empty template folder on the search path (``COOKBOOK_TEMPLATES``)."""
    d = tmp_path / "extra_templates"
    d.mkdir()
    monkeypatch.setenv("COOKBOOK_TEMPLATES", str(d))
    return d


# ----------------------------------------------------------------------------------
# Evaluation (issue 4)


@pytest.fixture(scope="session")
def eval_backend(embedded_model: Path):
    """The embedded model behind the transformers evaluation backend, loaded once."""
    from cookbook_core.eval import inference
    from cookbook_core.train import models

    model, tok = models.load("default")
    return inference.TransformersBackend(model, tok)
