"""Mixtures with a dataset source (how a SELF-GUIDE run joins Cookbook-Mix): exact counts,
seeded and repeatable sampling, bad sources refused, sweeps accept them."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from cookbook_core import dataset_io
from cookbook_core.errors import BadInput
from cookbook_core.mix import cells, sweep
from cookbook_core.mix import sources as mix_sources


def test_template_plus_dataset_mixture_has_exact_counts(tiny_dataset: Path, tmp_path: Path) -> None:
    src = f"dataset:{tiny_dataset}"
    m = mix_sources.build({"multiple_choice_qa": 0.5, src: 0.5}, 50, tmp_path / "a", seed=1)
    assert {e["name"]: e["count"] for e in m["templates"]} == {"multiple_choice_qa": 25, src: 25}
    rows = list(dataset_io.iter_rows(tmp_path / "a"))
    assert len(rows) == 50
    from_ds = [r for r in rows if r["meta"].get("source") == src]
    assert len(from_ds) == 25
    originals = {r["prompt"] for r in dataset_io.iter_rows(tiny_dataset)}
    assert {r["prompt"] for r in from_ds} <= originals
    assert len({r["prompt"] for r in from_ds}) == 25  # enough rows: no repeats
    again = mix_sources.build({"multiple_choice_qa": 0.5, src: 0.5}, 50, tmp_path / "b", seed=1)
    assert (tmp_path / "a" / "data.jsonl").read_bytes() == (
        tmp_path / "b" / "data.jsonl"
    ).read_bytes()
    assert again["extra"]["mixture"]["weights"][src] == 0.5


def test_small_dataset_is_cycled_evenly(tiny_dataset: Path, tmp_path: Path) -> None:
    src = f"dataset:{tiny_dataset}"
    mix_sources.build({src: 1.0}, 70, tmp_path / "c")
    counts = Counter(r["prompt"] for r in dataset_io.iter_rows(tmp_path / "c"))
    assert sum(counts.values()) == 70 and set(counts.values()) <= {2, 3}
    assert json.loads((tmp_path / "c" / "manifest.json").read_text())["n"] == 70


def test_bad_sources_are_refused(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="not a dataset folder"):
        mix_sources.build({f"dataset:{tmp_path / 'nope'}": 1.0}, 5, tmp_path / "d")
    with pytest.raises(BadInput):
        mix_sources.build({"no_such_template": 1.0}, 5, tmp_path / "e")
    assert not (tmp_path / "d").exists() and not (tmp_path / "e").exists()


def test_sweeps_and_cells_take_dataset_sources(tiny_dataset: Path) -> None:
    src = f"dataset:{tiny_dataset}"
    cfg = sweep.new("with-ds", ["yes_no_qa", src], ["boolq"], n=16, train={"steps": 1})
    names = [s.name for s in sweep.plan(cfg)]
    assert src in names
    spec = next(s for s in sweep.plan(cfg) if s.name == src)
    assert spec.identity()["templates"][src] == mix_sources.fingerprint(src)
    assert cells.CellSpec("x", {src: 1.0}).key() == cells.CellSpec("y", {src: 3.0}).key()


def test_single_task_experiment_on_a_generated_dataset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A dataset generated with other template parameters is trained on as a source; its
    # tasks and its alignment rule come from the one template its manifest names.
    from cookbook_core import generate
    from cookbook_core.experiments import core as experiments

    cfg = generate.GenerateConfig(
        sources=[generate.Source("document_qa", params={"k": 2})], n=20, token_space="words"
    )
    generate.generate(cfg, tmp_path / "dq-k2")
    src = f"dataset:{tmp_path / 'dq-k2'}"
    assert mix_sources.template_of(src) == "document_qa"
    monkeypatch.chdir(tmp_path)  # a relative path is made absolute (workers run elsewhere)
    single = experiments.SingleTaskConfig(template="dataset:dq-k2", steps=1)
    assert single.template == src
    about = mix_sources.describe(src)  # how the results page says what was trained on
    assert "--token-space words" in about and "--param document_qa.k=2" in about
    assert f"--out {tmp_path / 'dq-k2'}`" in about  # remade where the experiment reads it
    assert mix_sources.label(src) == "dataset dq-k2"
    assert single.experiment_name() == "single-dq-k2"
    (base, tuned), settings = experiments.single_task_cells(single)
    assert base.is_base and tuned.weights == {src: 1.0}
    assert settings.tasks == ["squad", "tydiqa_goldp_en"]  # document_qa's own tasks

    mixed = mix_sources.build({"yes_no_qa": 0.5, src: 0.5}, 10, tmp_path / "mixed")
    assert len(mixed["templates"]) == 2
    assert mix_sources.template_of(f"dataset:{tmp_path / 'mixed'}") is None
    with pytest.raises(experiments.ExperimentError, match="pass --task"):
        experiments.single_task_cells(
            experiments.SingleTaskConfig(template=f"dataset:{tmp_path / 'mixed'}")
        )
    with pytest.raises(BadInput, match="not a dataset folder"):
        experiments.single_task_cells(
            experiments.SingleTaskConfig(template=f"dataset:{tmp_path / 'nowhere'}")
        )
