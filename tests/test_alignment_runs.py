"""Alignment statistics over evaluation runs, on a small fixture of run folders
written in the evaluation module's format (records of real SQuAD rows)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from cookbook_core.align import alignment
from cookbook_core.align import runs as alignment_runs
from cookbook_core.cli.main import main

N = 8


def make_run(
    root: Path, name: str, squad_dir: Path, answers: list[str], correct: list[int]
) -> Path:
    run = root / name
    (run / "records").mkdir(parents=True)
    summary = {
        "run_id": name,
        "status": "completed",
        "tasks": {"squad": {"source": str(squad_dir), "n": N, "metrics": {}}},
    }
    (run / "summary.json").write_text(json.dumps(summary))
    rows = [
        json.loads(line) for line in (squad_dir / "public_500.jsonl").read_text().splitlines()[:N]
    ]
    with open(run / "records" / "squad.jsonl", "w") as fh:
        for row, ans, ok in zip(rows, answers, correct, strict=True):
            fh.write(
                json.dumps(
                    {
                        "id": row["id"],
                        "generation": ans,
                        "gold": row["answers"],
                        "scores": {"exact_match": ok, "f1": ok},
                    }
                )
                + "\n"
            )
    return run


def win(v: alignment.Verdict) -> str:
    """Text of the rule's window next to the question span."""
    return (v.evidence.get("window_after") or v.evidence["window_before"])["text"]


@pytest.fixture
def squad_rows(shared_data: Path) -> tuple[Path, list[dict], list[alignment.Verdict]]:
    squad = shared_data / "squad_v1_1_dev"
    rows = [json.loads(line) for line in (squad / "public_500.jsonl").read_text().splitlines()[:N]]
    return squad, rows, alignment.apply_rule("document_qa", rows)


def test_run_frame_and_summary(tmp_path: Path, squad_rows) -> None:
    squad, rows, verdicts = squad_rows
    # the model answers with the rule's window on the first 5 rows, nonsense on the rest
    answers = [win(v) if i < 5 else "zzz" for i, v in enumerate(verdicts)]
    correct = [1, 0, 0, 0, 0, 1, 0, 0]
    run = make_run(tmp_path, "run-a", squad, answers, correct)
    frame = alignment_runs.run_frame("document_qa", "squad", run)
    assert list(frame["follows_rule"]) == [True] * 5 + [False] * 3
    s = alignment_runs.summarize(frame)
    assert s["n"] == N and s["generation_alignment"] == pytest.approx(5 / 8)
    assert s["accuracy"] == pytest.approx(2 / 8)
    assert s["accuracy_aligned"] == pytest.approx(1 / 5)
    assert s["accuracy_unaligned"] == pytest.approx(1 / 3)
    assert s["gold_alignment"] == pytest.approx(sum(v.gold_aligned for v in verdicts) / N)
    ev = frame.iloc[0]["evidence"]
    assert rows[0]["context"][ev["anchor"]["start"] : ev["anchor"]["end"]].startswith("Super Bowl")


def test_compare_and_correlation(tmp_path: Path, squad_rows, capsys) -> None:
    squad, _, verdicts = squad_rows
    window = [win(v) for v in verdicts]
    base = make_run(tmp_path, "base", squad, ["zzz"] * N, [0] * N)
    runs = []
    for j, k in enumerate((2, 4, 6, 8)):  # more rule-following goes with more correct answers
        answers = window[:k] + ["zzz"] * (N - k)
        correct = [1] * (k // 2) + [0] * (N - k // 2)
        runs.append(make_run(tmp_path, f"ft{j}", squad, answers, correct))
    table = alignment_runs.compare("document_qa", "squad", base, runs)
    assert list(table["role"]) == ["base"] + ["run"] * 4
    assert list((8 * table["delta_alignment"]).round(6)) == [0, 2, 4, 6, 8]
    r, lo, hi = alignment_runs.correlation(table[table["role"] == "run"], n_boot=300)
    assert r == pytest.approx(1.0)
    assert lo <= r <= hi + 1e-9
    assert (
        main(
            [
                "align",
                "--template",
                "document_qa",
                "--task",
                "squad",
                "--base",
                str(base),
                *sum((["--run", str(x)] for x in runs), []),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "correlation of Δalignment and Δaccuracy: r = 1.00" in out
    # each run's gain split by rule-following: ft3 is right on 4 of its 8 rule-following rows
    assert f"{runs[3]}: Gain +50.0 [" in out and "from the 8 examples whose tuned" in out


def test_missing_task_in_run_says_what_to_do(tmp_path: Path, squad_rows) -> None:
    squad, _, _ = squad_rows
    run = make_run(tmp_path, "run-b", squad, ["x"] * N, [0] * N)
    with pytest.raises(alignment_runs.MissingEvaluation, match="cookbook eval .* --task boolq"):
        alignment_runs.run_frame("yes_no_qa", "boolq", run)
    with pytest.raises(alignment_runs.MissingEvaluation, match="no evaluation run"):
        alignment_runs.resolve_run("no-such-run")


def test_cli_gold_alignment(shared_data: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "recs.jsonl"
    assert (
        main(
            [
                "align",
                "--template",
                "entity_matching",
                "--task",
                "em_dblp_acm",
                "--data-dir",
                str(shared_data),
                "--limit",
                "50",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "entity_matching on em_dblp_acm (50 rows): gold alignment" in text
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(recs) == 50 and "jaccard" in recs[0]["evidence"]
    assert (
        main(
            [
                "align",
                "--template",
                "document_qa",
                "--task",
                "boolq",
                "--data-dir",
                str(shared_data),
                "--limit",
                "5",
            ]
        )
        == 2
    )
    assert "templates that apply: yes_no_qa" in capsys.readouterr().err


def test_cli_rule_parameters_are_checked(shared_data: Path, capsys) -> None:
    """A rule parameter changes the verdicts; a generation-only parameter is refused by name."""
    base = ["align", "--template", "yes_no_qa", "--task", "boolq", "--data-dir", str(shared_data)]
    base += ["--limit", "40"]
    shares = []
    for t in ("0.1", "1.0"):
        assert main([*base, "--param", f"threshold={t}"]) == 0
        shares.append(float(capsys.readouterr().out.split("gold alignment ")[1].split("%")[0]))
    assert shares[0] != shares[1]
    assert main([*base, "--param", "mode=overlap"]) == 2
    err = capsys.readouterr().err
    assert "has no parameter 'mode'" in err and "its parameters: threshold" in err
    assert main([*base, "--param", "threshold=high"]) == 2
    assert "'high' is not a number" in capsys.readouterr().err


def test_end_to_end_from_a_real_evaluation_run(
    eval_backend: object, shared_data: Path, tmp_path: Path
) -> None:
    """Evaluate the embedded model on real rows, then read alignment records off the run."""
    from cookbook_core.eval import evaluation

    cfg = evaluation.EvalConfig(
        tasks=["squad", "arc_easy"], data_dir=str(shared_data), limit=6, max_new_tokens=8
    )
    evaluation.evaluate(cfg, tmp_path / "base", backend=eval_backend)
    qa = alignment_runs.run_frame("document_qa", "squad", tmp_path / "base")
    assert len(qa) == 6 and set(qa["correct"]) <= {0.0, 1.0}
    records = evaluation.read_records(tmp_path / "base", "squad")
    assert list(qa["answer"]) == [r["generation"] for r in records]
    mc = alignment_runs.run_frame("multiple_choice_qa", "arc_easy", tmp_path / "base")
    chosen = [
        int(max(range(len(r["loglikelihoods"])), key=r["loglikelihoods"].__getitem__))
        for r in evaluation.read_records(tmp_path / "base", "arc_easy")
    ]
    assert list(mc["answer"]) == chosen
    for _, rec in mc.iterrows():  # a model follows the rule exactly when it picks the rule's choice
        assert rec["follows_rule"] == (
            not rec["abstained"] and rec["answer"] == rec["rule_prediction"]
        )
    s = alignment_runs.summarize(qa)
    assert 0 <= s["generation_alignment"] <= 1 and s["n"] == 6


# ---------------------------------------------------------------------------------
# Cloze (LAMBADA): the model's answer is its recorded greedy continuation


def lambada_rows(shared: Path, n: int) -> list[dict]:
    path = shared / "lambada_openai_test" / "public_500.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()[:n]]


def make_lambada_run(root: Path, name: str, shared: Path, greedy: list[str | None]) -> Path:
    """A run folder in evaluation's format for LAMBADA (``None``: no greedy recorded)."""
    rows = lambada_rows(shared, len(greedy))
    run = root / name
    (run / "records").mkdir(parents=True)
    summary = {
        "run_id": name,
        "status": "completed",
        "created": f"2026-01-01T00:00:0{len(name) % 10}",
        "tasks": {
            "lambada": {"source": str(shared / "lambada_openai_test"), "n": len(rows)},
        },
    }
    (run / "summary.json").write_text(json.dumps(summary))
    with open(run / "records" / "lambada.jsonl", "w") as fh:
        for row, g in zip(rows, greedy, strict=True):
            words = alignment.tokenize(g or "")
            ok = bool(words) and words[0].text == row["answer"]
            rec = {
                "id": row["id"],
                "continuations": [" " + row["answer"]],
                "loglikelihoods": [-3.0],
                "is_greedy": [ok],
                "gold": 0,
                "scores": {"accuracy": float(ok), "loglikelihood": -3.0},
            }
            if g is not None:
                rec["greedy_continuation"] = g
            fh.write(json.dumps(rec) + "\n")
    return run


def test_cloze_answer_is_the_greedy_word(tmp_path: Path, shared_data: Path) -> None:
    rows = lambada_rows(shared_data, 6)
    verdicts = alignment.apply_rule("last_word", rows)
    # lambada-test-0006 ("... next to the" -> Queen): the rule says "carriage"
    assert rows[0]["id"] == "lambada-test-0006" and verdicts[0].prediction == "carriage"
    greedy = [" carriage. She", " " + rows[1]["answer"] + ",", " zzz", " the end", "\n", " x"]
    run = make_lambada_run(tmp_path, "cloze-a", shared_data, greedy)
    frame = alignment_runs.run_frame("last_word", "lambada", run)
    assert list(frame["answer"]) == ["carriage", rows[1]["answer"], "zzz", "the", "", "x"]
    # follows the rule exactly when the first greedy word is the rule's prediction
    assert frame.loc[0, "follows_rule"] and not frame.loc[0, "correct"]
    for _, rec in frame.iterrows():
        assert rec["follows_rule"] == (
            not rec["abstained"] and rec["answer"].lower() == str(rec["rule_prediction"]).lower()
        )
    assert frame.loc[1, "correct"] == 1.0  # the gold word, as is_greedy said
    # Not the gold word for every example, as an argmax over the single gold
    # continuation would have been.
    assert (frame["answer"] != frame["gold"]).sum() >= 4


def test_cloze_run_without_greedy_is_refused(tmp_path: Path, shared_data: Path) -> None:
    run = make_lambada_run(tmp_path, "cloze-old", shared_data, [None] * 4)
    with pytest.raises(alignment_runs.MissingGreedy, match="evaluate it again"):
        alignment_runs.run_frame("last_word", "lambada", run)


# ---------------------------------------------------------------------------------
# The multi-run table


def test_runs_table_lists_every_run(
    tmp_path: Path, squad_rows, shared_data: Path, monkeypatch, capsys
) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("COOKBOOK_HOME", str(home))
    assert main(["align", "--template", "document_qa", "--task", "squad", "--all-runs"]) == 2
    assert "no evaluation run in the workspace has task 'squad'" in capsys.readouterr().err
    squad, _, verdicts = squad_rows
    window = [win(v) for v in verdicts]
    evals = home / "evals"
    make_run(evals, "r1", squad, window[:4] + ["zzz"] * 4, [1, 1, 0, 0, 0, 0, 0, 0])
    make_run(evals, "r2", squad, ["zzz"] * N, [1] + [0] * 7)
    make_lambada_run(evals, "lam", shared_data, [" a"] * 3)  # another task: not listed
    table = alignment_runs.runs_table("document_qa", "squad")
    assert set(table["run"]) == {"r1", "r2"}
    by = table.set_index("run")
    gold = sum(v.gold_aligned for v in verdicts) / N
    assert by.loc["r1", "gold_alignment"] == pytest.approx(gold)
    assert by.loc["r1", "generation_alignment"] == pytest.approx(4 / 8)
    assert by.loc["r1", "accuracy"] == pytest.approx(2 / 8)
    assert by.loc["r1", "accuracy_aligned"] == pytest.approx(2 / 4)
    assert by.loc["r2", "generation_alignment"] == 0 and by.loc["r2", "accuracy"] == 1 / 8
    assert (table["adapter"] == "base model").all() and (table["note"] == "").all()
    # a cloze run without greedy continuations keeps its row, with the reason
    make_lambada_run(evals, "lam-old", shared_data, [None] * 3)
    lam = alignment_runs.runs_table("last_word", "lambada").set_index("run")
    assert lam.loc["lam", "note"] == "" and lam.loc["lam", "n"] == 3
    assert "evaluate it again" in lam.loc["lam-old", "note"]
    assert pd.isna(lam.loc["lam-old", "generation_alignment"])
    assert not pd.isna(lam.loc["lam", "generation_alignment"])
    with pytest.raises(alignment.AlignmentError, match="templates that apply"):
        alignment_runs.runs_table("document_qa", "lambada")
    assert main(["align", "--template", "document_qa", "--task", "squad", "--all-runs"]) == 0
    out = capsys.readouterr().out
    assert "document_qa on squad: 2 evaluation run(s)" in out and "r1" in out and "50.0" in out


def test_lambada_evaluation_records_greedy_and_aligns(
    eval_backend: object, shared_data: Path, tmp_path: Path, monkeypatch
) -> None:
    """A real LAMBADA evaluation records the greedy continuation; it agrees with the
    log-likelihood's is_greedy, and alignment reads the model's word from it."""
    from cookbook_core.eval import evaluation

    monkeypatch.setenv("COOKBOOK_HOME", str(tmp_path / "home"))
    cfg = evaluation.EvalConfig(tasks=["lambada"], data_dir=str(shared_data), limit=6)
    out = evaluation.evals_root() / "lam-real"
    summary = evaluation.evaluate(cfg, out, backend=eval_backend)
    assert summary["tasks"]["lambada"]["n"] == 6
    records = evaluation.read_records(out, "lambada")
    rows = lambada_rows(shared_data, 6)
    firsts = []
    for rec, row in zip(records, rows, strict=True):
        assert isinstance(rec["greedy_continuation"], str)
        words = alignment.tokenize(rec["greedy_continuation"])
        firsts.append(words[0].text if words else "")
        if rec["is_greedy"][0]:  # the gold word is the greedy continuation's start
            assert rec["greedy_continuation"].lstrip().startswith(row["answer"])
    assert any(r["is_greedy"][0] for r in records)  # the model gets some right
    assert any(not r["is_greedy"][0] for r in records)
    frame = alignment_runs.run_frame("last_word", "lambada", out)
    assert list(frame["answer"]) == firsts
    assert list(frame["correct"]) == [float(r["is_greedy"][0]) for r in records]
    table = alignment_runs.runs_table("last_word", "lambada")
    assert list(table["run"]) == ["lam-real"] and table.loc[0, "n"] == 6
    s = alignment_runs.summarize(frame)
    assert table.loc[0, "generation_alignment"] == pytest.approx(s["generation_alignment"])
