"""SELF-GUIDE filters, vote, class balancing, ROUGE-L variants and task loading, on
hand-made cases (no model)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cookbook_core.eval import scoring
from cookbook_core.selfguide import filters as sf
from cookbook_core.selfguide import tasks as st

DEMOS = ["What is the capital of France?", "How do I bake bread?", "Why is the sky blue?"]


def _by_text(verdicts: list[sf.InputVerdict]) -> dict[str, sf.InputVerdict]:
    return {v.text: v for v in verdicts}


def test_empty_filter() -> None:
    verdicts, funnel = sf.filter_inputs(["  ", "", "Where is Rome?"], demo_inputs=DEMOS)
    assert [v.kept for v in verdicts] == [False, False, True]
    assert verdicts[0].stage == "empty"
    assert funnel.rows()[0] == {
        "stage": "empty",
        "entered": 3,
        "dropped": 2,
        "reason": "empty or whitespace only",
        "kept": 1,
    }


def test_length_filter_is_optional_and_uses_mean_pm_2std() -> None:
    lo, hi = sf.length_bounds(["aaaa", "aaaaaa"])  # mean 5, pstdev 1
    assert (lo, hi) == (3.0, 7.0)
    texts = ["ab", "abc", "abcdefg", "abcdefgh"]
    verdicts, funnel = sf.filter_inputs(texts, demo_inputs=["aaaa", "aaaaaa"], length_filter=True)
    assert [v.kept for v in verdicts] == [False, True, True, False]
    assert {v.stage for v in verdicts if not v.kept} == {"length"}
    assert [s.stage for s in funnel.steps] == ["empty", "length", "noise", "duplicate"]
    _, funnel_off = sf.filter_inputs(texts, demo_inputs=["aaaa", "aaaaaa"])
    assert [s.stage for s in funnel_off.steps] == ["empty", "noise", "duplicate"]
    assert funnel_off.steps[-1].kept == 4


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("Sure, I'd be happy to help! Where is Rome?", "pleasantry"),
        ("Certainly. What is 2+2?", "pleasantry"),
        ("As an AI, I think: what is love?", "pleasantry"),
        ("Input: where is Rome?", "marker"),
        ("The OUTPUT should be a city", "marker"),
        ("Where is Rome?\n\nAnd Paris?", "blank line"),
        ("Where is Rome?\n  \nAnd Paris?", "blank line"),
        ("Therefore the premise holds", "task list"),
    ],
)
def test_noise_filter_reasons(text: str, why: str) -> None:
    reason = sf.noise_reason(text, optional_list=["Therefore"])
    assert reason is not None and reason.startswith(why)


def test_noise_filter_keeps_clean_text_and_is_case_sensitive_for_task_list() -> None:
    assert sf.noise_reason("Where is Rome?\nAnd Paris?") is None  # one line break is fine
    assert sf.noise_reason("Is it surely true?") is None  # "sure" only as an opener
    assert sf.noise_reason("therefore it rains", optional_list=["Therefore"]) is None


def test_duplicates_within_batch_against_demos_and_earlier_rounds() -> None:
    texts = ["Where is Rome?", " Where is Rome? ", DEMOS[0], "Old one", "New one"]
    verdicts, funnel = sf.filter_inputs(texts, demo_inputs=DEMOS, seen=["Old one"])
    assert [v.kept for v in verdicts] == [True, False, False, False, True]
    assert funnel.steps[-1].stage == "duplicate" and funnel.steps[-1].dropped == 3


def test_filters_run_in_order_and_each_item_has_one_reason() -> None:
    texts = ["", "Sure, here", "Sure, here", "Fine question?"]
    verdicts, funnel = sf.filter_inputs(texts, demo_inputs=DEMOS)
    # both "Sure, here" copies are dropped as noise before the duplicate filter sees them
    assert [v.stage for v in verdicts] == ["empty", "noise", "noise", None]
    assert [(s.stage, s.entered, s.dropped) for s in funnel.steps] == [
        ("empty", 4, 1),
        ("noise", 3, 2),
        ("duplicate", 1, 0),
    ]


def test_vote_majority_with_min_share() -> None:
    v = sf.vote(["Paris", "Paris", "Lyon", " Paris "])
    assert (v.answer, v.reason, v.share) == ("Paris", "kept", 0.75)
    v = sf.vote(["a", "b", "c", "d"], min_share=0.3)  # 25% < 30%
    assert v.answer is None and v.reason == "no_majority" and v.share == 0.25
    v = sf.vote(["a", "b", "c", "d"], min_share=0.25)
    assert v.answer == "a"


def test_vote_ties_go_to_the_shortest() -> None:
    v = sf.vote(["a longer answer", "short", "a longer answer", "short"])
    assert v.answer == "short" and v.share == 0.5


def test_vote_share_counts_only_surviving_samples() -> None:
    v = sf.vote(["", "Sure! Paris", "Sure! Paris", "Paris", "Lyon", "Lyon"], min_share=0.5)
    assert v.dropped == {"empty": 1, "noise": 2}
    assert v.answer == "Lyon" and v.share == pytest.approx(2 / 3)  # 2 of 3 survivors
    v = sf.vote(["", "  ", "x, as an AI"])
    assert v.answer is None and v.reason == "no_samples"


def test_vote_output_length_filter() -> None:
    v = sf.vote(["ok", "far too long an answer", "far too long an answer"], bounds=(1, 5))
    assert v.answer == "ok" and v.dropped["length"] == 2


def test_vote_classification_keeps_exact_labels_only() -> None:
    labels = ["entails", "neutral"]
    assert sf.vote(["entails", "entails", "neutral"], labels=labels).answer == "entails"
    v = sf.vote(["It entails.", "It entails.", "neutral"], labels=labels)
    assert v.answer is None and v.reason == "not_a_label"


def test_balance_classes_downsamples_to_the_smallest_class_seeded() -> None:
    answers = ["a", "a", "a", "b", "a", "b"]
    keep, counts = sf.balance_classes(answers, seed=3)
    assert counts == {"a": 4, "b": 2}
    assert sorted(answers[i] for i in keep) == ["a", "a", "b", "b"]
    assert keep == sorted(keep)
    assert sf.balance_classes(answers, seed=3)[0] == keep  # deterministic
    assert sf.balance_classes([], seed=0) == ([], {})


def test_funnel_merge_adds_stage_by_stage() -> None:
    a, b = sf.Funnel(), sf.Funnel()
    a.add("empty", 10, 2)
    b.add("empty", 10, 1)
    b.add("length", 9, 4)
    a.merge(b)
    assert [(s.stage, s.entered, s.dropped, s.kept) for s in a.steps] == [
        ("empty", 20, 3, 17),
        ("length", 9, 4, 5),
    ]
    assert sf.Funnel.from_rows(a.rows()).rows() == a.rows()


def test_rouge_l_token_and_character_variants() -> None:
    assert scoring.rouge_l("the cat sat", "the cat sat") == 1.0
    # tokens: pred [a, b, c, d], gold [a, c, e]: LCS 2, P 0.5, R 2/3
    assert scoring.rouge_l("A b, c d", "a c e") == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    assert scoring.rouge_l("", "x") == 0.0 and scoring.rouge_l("", "") == 1.0
    # characters, raw strings: "abcd" vs "acd": LCS 3, P 3/4, R 1
    assert scoring.rouge_l_chars("abcd", "acd") == pytest.approx(2 * 0.75 / 1.75)
    assert scoring.rouge_l_chars("Cat", "cat") < 1.0  # no normalization
    assert scoring.lcs_length("ABCBDAB", "BDCABA") == 4


def test_last_label_and_ni_normalization() -> None:
    assert scoring.last_label("neutral? no, it entails", ["entails", "neutral"]) == "entails"
    assert scoring.last_label("nothing here", ["entails"]) is None
    assert scoring.normalize_ni("The  Cat!") == "the cat"  # articles kept, unlike SQuAD


def _write_task(folder: Path, **over: object) -> Path:
    d = {
        "task_name": "task9",
        "family": "classification",
        "instruction": "Label it.",
        "demonstrations": [{"input": "x", "output": "yes"}],
        "labels": ["yes", "no"],
        "metric": "exact_match",
    }
    d.update(over)
    (folder / "natural_instructions" / "task9").mkdir(parents=True, exist_ok=True)
    (folder / "natural_instructions" / "task9" / "task.json").write_text(json.dumps(d))
    return folder


def test_task_without_demonstrations_or_labels_is_bad_input(tmp_path: Path) -> None:
    _write_task(tmp_path, demonstrations=[])
    with pytest.raises(st.SelfGuideTaskError, match="no demonstrations"):
        st.load_task("task9", tmp_path)
    _write_task(tmp_path, labels=[])
    with pytest.raises(st.SelfGuideTaskError, match="without labels"):
        st.load_task("task9", tmp_path)
    _write_task(tmp_path, labels=[], family="generation")
    assert st.load_task("task9", tmp_path).family == "generation"
    with pytest.raises(st.SelfGuideTaskError, match="did you mean 'task9'"):
        st.load_task("task8", tmp_path)
    with pytest.raises(st.SelfGuideTaskError, match="no natural_instructions"):
        st.load_task("task9", tmp_path / "nowhere")


def test_shared_pack_tasks_load(shared_data: Path) -> None:
    names = st.list_tasks(shared_data)
    assert len(names) == 21 and "task1345" in names and "task284" not in names
    for name in names:
        task = st.load_task(name, shared_data)
        assert task.demonstrations and (task.labels or task.family == "generation")
        rows = task.rows("test", limit=3)
        assert len(rows) == 3 and rows[0]["id"].startswith(name)
    t = st.load_task("task1529_scitail1.1_classification", shared_data)
    assert t.labels == ("entails", "neutral") and t.splits() == ["test"]
    with pytest.raises(st.SelfGuideTaskError, match="no validation rows"):
        t.rows("validation")


def test_clean_strips_one_leading_marker_only() -> None:
    assert sf.clean("  Output: entails ") == "entails"
    assert sf.clean("New input: Is it?") == "Is it?"
    assert sf.clean("answer:yes") == "yes"
    assert sf.clean("Output: Output: x") == "Output: x"  # the second one is noise
    assert sf.vote(["Output: yes", "yes", "Output: Output: no"]).answer == "yes"
    verdicts, _ = sf.filter_inputs(["Input: Where is Rome?"], demo_inputs=DEMOS)
    assert verdicts[0].kept and verdicts[0].text == "Where is Rome?"
