"""Task registry, loaders, prompts and scorers (no model needed)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from cookbook_core.errors import BadInput
from cookbook_core.eval import scoring, tasks

# ----------------------------------------------------------------------------------
# Scorers against hand-checked cases


def test_squad_normalization() -> None:
    assert scoring.normalize_answer("The  Denver Broncos!") == "denver broncos"
    assert scoring.normalize_answer("an apple, a pear") == "apple pear"
    assert scoring.normalize_answer("Theory") == "theory"  # articles only as whole words
    assert scoring.exact_match("the Eiffel tower.", "Eiffel Tower") == 1.0
    assert scoring.exact_match("Eiffel", "Eiffel Tower") == 0.0


def test_token_f1_and_max_over_golds() -> None:
    # pred {denver, broncos, won}, gold {denver, broncos}: P=2/3, R=1 -> F1=0.8
    assert scoring.token_f1("Denver Broncos won", "the Denver Broncos") == pytest.approx(0.8)
    assert scoring.token_f1("a", "the") == 0.0  # both normalize to empty
    golds = ["Santa Clara, California", "Levi's Stadium"]
    assert scoring.max_over_golds(scoring.exact_match, "Levi's Stadium", golds) == 1.0
    assert scoring.max_over_golds(scoring.token_f1, "Santa Clara", golds) == pytest.approx(0.8)
    assert scoring.max_over_golds(scoring.token_f1, "x", []) == 0.0


def test_acc_vs_acc_norm() -> None:
    # raw sums favour the short choice; per-character they favour the long one
    lls = [-4.0, -6.0]
    choices = ["cat", "a large dog"]  # 3 and 11 characters
    assert scoring.mc_predictions(lls, choices) == (0, 1)
    # ties go to the first choice, like numpy.argmax
    assert scoring.mc_predictions([-1.0, -1.0], ["ab", "cd"]) == (0, 0)


def test_task_scores_mc_and_cloze() -> None:
    arc = tasks.get("arc_easy")
    row = {"question": "Q?", "choices": ["cat", "a large dog"], "answer_index": 1}
    doc = arc.loglik_doc(row)
    s = arc.score_loglik(doc, [(-4.0, False), (-6.0, False)])
    assert s["acc"] == 0.0 and s["acc_norm"] == 1.0
    lam = tasks.get("lambada")
    ldoc = lam.loglik_doc({"context": "He saw the", "answer": "Queen"})
    assert ldoc.continuations == [" Queen"]
    assert lam.score_loglik(ldoc, [(-2.0, True)]) == {"accuracy": 1.0, "loglikelihood": -2.0}
    ppl = lam.aggregate("perplexity")([{"loglikelihood": -1.0}, {"loglikelihood": -3.0}])
    assert ppl == pytest.approx(math.exp(2.0))


def test_yes_no_parsing_and_f1() -> None:
    assert scoring.parse_label("Yes, they are the same.") == "yes"
    assert scoring.parse_label("Answer: No") == "no"
    assert scoring.parse_label("I think these may be different, no") is None
    assert scoring.parse_label("Maybe.", ("yes", "no", "maybe")) == "maybe"
    # tp=1, fp=1, fn=1 -> F1 = 2/(2+1+1) = 0.5; None counts as a negative prediction
    preds, golds = ["yes", "yes", None, "no"], ["yes", "no", "yes", "no"]
    assert scoring.f1_positive(preds, golds, "yes") == pytest.approx(0.5)
    em = tasks.get("em_beer")
    scores = [
        em.score_generation({"label": 1, "answer": "yes"}, "Yes."),
        em.score_generation({"label": 0, "answer": "no"}, "yes"),
    ]
    assert em.aggregate("f1")(scores) == pytest.approx(2 / 3)
    assert em.aggregate("accuracy")(scores) == 0.5


def test_squad_generation_scores() -> None:
    squad = tasks.get("squad")
    row = {"context": "c", "question": "q", "answers": ["February 7, 2016", "Feb 7"]}
    s = squad.score_generation(row, " February 7, 2016\n")
    assert s == {"exact_match": 1.0, "f1": 1.0}


def test_bootstrap_is_seeded() -> None:
    vals = [1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0, 1.0]
    a = scoring.bootstrap_mean_ci(vals, n=1000, seed=0)
    assert a == scoring.bootstrap_mean_ci(vals, n=1000, seed=0)
    assert 0.0 <= a[0] <= 5 / 8 <= a[1] <= 1.0
    b = scoring.bootstrap_ci(vals, lambda xs: sum(xs) / len(xs), n=1000, seed=0)
    assert b[0] <= 5 / 8 <= b[1]
    assert all(math.isnan(x) for x in scoring.bootstrap_mean_ci([1.0]))


# ----------------------------------------------------------------------------------
# Prompts (lm-evaluation-harness conventions)


def test_lm_eval_prompt_formats() -> None:
    arc = tasks.get("arc_easy")
    _, pairs = arc.loglik_requests(
        {"question": "What is 2+2?", "choices": ["3", "4"], "answer_index": 1}
    )
    assert pairs == [
        ("Question: What is 2+2?\nAnswer:", " 3"),
        ("Question: What is 2+2?\nAnswer:", " 4"),
    ]
    boolq = tasks.get("boolq")
    doc, pairs = boolq.loglik_requests(
        {"context": "Sky is blue.", "question": "is the sky blue", "answer": "yes"}
    )
    assert pairs[0] == ("Sky is blue.\nQuestion: is the sky blue?\nAnswer:", " no")
    assert doc.choices == ["no", "yes"] and doc.gold == 1
    wino = tasks.get("winogrande")
    doc, pairs = wino.loglik_requests(
        {
            "context_options": ["the bed", "the blanket"],
            "continuation": "was't ruined.",
            "answer_index": 1,
        }
    )
    assert pairs == [("the bed", " was't ruined."), ("the blanket", " was't ruined.")]
    obqa = tasks.get("openbookqa")
    _, pairs = obqa.loglik_requests({"question": "Stem", "choices": ["a", "b"], "answer_index": 0})
    assert pairs[0] == ("Stem", " a")


def test_fewshot_and_chat_formats() -> None:
    arc = tasks.get("arc_easy")
    shot = {"question": "S?", "choices": ["x", "y"], "answer_index": 0}
    row = {"question": "Q?", "choices": ["a", "b"], "answer_index": 1}
    _, pairs = arc.loglik_requests(row, [shot])
    assert pairs[0][0] == "Question: S?\nAnswer: x\n\nQuestion: Q?\nAnswer:"
    _, chat_pairs = arc.loglik_requests(row, chat=lambda t: f"<u>{t}</u><a>")
    assert chat_pairs[1] == ("<u>Question: Q?\nAnswer:</u><a>", "b")
    squad = tasks.get("squad")
    p = squad.prompt({"context": "Doc.", "question": "Who? ", "answers": ["Me"]})
    assert p == "Document: Doc.\n\nQuestion: Who?\n\nAnswer:"
    rows = [{"i": i} for i in range(10)]
    shots = tasks.fewshot_rows(rows, 3, 2, seed=0)
    assert len(shots) == 2 and rows[3] not in shots
    assert shots == tasks.fewshot_rows(rows, 3, 2, seed=0)


# ----------------------------------------------------------------------------------
# Registry and loaders


def test_unknown_task_suggests() -> None:
    with pytest.raises(tasks.UnknownTask, match="did you mean 'squad'"):
        tasks.get("sqad")
    assert isinstance(tasks.UnknownTask("x"), BadInput)


def test_groups_expand() -> None:
    names = [t.name for t in tasks.resolve(["gpt4all", "arc_easy", "squad"])]
    assert names[:8] == list(tasks.GROUPS["gpt4all"]) and names[8:] == ["squad"]
    assert len(names) == 9  # arc_easy not repeated
    assert tasks.get("lambada_openai").name == "lambada"


def test_every_task_reads_its_shared_set(shared_data: Path) -> None:
    for t in tasks.TASKS.values():
        loaded = tasks.load(t, shared_data, limit=3)
        assert len(loaded.rows) == 3, t.name
        row = loaded.rows[0]
        if t.method == "loglikelihood":
            doc, pairs = t.loglik_requests(row)
            assert len(pairs) == len(doc.choices) and 0 <= doc.gold < len(pairs)
        else:
            assert t.prompt(row).endswith("Answer:")


def test_data_folder_layout_errors(tmp_path: Path) -> None:
    (tmp_path / "arc_easy_tst").mkdir()
    with pytest.raises(tasks.TaskDataError, match="did you mean 'arc_easy_tst'"):
        tasks.load(tasks.get("arc_easy"), tmp_path)
    (tmp_path / "arc_easy_test").mkdir()
    with pytest.raises(tasks.TaskDataError, match="no \\*.jsonl"):
        tasks.load(tasks.get("arc_easy"), tmp_path)


def test_missing_field_names_file_line_and_field(tmp_path: Path) -> None:
    f = tmp_path / "arc.jsonl"
    good = {"question": "Q", "choices": ["a", "b"], "answer_index": 0}
    bad = {"question": "Q", "answer_index": 0}
    f.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
    with pytest.raises(tasks.TaskDataError) as exc:
        tasks.load(tasks.get("arc_easy"), f)
    msg = str(exc.value)
    assert str(f) in msg and "line 2" in msg and "'choices'" in msg


def test_empty_file_and_bad_json(tmp_path: Path) -> None:
    f = tmp_path / "empty.jsonl"
    f.write_text("")
    with pytest.raises(tasks.TaskDataError, match="is empty"):
        tasks.load(tasks.get("squad"), f)
    f.write_text('{"context": "c"\n')
    with pytest.raises(tasks.TaskDataError, match=":1: not valid JSON"):
        tasks.load(tasks.get("squad"), f)


def test_csv_and_parquet_with_field_mapping(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    csv_file = tmp_path / "qa.csv"
    csv_file.write_text('passage,q,gold\nSky is blue.,What colour?,"[""blue""]"\n')
    mapping = {"context": "passage", "question": "q", "answers": "gold"}
    rows = tasks.load(tasks.get("squad"), csv_file, fields=mapping).rows
    assert rows[0]["answers"] == ["blue"] and rows[0]["context"] == "Sky is blue."
    pq_file = tmp_path / "mc.parquet"
    pq.write_table(pa.table({"stem": ["Q?"], "options": [["a", "b"]], "label": [1]}), str(pq_file))
    mapping = {"question": "stem", "choices": "options", "answer_index": "label"}
    rows = tasks.load(tasks.get("arc_easy"), pq_file, fields=mapping).rows
    assert rows[0]["choices"] == ["a", "b"] and rows[0]["answer_index"] == 1
    with pytest.raises(tasks.TaskDataError, match="row 1: missing field 'question'"):
        tasks.load(tasks.get("arc_easy"), pq_file)


def test_no_source_offline_is_clear(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(tasks.DATA_DIR_ENV, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(tasks.TaskDataError, match="--data-dir"):
        tasks.load(tasks.get("squad"))


# ----------------------------------------------------------------------------------
# Declarations: keyword arguments and the metric table


def test_aggregate_and_is_mean_read_one_metric_table() -> None:
    """A mean metric's aggregate is the plain mean of its per-example value; a set-level
    one (F1 of 'yes', macro F1, perplexity) is not a mean, and every reported metric is
    an entry of the table."""
    items = [
        {"exact_match": 1.0, "f1": 0.5, "acc": 1.0, "acc_norm": 0.0, "accuracy": 1.0},
        {"exact_match": 0.0, "f1": 1.0, "acc": 0.0, "acc_norm": 0.0, "accuracy": 0.0},
    ]
    table = list(tasks.METRICS.values())
    for t in tasks.TASKS.values():
        assert t.metrics, t.name
        for m in t.metrics:
            metric = t.metric(m)
            assert any(metric is entry for entry in table), (t.name, m)
            assert t.aggregate(m) is metric.aggregate and t.is_mean(m) == metric.is_mean
            if metric.is_mean:
                key = metric.mean_of
                assert t.aggregate(m)(items) == (items[0][key] + items[1][key]) / 2
    assert not tasks.get("em_beer").is_mean("f1") and tasks.get("squad").is_mean("f1")
    assert not tasks.get("lambada").is_mean("perplexity")
    assert not tasks.get("pubmedqa").is_mean("macro_f1")


def test_a_task_is_declared_by_what_it_does_not_by_its_kind() -> None:
    """Behaviour comes from the declared functions: a task of a made-up kind works."""
    odd = tasks.Task(
        name="odd",
        folder="odd_set",
        kind="not_a_kind",
        description="two-way choice",
        required=("question", "choices", "answer_index"),
        metric_table=tasks.metrics("acc"),
        build_loglik=tasks.get("arc_easy").build_loglik,
        score_choices=tasks.get("arc_easy").score_choices,
    )
    row = {"question": "Q?", "choices": ["cat", "a large dog"], "answer_index": 0}
    assert odd.method == "loglikelihood" and odd.metrics == ("acc",)
    doc = odd.loglik_doc(row)
    assert odd.score_loglik(doc, [(-4.0, False), (-6.0, False)]) == {"pred": 0, "acc": 1.0}
    assert tasks.checked_row(odd, dict(row), "mem", 1)["id"] == "mem-1"
    with pytest.raises(ValueError, match="odd is not a generation task"):
        odd.prompt(row)
    with pytest.raises(TypeError):
        tasks.Task("odd", "odd_set", "not_a_kind", "positional")  # type: ignore[misc]


def test_value_checks_are_declared_per_task(tmp_path: Path) -> None:
    cases = {
        "boolq": ({"context": "c", "question": "q", "answer": "maybe"}, "must be yes or no"),
        "pubmedqa": (
            {"context": "c", "question": "q", "answer": "perhaps"},
            "must be yes, no or maybe",
        ),
        "em_beer": (
            {"left_text": "a", "right_text": "b", "answer": "same"},
            "the label must be yes/no or 1/0",
        ),
    }
    for name, (row, message) in cases.items():
        f = tmp_path / f"{name}.jsonl"
        f.write_text(json.dumps(row) + "\n")
        with pytest.raises(tasks.TaskDataError, match=message):
            tasks.load(tasks.get(name), f)
    qa = tmp_path / "qa.jsonl"
    qa.write_text(json.dumps({"context": "c", "question": "q", "answers": "one"}) + "\n")
    assert tasks.load(tasks.get("squad"), qa).rows[0]["answers"] == ["one"]  # normalized
