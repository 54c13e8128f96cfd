"""Natural-language samples: the rows built from the SELF-GUIDE pack, their use in training
and experiments, and the results page's with/without comparison (hand-made cells whose
per-example answers are known, so the paired difference is known exactly)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cookbook_core.selfguide import natural_rows as natural
from tests.handmade_runs import squad_record, write_cell

SQ = [f"q{i}" for i in range(8)]
RIGHT = {"base": set(), "plain": {0, 1, 2, 3}, "natural": {0, 1, 2, 3, 4, 5}}


def test_pack_rows_are_validation_rows_task_by_task(shared_data: Path) -> None:
    from cookbook_core.selfguide import tasks as ni

    rows = natural.pack_rows(shared_data)
    held_in = [t for t in ni.list_tasks(shared_data) if "validation" in ni.load_task(t).splits()]
    assert len(held_in) >= 3
    # never a test row (SELF-GUIDE's evaluation split), every row a prompt/completion pair
    assert all("-validation-" in r["meta"]["id"] for r in rows)
    assert all(r["prompt"].strip() and r["completion"].strip() for r in rows)
    # round robin: the first len(held_in) rows come from as many different tasks
    first = [r["meta"]["task"] for r in rows[: len(held_in)]]
    assert sorted(first) == sorted(held_in)
    task = ni.load_task(first[0], shared_data)
    assert rows[0]["prompt"].startswith(task.instruction.strip())
    assert natural.pack_rows(shared_data) == rows  # seeded
    assert natural.pack_rows(shared_data, seed=1) != rows


def test_sni_alias_writes_the_file_once(
    shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COOKBOOK_HOME", str(tmp_path / "home"))
    path = Path(natural.resolve("sni", shared_data))
    assert path.parent == tmp_path / "home" / "natural"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert rows == natural.pack_rows(shared_data)
    before = path.stat().st_mtime_ns
    assert natural.resolve("sni", shared_data) == str(path)
    assert path.stat().st_mtime_ns == before  # reused, not rewritten
    assert natural.resolve("my.jsonl") == "my.jsonl"
    assert natural.resolve(None) is None


def test_training_mixes_in_the_stated_number(shared_data: Path, tiny_dataset: Path) -> None:
    from cookbook_core.train import training
    from cookbook_core.train.config import TrainConfig

    nat = natural.resolve("sni", shared_data)
    cfg = TrainConfig(data=str(tiny_dataset), natural_data=nat, natural_n=5)
    prompts = {r["prompt"] for r in natural.pack_rows(shared_data)}
    rows = training.training_rows(cfg)
    assert sum(r["prompt"] in prompts for r in rows) == 5
    assert len(rows) - 5 == sum(1 for _ in open(Path(tiny_dataset) / "data.jsonl"))


def _experiment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shared_data: Path):
    from cookbook_core.experiments import core as experiments

    monkeypatch.setenv("COOKBOOK_HOME", str(tmp_path / "home"))
    nat = natural.resolve("sni", shared_data)
    common = dict(template="document_qa", tasks=["squad"], n=8, steps=1, limit=8)
    plain = experiments.SingleTaskConfig(**common)
    with_nat = experiments.SingleTaskConfig(
        **common, train_extra={"natural_data": nat, "natural_n": 128}
    )
    for cfg, tuned in ((plain, "plain"), (with_nat, "natural")):
        specs, settings = experiments.single_task_cells(cfg)
        for spec, who in zip(specs, ("base", tuned), strict=True):
            ok = RIGHT[who]
            recs = [
                squad_record(q, "Paris" if i in ok else "x", ["Paris"]) for i, q in enumerate(SQ)
            ]
            write_cell(spec, settings, {"squad": recs})
    return experiments, plain, with_nat


def test_natural_experiment_is_its_own_and_the_report_pairs_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shared_data: Path
) -> None:
    from cookbook_core.experiments import report

    experiments, plain, with_nat = _experiment(tmp_path, monkeypatch, shared_data)
    assert plain.experiment_name() == "single-document_qa"
    assert with_nat.experiment_name() == "single-document_qa-natural128"
    # the base cell is shared; the natural rows make another fine-tune
    (pb, pt), _ = experiments.single_task_cells(plain)
    (nb, nt), _ = experiments.single_task_cells(with_nat)
    assert pb.key() == nb.key() and pt.key() != nt.key()
    assert "--natural-data sni --natural-n 128" in experiments.single_task_command(with_nat)
    experiments.summarize_single_task(plain)
    experiments.summarize_single_task(with_nat)
    c = report.collect()
    table = c["natural_table"]
    assert len(table) == 1
    row = table.iloc[0]
    assert (row["natural"], row["without"], row["with"]) == (128, 50.0, 75.0)
    assert row["difference"] == pytest.approx(25.0)  # two more of eight right
    lo, hi = row["difference_ci"]
    assert 0 <= lo <= 25.0 <= hi
    text = report.render(c)
    assert "## Natural-language samples in the fine-tune" in text
    assert "+25.0 [" in text
    assert "+128 natural" in text  # the single-task table says which run had them
    # an earlier page kept beside the results page is linked, not regenerated
    old = tmp_path / "docs" / "results" / "2026-11-22" / "RESULTS.md"
    old.parent.mkdir(parents=True)
    old.write_text("# archived\n")
    page = report.write_report(tmp_path / "docs", collected=c).read_text()
    assert "## Earlier pages" in page and "[2026-11-22](results/2026-11-22/RESULTS.md)" in page
    assert old.read_text() == "# archived\n"


def test_cli_natural_needs_data(capsys: pytest.CaptureFixture[str]) -> None:
    from cookbook_core.cli.main import main

    assert main(["experiment", "single-task", "--template", "document_qa", "--natural-n", "8"]) == 2
    assert "--natural-n needs --natural-data" in capsys.readouterr().out


def test_experiments_page_shows_the_natural_comparison(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shared_data: Path
) -> None:
    from streamlit.testing.v1 import AppTest

    experiments, plain, with_nat = _experiment(tmp_path, monkeypatch, shared_data)
    experiments.summarize_single_task(plain)
    experiments.summarize_single_task(with_nat)
    page = Path(__file__).resolve().parent.parent / "pages" / "experiments.py"
    at = AppTest.from_file(str(page), default_timeout=120).run()
    assert not at.exception, at.exception
    shown = " ".join(m.value for m in at.markdown)
    assert "### Natural-language samples in the fine-tune" in shown
    assert "+25.0 [" in shown
