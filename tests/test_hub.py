"""The Hugging Face hub loaders (``cookbook_core.eval.hub``) on small in-memory
``datasets.Dataset``s shaped like each official dataset's records: no download.

Every converter is run on hand-made records with hand-checked expectations; for the sets
whose rows in ``../shared/data`` keep enough of the original record, hub-shaped records
rebuilt from those rows must give the same prompts and gold answers as the rows
themselves; ``load_hub`` is driven with ``datasets.load_dataset`` replaced.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import datasets
import pytest

from cookbook_core.eval import hub, tasks

DOC = (
    "Architecturally, the school has a Catholic character. Atop the Main Building's gold "
    "dome is a golden statue of the Virgin Mary."
)
PUBMED = {
    "pubid": 21645374,
    "question": "Do mitochondria play a role in remodelling lace plant leaves?",
    "context": {
        "contexts": ["Programmed cell death is regulated.", "Mitochondria were imaged."],
        "labels": ["BACKGROUND", "RESULTS"],
        "meshes": ["Alismataceae"],
    },
    "long_answer": "Mitochondria play a role.",
    "final_decision": "yes",
}

# One or more records per hub source, in the official dataset's shape.
RECORDS: dict[str, list[dict[str, Any]]] = {
    "squad": [
        {
            "id": "5733be284776f41900661182",
            "title": "University_of_Notre_Dame",
            "context": DOC,
            "question": "What sits on top of the Main Building?",
            "answers": {
                "text": ["a golden statue of the Virgin Mary", "golden statue"],
                "answer_start": [79, 81],
            },
        }
    ],
    "xquad_en": [
        {
            "id": "56beb4343aeaaa14008c925b",
            "context": "The Panthers defense gave up just 308 points.",
            "question": "How many points did the Panthers defense surrender?",
            "answers": {"text": ["308"], "answer_start": [34]},
        }
    ],
    "tydiqa_goldp_en": [
        {
            "id": "arabic-2387335860751143628-1",
            "title": "قطر",
            "context": "قطر دولة عربية",
            "question": "ما هي قطر؟",
            "answers": {"text": ["دولة عربية"], "answer_start": [4]},
        },
        {
            "id": "english-3215621880858840488-2",
            "title": "Wound healing",
            "context": "Wound care encourages and speeds wound healing.",
            "question": "What is a way to increase your wound healing speed?",
            "answers": {"text": ["Wound care"], "answer_start": [0]},
        },
    ],
    "arc_easy": [
        {
            "id": "Mercury_7175875",
            "question": "An astronomer observes that a planet rotates faster. What causes this?",
            "choices": {
                "text": ["density", "gravity", "a meteorite impact", "orbit"],
                "label": ["A", "B", "C", "D"],
            },
            "answerKey": "C",
        }
    ],
    "arc_challenge": [
        {
            "id": "NYSEDREGENTS_2015_4_8",
            "question": "Which is a renewable resource?",
            "choices": {
                "text": ["coal", "oil", "wind", "natural gas"],
                "label": ["1", "2", "3", "4"],
            },
            "answerKey": "3",
        }
    ],
    "hellaswag": [
        {
            "ind": 24,
            "activity_label": "Making a sandwich",
            "ctx_a": "[header] How to make a sandwich [title] Get bread.",
            "ctx_b": "spread",
            "ctx": "",
            "endings": ["butter on it.", "[step] the dog away.", "it on the roof.", "a rock."],
            "source_id": "wikihow~1",
            "split": "val",
            "split_type": "indomain",
            "label": "0",
        }
    ],
    "piqa": [
        {
            "goal": "Neatly wrap up an extension cord.",
            "sol1": "Wrap the cord around your hand and elbow.",
            "sol2": "Wrap the cord around your hand and knee.",
            "label": 0,
        }
    ],
    "openbookqa": [
        {
            "id": "7-980",
            "question_stem": "The sun is responsible for",
            "choices": {
                "text": ["puppies learning", "plants sprouting", "fish swimming", "rocks"],
                "label": ["A", "B", "C", "D"],
            },
            "answerKey": "B",
        }
    ],
    "winogrande": [
        {
            "sentence": "Sarah was a much better surgeon than Maria so _ always got the harder cases.",
            "option1": "Sarah",
            "option2": "Maria",
            "answer": "1",
        }
    ],
    "boolq": [
        {
            "question": "does ethanol take more energy make that produces",
            "passage": "Ethanol fuel: producing ethanol takes energy.",
            "idx": 0,
            "label": 0,
        },
        {"question": "is the sky blue", "passage": "The sky is blue.", "idx": 1, "label": 1},
    ],
    "commonsense_qa": [
        {
            "id": "075e483d21c29a511267ef62bedc0461",
            "question": "The sanctions against the school were a punishing blow. They seemed to what?",
            "question_concept": "punishing",
            "choices": {
                "label": ["A", "B", "C", "D", "E"],
                "text": ["ignore", "enforce", "authoritarian", "yell at", "avoid"],
            },
            "answerKey": "A",
        }
    ],
    "lambada": [{"text": "He walked to the door and opened the door"}],
    "pubmedqa": [PUBMED],
}


def _dataset(records: list[dict[str, Any]]) -> datasets.Dataset:
    return datasets.Dataset.from_list(records)


def test_every_hub_source_is_tested() -> None:
    assert set(RECORDS) == set(hub.HUB_SOURCES)


@pytest.mark.parametrize("name", sorted(RECORDS))
def test_converted_rows_are_valid_task_rows(name: str) -> None:
    """Each converter's rows pass the task's checks and build a prompt and a gold answer."""
    task = tasks.get(name)
    rows = hub.convert(task, _dataset(RECORDS[name]))
    assert rows, name
    for row in rows:
        assert row["dataset"] == task.folder and row["task"] == task.kind
        assert set(task.required) <= set(row)
        if task.method == "loglikelihood":
            doc, pairs = task.loglik_requests(row)
            assert 0 <= doc.gold < len(pairs)
        else:
            assert task.prompt(row).endswith("Answer:") and task.gold_text(row)


def test_extractive_qa_keeps_every_answer_and_only_english_tydiqa() -> None:
    (row,) = hub.convert(tasks.get("squad"), _dataset(RECORDS["squad"]))
    assert row["answers"] == ["a golden statue of the Virgin Mary", "golden statue"]
    assert row["answer"] == "a golden statue of the Virgin Mary"
    assert row["id"] == "5733be284776f41900661182" and row["title"] == "University_of_Notre_Dame"
    (row,) = hub.convert(tasks.get("xquad_en"), _dataset(RECORDS["xquad_en"]))
    assert row["title"] == "" and row["answers"] == ["308"]
    rows = hub.convert(tasks.get("tydiqa_goldp_en"), _dataset(RECORDS["tydiqa_goldp_en"]))
    assert [r["id"] for r in rows] == ["english-3215621880858840488-2"]


def test_multiple_choice_gold_index_from_the_answer_key() -> None:
    (arc,) = hub.convert(tasks.get("arc_easy"), _dataset(RECORDS["arc_easy"]))
    assert arc["answer_index"] == 2 and arc["labels"] == ["A", "B", "C", "D"]
    (numbered,) = hub.convert(tasks.get("arc_challenge"), _dataset(RECORDS["arc_challenge"]))
    assert numbered["answer_index"] == 2 and numbered["choices"][2] == "wind"
    (obqa,) = hub.convert(tasks.get("openbookqa"), _dataset(RECORDS["openbookqa"]))
    assert obqa["question"] == "The sun is responsible for" and obqa["answer_index"] == 1
    (csqa,) = hub.convert(tasks.get("commonsense_qa"), _dataset(RECORDS["commonsense_qa"]))
    _, pairs = tasks.get("commonsense_qa").loglik_requests(csqa)
    assert [c for _, c in pairs] == [" A", " B", " C", " D", " E"] and csqa["answer_index"] == 0
    (piqa,) = hub.convert(tasks.get("piqa"), _dataset(RECORDS["piqa"]))
    assert piqa == {
        "id": "piqa-0",
        "question": "Neatly wrap up an extension cord.",
        "choices": [
            "Wrap the cord around your hand and elbow.",
            "Wrap the cord around your hand and knee.",
        ],
        "answer_index": 0,
        "dataset": "piqa_validation",
        "task": "multiple_choice",
    }


def test_hellaswag_text_is_preprocessed_like_lm_eval() -> None:
    (row,) = hub.convert(tasks.get("hellaswag"), _dataset(RECORDS["hellaswag"]))
    # " [title]" becomes ". ", other [tags] go, double spaces collapse; ctx_b is capitalized
    assert row["question"] == "Making a sandwich: How to make a sandwich. Get bread. Spread"
    # lm-eval strips before removing tags, so a leading tag leaves its space behind
    assert row["choices"] == ["butter on it.", " the dog away.", "it on the roof.", "a rock."]
    assert row["answer_index"] == 0 and row["id"] == "hellaswag-0"


def test_winogrande_boolq_lambada_and_pubmedqa() -> None:
    (wino,) = hub.convert(tasks.get("winogrande"), _dataset(RECORDS["winogrande"]))
    assert wino["context_options"] == [
        "Sarah was a much better surgeon than Maria so Sarah",
        "Sarah was a much better surgeon than Maria so Maria",
    ]
    assert wino["continuation"] == "always got the harder cases." and wino["answer_index"] == 0
    no, yes = hub.convert(tasks.get("boolq"), _dataset(RECORDS["boolq"]))
    assert (no["answer"], no["answer_index"], yes["answer"]) == ("no", 1, "yes")
    doc = tasks.get("boolq").loglik_doc(yes)
    assert doc.choices[doc.gold] == "yes"
    (lam,) = hub.convert(tasks.get("lambada"), _dataset(RECORDS["lambada"]))
    assert (lam["context"], lam["answer"]) == ("He walked to the door and opened the", "door")
    (pub,) = hub.convert(tasks.get("pubmedqa"), _dataset(RECORDS["pubmedqa"]))
    assert pub["id"] == "21645374" and pub["answer"] == "yes"
    assert pub["context"] == "Programmed cell death is regulated.\nMitochondria were imaged."


def test_limit_bad_records_and_tasks_without_a_source() -> None:
    task = tasks.get("boolq")
    assert len(hub.convert(task, _dataset(RECORDS["boolq"]), limit=1)) == 1
    with pytest.raises(tasks.TaskDataError, match="aps/super_glue, row 0: cannot convert"):
        hub.convert(task, _dataset([{"question": "q", "idx": 0, "label": 1}]))  # no passage
    with pytest.raises(tasks.TaskDataError, match="row 0: 'choices' must be a list of 2 or more"):
        one = {"text": ["density"], "label": ["A"]}  # converts, then fails the task's checks
        hub.convert(
            tasks.get("arc_easy"), [{**RECORDS["arc_easy"][0], "choices": one, "answerKey": "A"}]
        )
    arabic = RECORDS["tydiqa_goldp_en"][:1]
    with pytest.raises(tasks.TaskDataError, match="gave no rows for task tydiqa_goldp_en"):
        hub.convert(tasks.get("tydiqa_goldp_en"), _dataset(arabic))
    with pytest.raises(tasks.TaskDataError, match="em_beer has no Hugging Face hub source"):
        hub.convert(tasks.get("em_beer"), [])


def test_load_hub_downloads_through_datasets(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def fake_load(path: str, name: str | None, split: str) -> datasets.Dataset:
        calls.append((path, name, split))
        return _dataset(RECORDS["winogrande"])

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    loaded = tasks.load(tasks.get("winogrande"), "hub", limit=1)
    assert calls == [("allenai/winogrande", "winogrande_xl", "validation")]
    assert loaded.source == "hub:allenai/winogrande" and len(loaded.rows) == 1

    def offline(path: str, name: str | None, split: str) -> datasets.Dataset:
        raise ConnectionError("no network")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(tasks.TaskDataError, match="could not load allenai/winogrande .*no network"):
        hub.load_hub(tasks.get("winogrande"))


# ----------------------------------------------------------------------------------
# Parity with the shared data: hub-shaped records rebuilt from its rows


def _shared_rows(shared_data: Path, folder: str, n: int = 20) -> list[dict[str, Any]]:
    path = next((shared_data / folder).glob("*.jsonl"))
    lines = path.read_text(encoding="utf-8").splitlines()[:n]
    return [json.loads(line) for line in lines]


def _as_hub(name: str, row: dict[str, Any]) -> dict[str, Any]:
    """The official hub record a shared row was made from (the fields it keeps)."""
    if name in ("squad", "xquad_en", "tydiqa_goldp_en"):
        starts = row.get("answer_starts") or [0] * len(row["answers"])
        return {
            "id": row["id"],
            "title": row.get("title", ""),
            "context": row["context"],
            "question": row["question"],
            "answers": {"text": row["answers"], "answer_start": starts},
        }
    if name == "piqa":
        return dict(row["original"])
    if name == "boolq":
        return {
            "question": row["original"]["question"],
            "passage": row["original"]["passage"],
            "idx": 0,
            "label": int(row["original"]["answer"]),
        }
    if name == "winogrande":
        first, second = row["choices"]
        return {
            "sentence": row["question"],
            "option1": first,
            "option2": second,
            "answer": str(row["answer_index"] + 1),
        }
    assert name == "lambada"
    return {"text": f"{row['context']} {row['answer']}"}


@pytest.mark.parametrize(
    "name", ["squad", "xquad_en", "tydiqa_goldp_en", "piqa", "boolq", "winogrande", "lambada"]
)
def test_hub_records_give_the_shared_rows_prompts(shared_data: Path, name: str) -> None:
    task = tasks.get(name)
    shared = [
        tasks.checked_row(task, r, "shared", i)
        for i, r in enumerate(_shared_rows(shared_data, task.folder))
    ]
    converted = hub.convert(task, _dataset([_as_hub(name, r) for r in shared]))
    assert len(converted) == len(shared)
    for want, got in zip(shared, converted, strict=True):
        if task.method == "loglikelihood":
            assert task.loglik_requests(got) == task.loglik_requests(want), want["id"]
        else:
            assert task.prompt(got) == task.prompt(want), want["id"]
            assert task.gold_record(got) == task.gold_record(want), want["id"]
