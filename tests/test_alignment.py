"""Template rules on real rows of ../shared/data, hand-checked: exact and fuzzy
matches, windows, abstentions, and the error for a template without a rule."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cookbook_core import discovery
from cookbook_core.align import alignment as al


def row(shared: Path, dataset: str, rid: str) -> dict:
    with open(shared / dataset / "public_500.jsonl") as fh:
        for line in fh:
            r = json.loads(line)
            if r["id"] == rid:
                return r
    raise AssertionError(f"{rid} not in {dataset}")


def test_rule_defaults_match_the_templates() -> None:
    for name, rule in al.RULES.items():
        params = discovery.get(name).params
        for key, value in rule.defaults.items():
            if key in params:
                assert params[key].default == value, (name, key)


def test_stem_catches_simple_variants() -> None:
    assert al.stem("driving") == al.stem("drive")
    assert al.stem("cities") == al.stem("city")
    assert al.stem("Roger's") == al.stem("Roger")
    assert al.stem("played") == al.stem("plays")


def test_document_qa_exact_match_window_holds_gold(shared_data: Path) -> None:
    r = row(shared_data, "squad_v1_1_dev", "56beae423aeaaa14008c91f4")  # Cam Newton sacked
    (v,) = al.apply_rule("document_qa", [r])
    assert [(m["text"], m["kind"]) for m in v.evidence["matches"]] == [
        ("Newton", "exact"),
        ("sacked", "exact"),
    ]
    assert v.evidence["window_after"]["text"] == "him seven times"
    assert v.gold_aligned and not v.abstained
    ctx = r["context"]
    for m in v.evidence["matches"]:
        assert ctx[m["start"] : m["end"]] == m["text"]
    assert al.follows("document_qa", "extractive_qa", v, "seven")
    assert al.follows("document_qa", "extractive_qa", v, "seven times")
    assert not al.follows("document_qa", "extractive_qa", v, "three")


def test_document_qa_fuzzy_match(shared_data: Path) -> None:
    r = row(shared_data, "squad_v1_1_dev", "56df9e2838dc4217001520f8")  # Tesla's ethnicity
    (v,) = al.apply_rule("document_qa", [r])
    kinds = {m["text"]: m["kind"] for m in v.evidence["matches"]}
    assert kinds["Nikola"] == "exact" and kinds["Tesla"] == "fuzzy"  # question says "Tesla's"
    assert v.evidence["window_after"]["text"].startswith("Serbian")
    assert v.gold_aligned


def test_document_qa_window_misses_gold(shared_data: Path) -> None:
    r = row(shared_data, "squad_v1_1_dev", "56bf10f43aeaaa14008c9501")  # Super Bowl 50 date
    (v,) = al.apply_rule("document_qa", [r])
    assert v.evidence["window_after"]["text"] == "was an American"
    assert v.prediction == "was an American"
    assert not v.gold_aligned
    wide = al.apply_rule("document_qa", [r], {"k": 60})[0]
    assert wide.evidence["k"] == 60


def test_multiple_choice_overlap(shared_data: Path) -> None:
    r = row(shared_data, "arc_easy_test", "arc_easy_test-0037")
    (v,) = al.apply_rule("multiple_choice_qa", [r])
    assert [c["score"] for c in v.evidence["choices"]] == [2, 2, 4, 2]
    assert v.prediction == 2 == r["answer_index"] and v.gold_aligned
    assert al.follows("multiple_choice_qa", "multiple_choice", v, 2)
    assert not al.follows("multiple_choice_qa", "multiple_choice", v, 0)


def test_multiple_choice_tie_abstains(shared_data: Path) -> None:
    r = row(shared_data, "arc_easy_test", "arc_easy_test-0002")  # meiosis: no choice shares words
    (v,) = al.apply_rule("multiple_choice_qa", [r])
    assert v.abstained and v.prediction is None and not v.gold_aligned


def test_entity_matching_jaccard(shared_data: Path) -> None:
    r = row(shared_data, "em_abt_buy", "em_abt_buy-test-00005")
    (v,) = al.apply_rule("entity_matching", [r])
    assert v.prediction == "no" == r["answer"] and v.gold_aligned
    assert 0.05 < v.evidence["jaccard"] < 0.1
    assert "sony" in v.evidence["shared"]
    assert al.follows("entity_matching", "entity_matching", v, "No.")
    assert not al.follows("entity_matching", "entity_matching", v, "yes")


def test_yes_no_with_fuzzy_overlap(shared_data: Path) -> None:
    r = row(shared_data, "boolq_dev", "boolq-validation-0008")  # can u drive in canada ...
    (v,) = al.apply_rule("yes_no_qa", [r])
    assert v.evidence["found"] == ["canada", "driv"]  # "driving" matches "drive"
    assert v.evidence["share"] == pytest.approx(0.4)
    assert v.prediction == "no" and r["answer"] == "yes" and not v.gold_aligned


def test_cloze_rules(shared_data: Path) -> None:
    r = row(shared_data, "lambada_openai_test", "lambada-test-0016")  # "... he is a" -> robot
    (v,) = al.apply_rule("fill_in_the_blank", [r])
    assert v.evidence["ngram"] == "is a" and v.prediction == "robot" and v.gold_aligned
    r2 = row(shared_data, "lambada_openai_test", "lambada-test-0006")  # "... next to the" -> Queen
    (w,) = al.apply_rule("last_word", [r2])
    assert w.prediction == "carriage" and r2["answer"] == "Queen" and not w.gold_aligned


def test_template_without_rule_lists_alternatives(shared_data: Path) -> None:
    r = row(shared_data, "boolq_dev", "boolq-validation-0008")
    with pytest.raises(al.AlignmentError, match="templates that apply: yes_no_qa"):
        al.apply_rule("document_qa", [r])
    with pytest.raises(al.AlignmentError, match="rhyming_poetry"):
        al.rule("rhyming_poetry", "extractive_qa")


def test_gold_summary_on_a_real_slice(shared_data: Path) -> None:
    with open(shared_data / "em_dblp_acm" / "public_500.jsonl") as fh:
        rows = [json.loads(line) for _, line in zip(range(100), fh, strict=False)]
    summary = al.gold_summary(al.apply_rule("entity_matching", rows))
    assert summary["examples"] == 100
    assert summary["gold_alignment"] > 0.8  # citation records that match share most tokens
    frame = al.verdicts_frame(al.apply_rule("entity_matching", rows))
    assert {"prediction", "gold", "gold_aligned", "evidence"} <= set(frame.columns)


def test_yes_no_rule_reads_pubmedqa_and_never_says_maybe(shared_data: Path) -> None:
    """PubMedQA rows (yes/no/maybe) are read by yes_no_qa's rule: a "maybe" gold answer is
    never aligned, and the task is listed among the rule's tasks."""
    from cookbook_core.align import runs

    with open(shared_data / "pubmedqa_labeled" / "public_500.jsonl") as fh:
        rows = [json.loads(line) for _, line in zip(range(200), fh, strict=False)]
    verdicts = al.apply_rule("yes_no_qa", rows)
    assert {v.prediction for v in verdicts} <= {"yes", "no"}
    maybe = [v for v in verdicts if v.gold == "maybe"]
    assert maybe and not any(v.gold_aligned for v in maybe)
    assert all(v.gold_aligned == (v.prediction == v.gold) for v in verdicts)
    assert "pubmedqa" in runs.tasks_for_template("yes_no_qa")
    assert "pubmedqa" not in runs.tasks_for_template("entity_matching")
    assert "yes_no_qa" in al.rules_for_family("yes_no_maybe")
