"""A real tiny Cookbook-Mix cell (the embedded model, one LoRA step on 3 template rows plus 2
natural-language rows, 2 arc_easy rows evaluated) is a first-class model in the studio:

* the natural-language rows are in its training data in the stated number;
* its adapter is offered by the Evaluation page's model picker, with its base model;
* its evaluation run is among the Evaluation page's runs, labelled by the cell, and
  among the Alignment page's runs, where it can be picked and aligned.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from cookbook_core.eval import evaluation
from cookbook_core.mix import cells
from cookbook_core.studio import evaluation as studio_eval
from cookbook_core.train import models, training

pytestmark = pytest.mark.slow  # trains and evaluates a real model: about a minute on 2 cores

ROOT = Path(__file__).resolve().parent.parent
NATURAL_N = 2


@pytest.fixture(scope="module")
def tiny_cell(
    embedded_model: Path, shared_data: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[cells.CellSpec, cells.EvalSettings]:
    folder = tmp_path_factory.mktemp("natural")
    natural = folder / "natural.jsonl"
    natural.write_text(
        "".join(
            json.dumps({"prompt": f"Say the colour of the sky ({i}).", "completion": "Blue."})
            + "\n"
            for i in range(5)
        )
    )
    spec = cells.CellSpec(
        "tiny-mcqa",
        {"multiple_choice_qa": 1.0},
        n=3,
        train={
            "steps": 1,
            "batch_size": 2,
            "max_length": 128,
            "natural_data": str(natural),
            "natural_n": NATURAL_N,
        },
    )
    settings = cells.EvalSettings(tasks=["arc_easy"], limit=2, data_dir=str(shared_data))
    assert cells.run(spec, settings)["status"] == "completed"
    return spec, settings


def test_natural_rows_are_in_the_training_data(
    tiny_cell: tuple[cells.CellSpec, cells.EvalSettings],
) -> None:
    spec, _ = tiny_cell
    train_dir = cells.cell_dir(spec) / "train"
    assert cells.training_result(spec)["examples"] == 3 + NATURAL_N
    cfg = training.config_from_dict(json.loads((train_dir / "config.json").read_text()))
    assert cfg.natural_n == NATURAL_N and cfg.natural_data == spec.train["natural_data"]
    tok = models.load_tokenizer()
    texts = [tok.decode(e["input_ids"]) for e in training.build_examples(cfg, tok)]
    assert len(texts) == 3 + NATURAL_N
    assert sum("colour of the sky" in t for t in texts) == NATURAL_N


def test_the_cells_model_is_on_the_evaluation_page(
    tiny_cell: tuple[cells.CellSpec, cells.EvalSettings],
) -> None:
    spec, settings = tiny_cell
    cdir = cells.cell_dir(spec)
    adapter = str(cdir / "train" / "adapter")
    at = AppTest.from_file(str(ROOT / "pages" / "evaluation.py"), default_timeout=90).run()
    assert not at.exception, at.exception
    picker = at.selectbox(key="ev_adapter")
    label = f"mix cell: {cdir.name} · on dataset"
    assert label in picker.options
    cfg = studio_eval.eval_config(
        ["arc_easy"], adapter_run=adapter, model="ignored", data_dir=settings.data_dir
    )
    assert cfg["model"] == spec.model
    evaluation.validate(evaluation.config_from_dict(cfg))  # its base model matches

    run_dir = cells.results(spec, settings)["arc_easy"]["run_dir"]
    runs = at.multiselect(key="ev_runs")
    label = f"cell tiny-mcqa [multiple_choice_qa 1.00] · run {Path(run_dir).parent.name}/000"
    assert label in runs.options  # labelled by the cell and its mixture
    runs.set_value([run_dir]).run()
    assert not at.exception, at.exception
    table = at.dataframe[0].value
    assert [c for c in table.columns] == [studio_eval.run_label(evaluation.describe_run(run_dir))]


def test_the_cells_run_is_on_the_alignment_page(
    tiny_cell: tuple[cells.CellSpec, cells.EvalSettings], shared_data: Path
) -> None:
    spec, settings = tiny_cell
    run = evaluation.describe_run(cells.results(spec, settings)["arc_easy"]["run_dir"])
    at = AppTest.from_file(str(ROOT / "pages" / "alignment.py"), default_timeout=90).run()
    at.sidebar.text_input(key="al_data").set_value(str(shared_data)).run()
    at.sidebar.selectbox(key="al_template").set_value("multiple_choice_qa").run()
    at.sidebar.selectbox(key="al_task").set_value("arc_easy").run()
    assert not at.exception, at.exception
    picker = at.multiselect(key="al_runs")
    label = studio_eval.run_label(run)  # the cell's name and mixture, then its run
    assert label in picker.options and label.startswith("cell tiny-mcqa [multiple_choice_qa")
    picker.set_value([run["run_id"]]).run()
    assert not at.exception, at.exception
    stats = at.dataframe[1].value.set_index("run")
    assert stats.loc[run["run_id"], "n"] == 2
