"""Template data artifacts (issue 17, item 3): versioned JSON beside a template, read by
trusted templates in-process and by untrusted ones only inside the sandbox, recorded in
dataset manifests, and drafted by a model (or added from a file) only after a sandboxed
check with the template's own code and checker.

The model answers here are stored texts put through the pipeline (they test the
pipeline, not a model's quality); the CLI path asks the real embedded model.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest

from cookbook_core import artifacts, discovery, generate, templates
from cookbook_core.cli.main import main
from cookbook_core.drafting import artifact as drafting
from cookbook_core.drafting.asking import Answer
from cookbook_core.generate import GenerateConfig, Source
from cookbook_core.sandbox import runner

RHYMER = '''"""Answer with a word that rhymes, from the template's rhyme table."""
import random
from collections.abc import Mapping, Sequence
from typing import Annotated, Any

from cookbook_core.template_helpers import artifact
from cookbook_core.templates import Example, Range, template


@template(
    name="rhymer",
    family="selection",
    task="poetry",
    artifacts={"rhymes": "a JSON list of rhyme groups, each a list of 2 or more lowercase words"},
)
def rhymer(
    rng: random.Random,
    vocab: Sequence[str],
    *,
    filler: Annotated[int, Range(1, 4), "Random words before the question."] = 2,
) -> Example:
    """The answer is another word of a random rhyme group."""
    group = rng.choice(artifact("rhymes"))
    word, answer = rng.sample(group, 2)
    lead = " ".join(rng.choice(vocab) for _ in range(filler))
    return Example(
        f"{lead}. A word that rhymes with {word}:",
        answer,
        {"parent": {"word": word}, "child": {"filler": filler}},
    )


@rhymer.checker
def _check(inputs: Mapping[str, Any], answer: str, params: Mapping[str, Any]) -> bool:
    said, word = answer.strip().lower(), inputs["word"]
    return said != word and any(word in g and said in g for g in artifact("rhymes"))
'''

GROUPS = [["cat", "hat", "bat"], ["moon", "tune", "spoon"], ["light", "night", "kite"]]
# a table whose groups have one word each: the template cannot draw two (it fails)
TOO_SMALL = [["cat"], ["moon"]]


@pytest.fixture
def rhymer_file(user_templates: Path) -> Path:
    path = user_templates / "rhymer.py"
    path.write_text(RHYMER)
    return path


def test_versions_are_kept_and_the_latest_is_used(tmp_path: Path) -> None:
    tpl = tmp_path / "t.py"
    tpl.write_text("")
    with pytest.raises(artifacts.MissingArtifact, match="cookbook templates artifact draft x"):
        artifacts.latest(tpl, "rhymes", "x")
    one = artifacts.save(tpl, "rhymes", json.dumps(GROUPS), {"made_by": "test"})
    two = artifacts.save(tpl, "rhymes", json.dumps(GROUPS[:2]))
    assert (one.version, two.version) == (1, 2)
    assert artifacts.versions(tpl, "rhymes") == [1, 2]
    assert one.path.read_text() == json.dumps(GROUPS)  # never overwritten
    assert artifacts.latest(tpl, "rhymes") == two
    assert two.sha256 == hashlib.sha256(json.dumps(GROUPS[:2]).encode()).hexdigest()
    assert artifacts.load(tpl, "rhymes") == GROUPS[:2]
    assert artifacts.provenance(one) == {"made_by": "test"} and artifacts.provenance(two) is None
    assert artifacts.manifest_entry(tpl, ("rhymes",))["rhymes"]["version"] == 2
    for bad in ("../etc", "Rhymes", "x" * 49, ""):
        with pytest.raises(templates.TemplateError, match="lowercase identifier"):
            artifacts.save(tpl, bad, "[]")
    with pytest.raises(templates.TemplateError, match="the limit is"):
        artifacts.save(tpl, "big", " " * (artifacts.MAX_BYTES + 1))
    link = artifacts.folder(tpl) / "stolen.v1.json"
    os.symlink("/etc/passwd", link)
    with pytest.raises(templates.TemplateError, match="symbolic link"):
        artifacts.latest_texts(tpl, ("stolen",))


def test_declarations_are_checked() -> None:
    def fn(rng: Any, vocab: Any) -> templates.Example:
        return templates.Example("p", "c", {"parent": {}, "child": {}})

    with pytest.raises(templates.TemplateError, match="lowercase identifier"):
        templates.template(name="a", family="search", task="t", artifacts={"../x": "d"})(fn)
    with pytest.raises(templates.TemplateError, match="needs a description"):
        templates.template(name="a", family="search", task="t", artifacts={"x": " "})(fn)
    tpl = templates.template(name="a", family="search", task="t")(fn)
    with pytest.raises(templates.TemplateError, match="does not declare it"):
        tpl.artifact("rhymes")
    with pytest.raises(templates.TemplateError, match="not at module level"):
        templates.active_artifact("rhymes")


def test_trusted_template_reads_its_latest_version_in_process(
    rhymer_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COOKBOOK_TRUSTED_TEMPLATES", str(rhymer_file.parent))
    assert discovery.find("rhymer").artifacts == ("rhymes",)
    tpl = discovery.get("rhymer")
    with pytest.raises(artifacts.MissingArtifact, match="holds no version"):
        tpl.sample(["w"], 0, 0)
    artifacts.save(rhymer_file, "rhymes", json.dumps(GROUPS))
    samples = tpl.preview(["w"], 30, seed=1)
    words = {w for g in GROUPS for w in g}
    assert {s.completion for s in samples} <= words
    assert all(tpl.check(s, s.completion) for s in samples)
    assert not tpl.check(samples[0], samples[0].meta["parent"]["word"])  # the given word


def test_untrusted_template_gets_its_artifact_only_in_the_sandbox(rhymer_file: Path) -> None:
    with pytest.raises(artifacts.MissingArtifact, match="artifact draft rhymer rhymes"):
        runner.preview_file(rhymer_file, n=4)
    artifacts.save(rhymer_file, "rhymes", json.dumps(GROUPS))
    res = runner.preview_file(rhymer_file, n=12)
    assert res.ok, res.error
    assert res.templates[0]["artifacts"] == {
        "rhymes": "a JSON list of rhyme groups, each a list of 2 or more lowercase words"
    }
    assert all(s["follows_rule"] is True for s in res.samples)
    assert (rhymer_file.resolve()) not in discovery._loaded, "imported in-process"
    # bad JSON is found by the child, inside the boundary; the parent never parses it
    bad = runner.run_source(RHYMER, n=2, artifacts={"rhymes": '[["cat", '})
    assert not bad.ok and "artifact 'rhymes' is not valid JSON" in bad.error
    missing = runner.run_source(RHYMER, n=2, artifacts={})
    assert not missing.ok and "was not supplied to this run" in missing.error


def test_generation_pins_the_version_and_records_it(
    rhymer_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sandboxed (2 workers) and trusted runs of the same file and artifact write the
    same bytes; the manifest names the version and hash; a new version changes both."""
    one = artifacts.save(rhymer_file, "rhymes", json.dumps(GROUPS))
    cfg = dict(n=300, block_size=128)
    boxed = generate.generate(GenerateConfig([Source("rhymer")], workers=2, **cfg), tmp_path / "u")
    assert boxed["templates"][0]["sandboxed"] is True
    assert boxed["templates"][0]["artifacts"] == {"rhymes": one.manifest()}
    monkeypatch.setenv("COOKBOOK_TRUSTED_TEMPLATES", str(rhymer_file.parent))
    local = generate.generate(GenerateConfig([Source("rhymer")], workers=1, **cfg), tmp_path / "t")
    assert local["templates"][0]["artifacts"] == {"rhymes": one.manifest()}
    data = (tmp_path / "t" / "data.jsonl").read_bytes()
    assert (tmp_path / "u" / "data.jsonl").read_bytes() == data
    two = artifacts.save(rhymer_file, "rhymes", json.dumps([["red", "bed", "said"]]))
    again = generate.generate(GenerateConfig([Source("rhymer")], workers=1, **cfg), tmp_path / "2")
    assert again["templates"][0]["artifacts"]["rhymes"]["sha256"] == two.sha256 != one.sha256
    rows = [json.loads(line) for line in (tmp_path / "2" / "data.jsonl").read_text().splitlines()]
    assert {r["completion"] for r in rows} <= {"red", "bed", "said"}


class StoredAsker:
    """Hands out stored answers in order and records the prompts (no model)."""

    def __init__(self, answers: list[str]) -> None:
        self.answers = list(answers)
        self.prompts: list[str] = []

    def ask(self, prompts: list[str], k: int, seed: int) -> list[list[Answer]]:
        self.prompts += prompts
        return [[Answer(self.answers.pop(0), "stop")]]


def test_draft_repairs_then_saves_only_what_passed_in_the_sandbox(rhymer_file: Path) -> None:
    t = drafting.target("rhymer", "rhymes")
    assert "2 or more lowercase words" in t.description and not t.trusted
    answers = [
        "Sure! Here is some data for you.",  # no JSON at all
        f"```json\n{json.dumps(TOO_SMALL)}\n```",  # the template fails on it in the sandbox
        "Here you go:\n```json\n" + json.dumps(GROUPS) + "\n```\nEnjoy!",
    ]
    asker = StoredAsker(answers)
    done = drafting.draft(t, asker, rounds=2, n_samples=8, answered_by={"backend": "stored"})
    stages = [(a.stage, a.reason[:40]) for a in done.attempts]
    assert [s for s, _ in stages] == ["extract", "sandbox", "passed"], stages
    assert "Sample larger than population" in done.attempts[1].reason
    assert "It failed (extract): no JSON in the answer" in asker.prompts[1]  # repair prompt
    assert done.saved is not None and done.saved.version == 1
    assert json.loads(done.saved.path.read_text()) == GROUPS
    prov = artifacts.provenance(done.saved)
    assert prov["model"] == {"backend": "stored"} and prov["round"] == 2
    assert prov["prompt_sha256"] == hashlib.sha256(asker.prompts[2].encode()).hexdigest()
    assert prov["checked"] == {"samples": 8, "checker_accepts_all": True}
    # the next draft sees the current version as the shape to follow
    assert '["cat", "hat", "bat"]' in drafting.prompt(t)


def test_nothing_saved_when_every_round_fails(rhymer_file: Path) -> None:
    t = drafting.target("rhymer", "rhymes")
    done = drafting.draft(t, StoredAsker(["[[1, 2], [3, 4]]"]), rounds=0, n_samples=4)
    assert done.saved is None and artifacts.versions(rhymer_file, "rhymes") == []
    assert done.attempts[0].stage in ("sandbox", "checker"), done.attempts[0]


def test_extract_json_prefers_the_json_fence() -> None:
    text = 'Intro\n```python\nx = 1\n```\n```json\n[["a", "b"]]\n```\n'
    assert drafting.extract_json(text) == '[["a", "b"]]'
    assert drafting.extract_json('The list is [["a", "b"]] as asked.') == '[["a", "b"]]'
    assert drafting.extract_json("no data here") is None


def test_cli_list_add_and_bad_input(
    rhymer_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text(json.dumps(GROUPS))
    bad.write_text(json.dumps(TOO_SMALL))
    assert main(["templates", "artifact", "add", "rhymer", "rhymes", str(bad)]) == 1
    assert "not saved: failed at sandbox" in capsys.readouterr().out
    assert main(["templates", "artifact", "add", "rhymer", "rhymes", str(good)]) == 0
    assert "version 1" in capsys.readouterr().out
    assert main(["templates", "artifact", "list", "rhymer"]) == 0
    out = capsys.readouterr().out
    assert "rhymes: 1 version(s)" in out and "made by file" in out
    assert main(["templates", "artifact", "add", "rhymer", "words", str(good)]) == 2
    assert "declares no artifact 'words' (declared: rhymes)" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_draft_with_the_embedded_model_finishes_with_reasons(
    rhymer_file: Path, eval_backend: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """The real embedded model (in-process, short answers): whatever it writes, the run
    ends with one line per round and saves only an answer that passed in the sandbox."""
    argv = ["templates", "artifact", "draft", "rhymer", "rhymes", "--backend", "transformers"]
    code = main([*argv, "--rounds", "1", "--max-new-tokens", "96", "--samples", "4"])
    out = capsys.readouterr().out
    rounds = [line for line in out.splitlines() if line.startswith("round ")]
    assert code in (0, 1) and 1 <= len(rounds) <= 2, out
    saved = artifacts.versions(rhymer_file, "rhymes")
    assert (code == 0) == bool(saved) == ("saved" in out and "nothing saved" not in out)


# ----------------------------------------------------------------------------------
# The template drafting loop: a candidate that declares an artifact


def _labelled_candidate() -> str:
    """The stored valid SQuAD draft, changed to read its question label from an artifact."""
    text = (Path(__file__).parent / "drafting_fixtures" / "valid_fenced.md").read_text()
    old_deco = '@template(name="squad_draft", family="search", task=("squad",))'
    new_deco = (
        '@template(name="squad_labels", family="search", task=("squad",), '
        'artifacts={"labels": "a JSON list of words that can label a question"})'
    )
    old_prompt = "\\n\\nQuestion: {' '.join(question)}"
    new_prompt = "\\n\\n{rng.choice(artifact('labels'))}: {' '.join(question)}"
    assert old_deco in text and old_prompt in text
    text = text.replace(old_deco, new_deco).replace(old_prompt, new_prompt)
    text = text.replace("def squad_draft(", "def squad_labels(").replace(
        "@squad_draft.checker", "@squad_labels.checker"
    )
    return text.replace("import draw\n", "import artifact, draw\n")


@pytest.fixture(scope="module")
def drafting_session(shared_data: Path) -> Any:
    from cookbook_core.drafting import checks, loop
    from cookbook_core.sandbox.runner import Limits

    fast = checks.Settings(n_samples=8, limits=Limits(cpu_seconds=2, wall_seconds=6))
    cfg = loop.DraftConfig(task="squad", data_dir=str(shared_data), align_rows=40, settings=fast)
    return loop.Drafting.prepare(cfg)


def test_loop_drafts_a_declared_artifact_once_and_saves_it_beside_the_template(
    drafting_session: Any, tmp_path: Path
) -> None:
    from cookbook_core.drafting import saving

    d = drafting_session
    text = _labelled_candidate()
    from cookbook_core.drafting.extract import extract_code

    assert discovery.declared_artifacts(extract_code(text) or "") == {
        "labels": "a JSON list of words that can label a question"
    }
    # a stored answer with no model to ask: the template cannot run without its data
    alone = d.evaluate(text)
    assert alone.outcome.stage == "preview" and "was not supplied" in alone.outcome.reason
    # the model answers the artifact request with no JSON: that is the reason given
    d._asker = StoredAsker(["I cannot write that."])
    nojson = d.evaluate(text)
    assert nojson.outcome.stage == "preview"
    assert nojson.outcome.reason.startswith("artifact 'labels': the model's answer held no JSON")
    # the model answers with JSON: asked once, checked in the sandbox with the template
    asker = StoredAsker(['```json\n["Question", "Query", "Ask"]\n```'])
    d._asker = asker
    good = d.evaluate(text)
    d._asker = None
    assert good.passed, (good.outcome.stage, good.outcome.reason)
    assert len(asker.prompts) == 1 and 'Write the data file "labels"' in asker.prompts[0]
    assert good.artifacts == {"labels": '["Question", "Query", "Ask"]'}
    prompts_seen = {s["prompt"].split("\n\n")[1].split(":")[0] for s in good.outcome.samples}
    assert prompts_seen <= {"Question", "Query", "Ask"}
    path = saving.save_candidate(d, good, tmp_path / "user")
    ref = artifacts.latest(path, "labels")
    assert ref.version == 1 and json.loads(ref.path.read_text()) == ["Question", "Query", "Ask"]
    assert artifacts.provenance(ref)["drafted_with"] == f"candidate {good.id}"
    assert runner.preview_file(path, n=2).ok  # the saved pair runs, sandboxed
