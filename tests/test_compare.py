"""Trained models as first-class runs, the side-by-side comparison, and the matrix metric.

Everything here reads run and cell folders written by hand in the library's own formats
(``tests/handmade_runs.py``), so the expected disagreements, differences and matrix
values are known exactly:

* evaluation runs inside cells are listed with a unique id and the model that made them
  (mixture weights from the cell's spec), adapters are described by where they live;
* the comparison lists exactly the examples where one model is right and another wrong
  (and only examples every run scored), with each model's answer; the per-example metric
  changes the verdicts; paired differences count the one-sided wins;
* the matrix metric (acc / acc_norm, exact_match / f1) changes the matrix values to the
  chosen metric's, is recorded beside the CSV and in the sweep, and is checked.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cookbook_core.align import runs as alignment_runs
from cookbook_core.errors import BadInput
from cookbook_core.eval import evaluation
from cookbook_core.mix import cells, mixing, sweep
from cookbook_core.studio import compare, figures_compare
from cookbook_core.studio import evaluation as studio_eval
from cookbook_core.train import adapters
from tests.handmade_runs import arc_record, squad_record, write_cell, write_run

TEMPLATES = ["yes_no_qa", "multiple_choice_qa"]
TASKS = ["arc_easy", "squad"]
IDS = [f"e{i}" for i in range(1, 7)]
# raw picks (gold is 0 everywhere): A right on e1 e3 e5, B on e1 e2 e5 e6, C on e1 e2 e3
PICKS = {"A": [0, 1, 0, 1, 0, 1], "B": [0, 0, 1, 1, 0, 0], "C": [0, 0, 0, 1, 2, 2]}
SQUAD_GOLD = [["Paris"], ["Rome"], ["Oslo"]]
SQUAD = {"A": ["Paris", "x", "y"], "B": ["Paris", "Rome", "z"], "C": ["Paris", "Rome", "Oslo"]}


def _arc(letter: str, *, norm: int | None = None, extra: bool = False) -> list[dict]:
    recs = [arc_record(i, p, pick_norm=norm) for i, p in zip(IDS, PICKS[letter], strict=True)]
    if extra:  # an example only some runs scored
        recs.append(arc_record("e7", 0 if letter == "A" else 1, pick_norm=norm))
    return recs


def _squad(letter: str) -> list[dict]:
    return [
        squad_record(f"q{i}", a, g)
        for i, (a, g) in enumerate(zip(SQUAD[letter], SQUAD_GOLD, strict=True))
    ]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("COOKBOOK_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def handmade_sweep(home: Path) -> sweep.SweepConfig:
    """A saved sweep (base, two templates, their uniform pair) whose four cells are on disk:
    base = A, yes_no_qa = B, multiple_choice_qa = C, the pair = B's arc, C's squad; the
    length-normalized choice is right everywhere for the templates, wrong for the base."""
    cfg = sweep.new("handmade", TEMPLATES, TASKS, n=8, train={"steps": 1}, limit=6, pairs=True)
    sweep.save(cfg)
    st = sweep.settings(cfg)
    letter = {"base": "A", "yes_no_qa": "B", "multiple_choice_qa": "C"}
    for spec in sweep.plan(cfg):
        if spec.role == "pair":
            arc, sq = _arc("B", norm=0), _squad("C")
        else:
            arc = _arc(letter[spec.name], norm=1 if spec.is_base else 0)
            sq = _squad(letter[spec.name])
        write_cell(spec, st, {"arc_easy": arc, "squad": sq})
    return cfg


def _cell_run(cfg: sweep.SweepConfig, name: str) -> str:
    spec = next(s for s in sweep.plan(cfg) if s.name == name)
    return cells.results(spec, sweep.settings(cfg))["arc_easy"]["run_dir"]


# ----------------------------------------------------------------------------------
# Every trained model is a run


def test_cell_runs_are_listed_with_the_model_that_made_them(
    handmade_sweep: sweep.SweepConfig, home: Path
) -> None:
    write_run(home / "evals" / "plain-run", {"arc_easy": _arc("A")}, created="2026-02-01")
    runs = {s["run_dir"]: s for s in evaluation.list_runs()}
    assert len(runs) == 5  # four cells + the foreground run
    assert next(iter(runs)) == str(home / "evals" / "plain-run")  # newest first
    pair_dir = _cell_run(handmade_sweep, "yes_no_qa+multiple_choice_qa")
    pair = runs[pair_dir]
    cell_folder = Path(pair_dir).parents[2]
    assert pair["run_id"] == f"cells/{cell_folder.name}/{Path(pair_dir).parent.name}/000"
    assert pair["origin"]["kind"] == "mix cell" and pair["origin"]["role"] == "pair"
    assert pair["origin"]["weights"] == {"multiple_choice_qa": 0.5, "yes_no_qa": 0.5}
    assert studio_eval.run_label(pair) == (
        "cell yes_no_qa+multiple_choice_qa [multiple_choice_qa 0.50, yes_no_qa 0.50] · run "
        f"{Path(pair_dir).parent.name}/000"
    )
    single = runs[_cell_run(handmade_sweep, "yes_no_qa")]
    assert studio_eval.run_label(single).startswith("cell yes_no_qa · run ")
    base = runs[_cell_run(handmade_sweep, "base")]
    assert base["origin"]["weights"] == {} and base["origin"]["role"] == "base"
    assert studio_eval.run_label(base).startswith("cell base (untrained) · run ")
    assert runs[str(home / "evals" / "plain-run")]["origin"]["kind"] == "base model"
    # the Alignment page finds a cell's run by its listed id
    assert str(alignment_runs.resolve_run(pair["run_id"])) == pair_dir
    assert (
        alignment_runs.runs_table("multiple_choice_qa", "arc_easy")["adapter"]
        .tolist()
        .count(cell_folder.name)
        == 1
    )


def test_adapters_are_described_by_where_they_live(
    handmade_sweep: sweep.SweepConfig, home: Path
) -> None:
    listed = adapters.list_adapters()
    assert sorted(a.run for a in listed) == sorted(
        cells.cell_dir(s).name for s in sweep.plan(handmade_sweep) if not s.is_base
    )
    ref = adapters.describe(listed[0].path)
    assert ref is not None and (ref.kind, ref.run) == ("mix cell", listed[0].run)
    elsewhere = home / "elsewhere" / "adapter"
    elsewhere.mkdir(parents=True)
    (elsewhere / "adapter_config.json").write_text("{}")
    assert adapters.describe(elsewhere) is None
    # an evaluation of a cell's adapter run elsewhere still names the cell and its mixture
    write_run(home / "evals" / "of-a-cell", {"arc_easy": _arc("B")}, adapter=str(listed[0].path))
    origin = evaluation.describe_run(home / "evals" / "of-a-cell")["origin"]
    assert origin["kind"] == "mix cell" and origin["cell_dir"] == str(listed[0].path.parents[1])
    # and the Evaluation page's job config takes the base model the adapter was trained on
    cfg = studio_eval.eval_config(["arc_easy"], adapter_run=str(listed[0].path), model="x")
    assert cfg["model"] == "default" and cfg["adapter"] == str(listed[0].path)


# ----------------------------------------------------------------------------------
# The comparison


def test_disagreements_are_listed_exactly(home: Path) -> None:
    dirs = [
        str(write_run(home / "evals" / f"run-{m}", {"arc_easy": _arc(m, norm=0, extra=m != "C")}))
        for m in "ABC"
    ]
    table = compare.example_table(dirs, "arc_easy")
    assert table.attrs["metric"] == "acc" and table.attrs["n_each"] == [7, 7, 6]
    assert list(table["id"]) == IDS  # e7 is not scored by C
    split = compare.disagreements(table)
    assert list(split["id"]) == ["e2", "e3", "e5", "e6"]
    assert list(split["right"]) == ["B, C", "A, C", "A, B", "B"]
    assert list(split["wrong"]) == ["A", "B", "C", "A, C"]
    e2 = split.set_index("id").loc["e2"]
    assert (e2["A answer"], e2["B answer"], e2["gold"]) == ("1: b", "0: a", "0: a")

    two = compare.disagreements(compare.example_table(dirs[:2], "arc_easy"))
    assert list(two["id"]) == ["e2", "e3", "e6", "e7"]  # e7: A right, B wrong
    # by acc_norm every model picks the gold: no disagreement left
    assert compare.disagreements(compare.example_table(dirs, "arc_easy", "acc_norm")).empty

    diffs = compare.paired_differences(table, n_boot=200).set_index("model")
    assert diffs.loc["B", "difference"] == pytest.approx(1 / 6)
    assert (diffs.loc["B", "only B right"], diffs.loc["B", "only A right"]) == (2, 1)
    assert diffs.loc["C", "difference"] == pytest.approx(0.0)
    assert (diffs.loc["C", "only C right"], diffs.loc["C", "only A right"]) == (1, 1)
    assert diffs.loc["B", "ci_low"] <= 1 / 6 <= diffs.loc["B", "ci_high"]

    detail = compare.example_detail(dirs, "arc_easy", "e6")
    assert [(m["model"], m["answer"], m["right"]) for m in detail["models"]] == [
        ("A", "1: b", False),
        ("B", "0: a", True),
        ("C", "2: c", False),
    ]
    with pytest.raises(BadInput, match="no per-example value"):
        compare.example_table(dirs, "arc_easy", "f1")


def test_generation_disagreements_show_each_output(home: Path) -> None:
    dirs = [str(write_run(home / "evals" / f"sq-{m}", {"squad": _squad(m)})) for m in "AB"]
    split = compare.disagreements(compare.example_table(dirs, "squad"))
    assert list(split["id"]) == ["q1"]  # q0 both right, q2 both wrong
    detail = compare.example_detail(dirs, "squad", "q1")
    assert [m["output"] for m in detail["models"]] == ["x", "Rome"]
    assert detail["gold"] == ["Rome"]


def test_models_weights_scores_and_figures(handmade_sweep: sweep.SweepConfig) -> None:
    dirs = [_cell_run(handmade_sweep, n) for n in ("base", "yes_no_qa+multiple_choice_qa")]
    summaries = compare.load(dirs)
    models = compare.models_frame(summaries)
    assert list(models["model"]) == ["A", "B"]
    assert list(models["weights"]) == ["—", "multiple_choice_qa 0.50, yes_no_qa 0.50"]
    weights = compare.weights_frame(summaries)
    assert weights.to_dict("records") == [
        {"model": "B", "template": "multiple_choice_qa", "weight": 0.5},
        {"model": "B", "template": "yes_no_qa", "weight": 0.5},
    ]
    scores = compare.scores_frame(summaries)
    assert list(scores["metric"]) == ["acc", "exact_match"] * 2
    assert list(scores["value"]) == pytest.approx([0.5, 1 / 3, 4 / 6, 1.0])
    fig = figures_compare.task_bars_figure(scores)
    assert fig.layout.barmode == "group" and len(fig.data) == 2
    assert list(fig.data[1].y) == pytest.approx([400 / 6, 100.0])
    wfig = figures_compare.weights_figure(weights, ["A", "B"])
    assert [t.name for t in wfig.data] == ["multiple_choice_qa", "yes_no_qa"]
    assert list(wfig.data[0].x) == [0.0, 0.5]
    assert compare.common_tasks(summaries) == TASKS
    with pytest.raises(BadInput, match="at most 4"):
        compare.load(dirs * 3)


def test_a_matrix_cell_maps_to_its_runs(handmade_sweep: sweep.SweepConfig) -> None:
    got = compare.runs_for_matrix_cell("handmade", "yes_no_qa", "squad")
    assert got == [_cell_run(handmade_sweep, "base"), _cell_run(handmade_sweep, "yes_no_qa")]
    assert compare.runs_for_matrix_cell("handmade", "base", "squad") == got[:1]
    with pytest.raises(BadInput, match="no matrix row"):
        compare.runs_for_matrix_cell("handmade", "last_word", "squad")
    with pytest.raises(BadInput, match="no task"):
        compare.runs_for_matrix_cell("handmade", "yes_no_qa", "boolq")
    assert compare.match_runs([got[1] + "/", "/nowhere"], got) == [got[1]]


# ----------------------------------------------------------------------------------
# The matrix metric


def test_metric_choice_changes_the_matrix_exactly(handmade_sweep: sweep.SweepConfig) -> None:
    cfg = handmade_sweep
    A = sweep.matrix(cfg)
    # acc: base (A) 3/6, yes_no_qa (B) 4/6, multiple_choice_qa (C) 3/6; exact match 1/3, 2/3, 1
    assert A["arc_easy"].tolist() == pytest.approx([0.5, 4 / 6, 0.5])
    assert A["squad"].tolist() == pytest.approx([1 / 3, 2 / 3, 1.0])
    csv = Path(mixing.matrices_root()) / "handmade.csv"
    assert sweep.matrix_note(csv) == {
        "sweep": "handmade",
        "metrics": {"arc_easy": "acc", "squad": "exact_match"},
    }

    chosen = sweep.parse_metrics(cfg.tasks, ["acc_norm", "squad=f1"])
    assert chosen == {"arc_easy": "acc_norm", "squad": "f1"}
    A2 = sweep.record_metrics(cfg, chosen)
    # acc_norm: the base picks choice 1 (wrong) everywhere, the templates the gold
    assert A2["arc_easy"].tolist() == [0.0, 1.0, 1.0]
    f1 = [
        sum(r["scores"]["f1"] for r in _squad(m)) / 3 for m in "ABC"
    ]  # token F1 of the same answers
    assert A2["squad"].tolist() == pytest.approx(f1)
    assert sweep.load("handmade").metrics == chosen
    assert sweep.matrix_note(csv)["metrics"] == chosen
    assert json.loads(csv.with_suffix(".matrix.json").read_text())["metrics"] == chosen
    st = sweep.status(sweep.load("handmade"))
    assert set(st.loc[st["task"] == "arc_easy", "metric"]) == {"acc_norm"}

    # the linear fit reads the same metric: the pair's observed arc_easy is its acc_norm
    v = sweep.validation(sweep.load("handmade"), n_boot=100)
    row = v["table"].set_index("task").loc["arc_easy"]
    assert row["observed"] == 1.0 and row["predicted"] == pytest.approx(1.0)

    with pytest.raises(BadInput, match="none of the sweep's tasks"):
        sweep.parse_metrics(cfg.tasks, ["macro_f1"])
    with pytest.raises(BadInput, match="no matrix metric 'acc'"):
        sweep.parse_metrics(cfg.tasks, ["squad=acc"])
    with pytest.raises(BadInput, match="not one of the sweep's tasks"):
        sweep.parse_metrics(cfg.tasks, ["boolq=acc"])
    assert cells.matrix_metrics("lambada") == ("accuracy",)  # perplexity is not an accuracy
    assert sweep.parse_metrics(cfg.tasks, ["acc"]) == {}  # the default is not recorded


def test_cli_records_the_metric(
    handmade_sweep: sweep.SweepConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    from cookbook_core.cli.main import main

    assert main(["mix", "sweep", "handmade", "--metric", "acc_norm", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "metric: arc_easy acc_norm, squad exact_match" in out
    assert sweep.load("handmade").metrics == {"arc_easy": "acc_norm"}
    assert sweep.matrix(sweep.load("handmade"), write=False)["arc_easy"].tolist() == [0, 1, 1]
    assert main(["mix", "sweep", "handmade", "--metric", "perplexity"]) == 2
    assert "none of the sweep's tasks reports it" in capsys.readouterr().err


# ----------------------------------------------------------------------------------
# Natural-language rows in a sweep's fine-tunes


def _natural(path: Path, n: int) -> Path:
    path.write_text(
        "".join(
            json.dumps({"prompt": f"Name a colour ({i}).", "completion": "Blue."}) + "\n"
            for i in range(n)
        )
    )
    return path


def test_natural_rows_are_part_of_each_cells_key(home: Path, tmp_path: Path) -> None:
    nat = _natural(tmp_path / "natural.jsonl", 5)
    plain = sweep.new("plain", ["yes_no_qa"], ["boolq"], train={"steps": 1})
    mixed = sweep.new("nat", ["yes_no_qa"], ["boolq"], train={"steps": 1, "natural_data": str(nat)})
    cell = sweep.plan(mixed)[1]
    assert cell.train == {"steps": 1, "natural_data": str(nat.resolve()), "natural_n": 128}
    assert cell.key() != sweep.plan(plain)[1].key()
    assert sweep.plan(mixed)[0].key() == sweep.plan(plain)[0].key()  # the base is shared
    fewer = sweep.new(
        "nat2",
        ["yes_no_qa"],
        ["boolq"],
        train={"steps": 1, "natural_data": str(nat), "natural_n": 3},
    )
    assert sweep.plan(fewer)[1].key() != cell.key()
    moved = _natural(tmp_path / "moved.jsonl", 5)  # same rows elsewhere: the same cell
    same = sweep.new(
        "nat3", ["yes_no_qa"], ["boolq"], train={"steps": 1, "natural_data": str(moved)}
    )
    assert sweep.plan(same)[1].key() == cell.key()
    _natural(moved, 4)
    assert sweep.plan(same)[1].key() != cell.key()  # other rows: another cell
    with pytest.raises(BadInput, match="needs --natural-data"):
        sweep.new("bad", ["yes_no_qa"], ["boolq"], train={"steps": 1, "natural_n": 3})
    with pytest.raises(BadInput, match="no such file"):
        sweep.new("bad", ["yes_no_qa"], ["boolq"], train={"natural_data": str(tmp_path / "no")})
    with pytest.raises(BadInput, match="positive integer"):
        sweep.new("bad", ["yes_no_qa"], ["boolq"], train={"natural_data": str(nat), "natural_n": 0})
