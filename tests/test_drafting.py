"""Model-drafted templates (issue 17): code extraction, the prompt, the per-candidate
pipeline (static checks, sandboxed preview, the candidate's own checker, its rule on
real rows), the ranked table, repair prompts, provenance and saving.

The acceptance path uses candidate answers stored as files in
``tests/drafting_fixtures/`` (one valid template in a markdown fence with chatter
around it, one with a forbidden import, one whose checker disagrees with its
generator, one that loops forever, one with zero alignment on SQuAD).  **These
fixtures test the pipeline, not a model's quality**: they are texts a model could
have written, each built to fail (or pass) one stage, and the tests check that each
lands in the right row with the right reason and that only the valid one can be
saved.  One slow test runs the whole loop on the real embedded model.
"""

from __future__ import annotations

import ast
import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from cookbook_core import discovery, templates
from cookbook_core.cli.main import main
from cookbook_core.drafting import asking, checks, contracts, extract, loop, prompts, saving
from cookbook_core.errors import BadInput
from cookbook_core.sandbox import runner as sandbox
from cookbook_core.sandbox.runner import Limits

FIXTURES = Path(__file__).parent / "drafting_fixtures"
FAST = checks.Settings(n_samples=8, seed=0, limits=Limits(cpu_seconds=2, wall_seconds=6))

# fixture file -> (stage it must stop at, text its reason must hold)
EXPECTED = {
    "valid_fenced.md": ("passed", ""),
    "forbidden_import.md": ("static", "forbidden import at line 3, column 1: import of 'os'"),
    "checker_disagrees.md": ("checker", "checker disagrees with its generator"),
    "loops_forever.md": ("preview", "timeout while generating samples"),
    "zero_alignment.md": ("alignment", "zero alignment: the rule gives the real answer on 0 of"),
}


def fixture_text(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def drafted(shared_data: Path) -> tuple[loop.Drafting, dict[str, loop.Candidate]]:
    """A SQuAD drafting session with the five stored answers put through the pipeline."""
    cfg = loop.DraftConfig(
        task="squad", data_dir=str(shared_data), examples=2, align_rows=60, settings=FAST
    )
    d = loop.Drafting.prepare(cfg)
    return d, {name: d.evaluate(fixture_text(name)) for name in EXPECTED}


# ----------------------------------------------------------------------------------
# Extracting code


def test_extract_code_from_fence_with_chatter() -> None:
    code = extract.extract_code(fixture_text("valid_fenced.md"))
    assert code is not None
    assert code.startswith('"""Template ``squad_draft``')
    assert "Sure!" not in code and "Let me know" not in code and "```" not in code
    ast.parse(code)


def test_extract_code_prefers_the_template_block_and_handles_cut_offs() -> None:
    two = "Usage:\n```bash\ncookbook preview\n```\nCode:\n```\n@template(x)\ndef f(): pass\n```\n"
    assert extract.extract_code(two) == "@template(x)\ndef f(): pass\n"
    cut = "Here it is:\n```python\nimport random\n\n@template(name='a'"
    assert extract.extract_code(cut) == "import random\n\n@template(name='a'\n"
    bare = "The file follows.\nfrom cookbook_core.templates import template\nx = 1\n"
    assert extract.extract_code(bare) == "from cookbook_core.templates import template\nx = 1\n"
    assert extract.extract_code("I cannot help with that.") is None
    assert extract.extract_code("") is None


# ----------------------------------------------------------------------------------
# The prompt


def test_prompt_holds_description_api_contract_examples_and_rows(shared_data: Path) -> None:
    rows = contracts.load_rows("squad", shared_data, examples=2, align_rows=5)
    examples = prompts.worked_examples(rows, 2)
    text = prompts.build_prompt(rows, contracts.describe_task(rows.task), examples)
    assert "Extractive question answering" in text
    assert "@template(" in text and ".checker" in text and "Annotated" in text
    assert "- find_spans(" in text and "- answer_tokens(" in text  # helpers, from the module
    assert "- document: str" in text and "- question: str" in text  # the row contract
    assert len(examples) == 2 and all(f"### {e.name} " in text for e in examples)
    assert "def document_qa(" not in text  # the task's own template is not shown by default
    assert rows.shown[0]["question"].strip() in text
    assert 'name="squad_draft"' in text and "```python" in text
    own = prompts.worked_examples(rows, 1, include_own=True)
    assert [e.name for e in own] == ["document_qa"]
    # the rows a draft is measured on are not the rows it was shown
    shown_ids = {r["id"] for r in rows.shown}
    assert len(rows.measured) == 5 and not shown_ids & {r.id for r in rows.measured}
    assert prompts.prompt_hash(text) == prompts.prompt_hash(text) != prompts.prompt_hash(text + " ")


def test_description_from_text_or_file(tmp_path: Path) -> None:
    from cookbook_core.eval import tasks

    task = tasks.get("boolq")
    assert contracts.read_description(None, task).startswith("Yes/no questions")
    assert contracts.read_description("Answer yes or no.", task) == "Answer yes or no."
    f = tmp_path / "desc.txt"
    f.write_text("From a file.\n")
    assert contracts.read_description(str(f), task) == "From a file."


def test_repair_prompt_carries_the_attempt_and_its_error() -> None:
    text = prompts.repair_prompt("BASE PROMPT\n", "import os\n", "forbidden import at line 1")
    assert text.startswith("BASE PROMPT")
    assert "```python\nimport os\n```" in text
    assert "It was rejected: forbidden import at line 1" in text


def test_unsupported_task_is_bad_input(shared_data: Path) -> None:
    with pytest.raises(contracts.UnsupportedTask, match="winogrande"):
        contracts.load_rows("winogrande", shared_data)


# ----------------------------------------------------------------------------------
# The pipeline on stored answers


@pytest.mark.parametrize("name", list(EXPECTED))
def test_each_stored_answer_lands_in_its_row(drafted: Any, name: str) -> None:
    _, got = drafted
    stage, reason = EXPECTED[name]
    c = got[name]
    assert c.outcome.stage == stage, c.outcome.reason
    assert reason in (c.outcome.reason or "")
    assert c.passed == (stage == "passed")


def test_valid_candidate_scores(drafted: Any) -> None:
    d, got = drafted
    s = got["valid_fenced.md"].outcome.scores
    assert s["self_accept"] == 1.0 and s["corrupt_reject"] >= FAST.min_reject
    assert s["rows"] == len(d.rows.measured)
    assert 0 < s["alignment"] <= 1 and s["wrong_accept"] < s["alignment"]
    # the zero-alignment answer passed its own checker first: the failure is the real rows
    z = got["zero_alignment.md"].outcome
    assert z.passed_stages == ["extract", "static", "preview", "checker"]
    assert z.scores["alignment"] == 0.0


def test_ranked_table_and_funnel(drafted: Any) -> None:
    d, got = drafted
    table = d.table()
    assert [r["rank"] for r in table] == [1, 2, 3, 4, 5]
    assert [r["stage"] for r in table] == ["passed", "alignment", "checker", "preview", "static"]
    assert table[0]["id"] == got["valid_fenced.md"].id and table[0]["passed"]
    assert all(r["reason"] for r in table[1:])
    f = d.funnel()
    assert (f["candidates"], f["extract"], f["static"], f["preview"]) == (5, 5, 4, 3)
    assert (f["checker"], f["alignment"], f["first_round_passed"]) == (2, 1, 1)
    assert d.best() is got["valid_fenced.md"]


def test_shipped_template_measured_on_the_same_rows(drafted: Any) -> None:
    d, got = drafted
    base = d.baseline()
    assert base is not None and base["template"] == "document_qa"
    assert base["rows"] == len(d.rows.measured)
    # document_qa's code rule needs the question as an exact span: never on real SQuAD
    assert base["alignment"] == 0.0
    assert got["valid_fenced.md"].outcome.scores["alignment"] > base["alignment"]


def test_checker_that_accepts_everything_fails(drafted: Any) -> None:
    d, _ = drafted
    code = extract.extract_code(fixture_text("valid_fenced.md"))
    assert code is not None
    lax = code.replace("    return all(w in window for w in got)", "    return True")
    assert lax != code
    out = checks.check_source(lax, d.rows.measured, FAST)
    assert out.stage == "checker" and "accepts corrupted answers" in (out.reason or "")


def test_corrupted_answers_differ_from_the_own_answer() -> None:
    labels = [{"completion": c} for c in ("yes", "No", "B", "A")]
    assert checks.corrupted(labels) == ["no", "Yes", "A", "B"]
    spans = [{"completion": c} for c in ("a b c", "d e f", "g h")]
    assert checks.corrupted(spans) == ["d e f", "g h", "a b c"]
    assert checks.corrupted([{"completion": "same"}, {"completion": "same"}]) == ["", ""]


# ----------------------------------------------------------------------------------
# Saving


def test_only_the_valid_candidate_can_be_saved(drafted: Any, tmp_path: Path) -> None:
    d, got = drafted
    folder = tmp_path / "user"
    for name, c in got.items():
        if name == "valid_fenced.md":
            continue
        with pytest.raises(saving.NotSaveable, match=f"candidate {c.id} failed at stage"):
            saving.save_candidate(d, c, folder)
    assert not folder.exists() or not list(folder.glob("*.py"))

    when = dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    path = saving.save_candidate(d, got["valid_fenced.md"], folder, now=when)
    assert path == (folder / "squad_draft.py").resolve()
    text = path.read_text(encoding="utf-8")
    doc = ast.get_docstring(ast.parse(text)) or ""
    assert doc.startswith("Template ``squad_draft``")  # the draft's own docstring is kept
    assert f"sha256 {d.prompt_hash}" in doc
    assert "date: 2025-01-02 03:04:05 UTC" in doc
    assert "drafted by: model=none (answer given as text)" in doc
    assert f"{len(d.rows.measured)} real rows of squad" in doc and "alignment " in doc
    assert "shipped document_qa on the same rows: alignment 0.0%" in doc
    assert "history: round 0: passed" in doc
    assert sandbox.validate_source(text) == []
    entry = discovery.parse_file(path)[0]
    assert entry.name == "squad_draft" and not entry.trusted
    assert sandbox.preview_file(path, n=2, limits=FAST.limits).ok  # still runs, sandboxed


def test_a_tampered_candidate_is_checked_again_before_saving(drafted: Any, tmp_path: Path) -> None:
    d, got = drafted
    good = got["valid_fenced.md"]
    bad_code = extract.extract_code(fixture_text("zero_alignment.md"))
    forged = loop.Candidate(
        "c9", 0, None, "", "given", checks.Outcome(bad_code, list(checks.STAGES)), {}
    )
    assert forged.passed  # claims to have passed every stage
    with pytest.raises(saving.NotSaveable, match="did not pass again.*zero alignment"):
        saving.save_candidate(d, forged, tmp_path)
    assert not list(tmp_path.glob("*.py"))
    assert good.passed


def test_nothing_saved_when_no_candidate_passed(shared_data: Path, tmp_path: Path) -> None:
    cfg = loop.DraftConfig(
        task="squad", data_dir=str(shared_data), examples=1, align_rows=10, settings=FAST
    )
    d = loop.Drafting.prepare(cfg)
    d.evaluate(fixture_text("forbidden_import.md"))
    d.evaluate("Sorry, I cannot write code.")
    assert [r["stage"] for r in d.table()] == ["static", "extract"]  # furthest stage first
    assert "no code found" in d.table()[1]["reason"]
    with pytest.raises(saving.NotSaveable, match="no candidate passed every stage"):
        saving.save_best(d, tmp_path)
    assert not list(tmp_path.iterdir())


def test_stamp_adds_provenance_to_the_docstring_or_makes_one() -> None:
    with_doc = '"""Original."""\n\nx = 1\n'
    out = saving.stamp(with_doc, ["Provenance: a", 'quote """ and \\ kept'])
    tree = ast.parse(out)
    assert ast.get_docstring(tree) == 'Original.\n\nProvenance: a\nquote """ and \\ kept'
    assert out.endswith("\nx = 1\n")
    bare = "from __future__ import annotations\nx = 1\n"
    out = saving.stamp(bare, ["Provenance: b"])
    assert ast.get_docstring(ast.parse(out)) == "Provenance: b"
    assert out.endswith(bare)


# ----------------------------------------------------------------------------------
# Backends and the command line


def test_api_key_stays_in_the_environment(
    embedded_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--base-url`` loads the embedded model's tokenizer (converted once per session);
    the key is read from the environment and appears in no description or error."""
    secret = "sk-drafting-test-0123456789"
    monkeypatch.setenv("DRAFT_TEST_KEY", secret)
    backend = asking.open_backend(
        "default", base_url="http://127.0.0.1:9/v1", api_key_env="DRAFT_TEST_KEY"
    )
    info = asking.describe_backend(backend)
    assert info["backend"] == "served" and secret not in repr(info)
    asker = asking.Asker(backend, max_new_tokens=4)
    from cookbook_core.eval.backends.served import ServerUnreachable

    with pytest.raises(ServerUnreachable) as err:
        asker.ask(["hello"], k=1, seed=0)
    assert secret not in str(err.value)
    with pytest.raises(BadInput, match="must name an environment variable"):
        asking.open_backend("default", base_url="http://x", api_key_env="not a name!")


def test_cli_show_prompt_and_bad_input(
    shared_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["templates", "draft", "--task", "boolq", "--data-dir", str(shared_data)]
    assert main([*argv, "--examples", "1", "--show-prompt"]) == 0
    out = capsys.readouterr().out
    assert "- passage: str" in out and 'name="boolq_draft"' in out
    assert main([*argv, "-k", "0"]) == 2
    assert "-k must be between 1 and 64" in capsys.readouterr().err
    assert main(["templates", "draft", "--task", "winogrande", "--data-dir", str(shared_data)]) == 2


def test_cli_report_lines(drafted: Any, capsys: pytest.CaptureFixture[str]) -> None:
    from cookbook_core.cli import draft as cli_draft

    d, got = drafted
    cli_draft.print_progress("candidate", candidate=got["loops_forever.md"])
    assert "failed at preview  timeout" in capsys.readouterr().err
    cli_draft.print_table(d.table())
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:3] == ["rank", "id", "stage"]
    assert len(out) == 2 + len(d.table()) and "passed" in out[2]
    hand = cli_draft.handwritten_alignment(d)
    assert hand is not None and hand["template"] == "document_qa"
    assert hand["examples"] == len(d.rows.measured) and 0 < hand["gold_alignment"] < 1


def test_finished_run_is_recorded_for_the_results_page(
    drafted: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cookbook_core.cli import draft as cli_draft
    from cookbook_core.drafting import record
    from cookbook_core.experiments import report

    monkeypatch.setenv("COOKBOOK_HOME", str(tmp_path / "home"))
    d, got = drafted
    cmd = record.command(d.cfg, "served")
    assert cmd.startswith("cookbook templates draft --task squad -k ")
    assert "--backend served" in cmd and "--align-rows 60" in cmd
    older = record.store({**d.summary(), "best": None}, cmd)
    newer = record.store(d.summary(), cmd, cli_draft.handwritten_alignment(d))
    assert older != newer  # two runs within a second keep both files
    (latest,) = record.latest()
    assert latest["best"] == got["valid_fenced.md"].id  # the newer one
    c = report.collect()
    text = report.render(c)
    assert "## Template drafting: candidates through the checks" in text
    # the funnel of the five stored answers: 5 found, 4 past static, 3 preview, 2, 1
    assert "| squad | " in text and "| 5 | 5 | 4 | 3 | 2 | 1 |" in text
    assert f"best candidate {latest['best']}" in text
    assert "failed at alignment (1), checker (1), preview (1), static (1)" in text
    assert f"`{cmd}`" in text
    path = report.write_report(tmp_path / "docs", collected=c)  # drafts alone are enough
    assert "Template drafting" in path.read_text()


# ----------------------------------------------------------------------------------
# The real embedded model


@pytest.mark.slow
def test_real_embedded_model_loop_finishes_with_reasons(
    shared_data: Path,
    eval_backend: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """k=2 candidates and one repair round from SmolLM2-135M (transformers, in-process),
    with a short token budget: whatever it writes, the loop ends with a table of reasons,
    candidate code runs only in the sandbox and a failing candidate is never saved."""
    in_process: list[str] = []
    real_init = templates.Template.__init__

    def spy_init(self: templates.Template, fn: Any, **kw: Any) -> None:
        in_process.append(kw.get("name", "?"))
        real_init(self, fn, **kw)

    sandboxed: list[int] = []
    real_run = sandbox.run_source

    def spy_run(source: str, **kw: Any) -> sandbox.SandboxResult:
        sandboxed.append(len(source))
        return real_run(source, **kw)

    monkeypatch.setattr(templates.Template, "__init__", spy_init)
    monkeypatch.setattr(sandbox, "run_source", spy_run)

    cfg = loop.DraftConfig(
        task="squad",
        data_dir=str(shared_data),
        examples=1,
        worked=0,
        align_rows=20,
        k=2,
        rounds=1,
        seed=0,
        max_new_tokens=48,
        settings=FAST,
    )
    d = loop.Drafting.prepare(cfg)
    asker = asking.Asker(eval_backend, max_new_tokens=cfg.max_new_tokens)
    events: list[str] = []
    candidates = d.run(asker, progress=lambda event, **info: events.append(event))

    assert 2 <= len(candidates) <= 4
    assert events[0] == "prompt" and events[-1] == "done"
    assert events.count("candidate") == len(candidates)
    assert d.answered_by["backend"] == "transformers"
    table = d.table()
    assert len(table) == len(candidates)
    for row in table:
        assert row["stage"] in (*checks.STAGES, "passed")
        assert row["passed"] or row["reason"], row
    failed = [c for c in candidates if not c.passed]
    assert all(c.id.startswith(("c1", "c2")) for c in candidates)
    assert {c.parent for c in candidates if c.round == 1} <= {"c1", "c2"}
    # every repair carries its line's history
    assert all(c.history for c in candidates if c.round == 1)
    # nothing drafted was executed here; each candidate past static went to the sandbox
    assert in_process == []
    assert len(sandboxed) == sum("static" in c.outcome.passed_stages for c in candidates)
    funnel = d.funnel()
    counts = [funnel[s] for s in checks.STAGES]
    assert counts == sorted(counts, reverse=True) and funnel["candidates"] == len(candidates)

    folder = tmp_path / "saved"
    for c in failed:
        with pytest.raises(saving.NotSaveable):
            saving.save_candidate(d, c, folder)
    if d.best() is None:
        with pytest.raises(saving.NotSaveable, match="no candidate passed"):
            saving.save_best(d, folder)
        assert not folder.exists() or not list(folder.glob("*.py"))
    else:
        _, path = saving.save_best(d, folder)
        assert sandbox.validate_source(path.read_text(encoding="utf-8")) == []
