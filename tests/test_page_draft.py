"""The Templates page's Draft tab end to end under Streamlit's AppTest, against a real
local OpenAI-compatible HTTP endpoint.

The endpoint (:class:`RecordedEndpoint`, a threaded ``http.server`` on 127.0.0.1)
answers ``/v1/completions`` with the candidate texts stored in
``tests/drafting_fixtures/`` (one valid template in a fence with chatter, a forbidden
import, a checker that disagrees with its generator, an endless loop, zero
alignment) and every repair request with the forbidden-import text.  **These
fixtures test the pipeline and the page, not a model's quality.**  The page submits
a real ``draft`` job; its worker asks the endpoint through the served backend (the
embedded model's tokenizer), checks every candidate in the sandbox and writes the
run folder the tab reads back.  Each test runs in its own workspace (its job store,
datasets and template folder), sharing only the converted model cache.
"""

from __future__ import annotations

import ast
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from cookbook_core import paths
from cookbook_core.drafting import checks, contracts, loop
from cookbook_core.drafting import job as draft_job
from cookbook_core.errors import BadInput
from cookbook_core.jobs import store as jobs
from cookbook_core.studio import drafting as sd

ROOT = Path(__file__).resolve().parent.parent
PAGE = str(ROOT / "pages" / "templates.py")
TRAINING = str(ROOT / "pages" / "training.py")
FIXTURES = Path(__file__).parent / "drafting_fixtures"
ORDER = [
    "valid_fenced.md",
    "forbidden_import.md",
    "checker_disagrees.md",
    "loops_forever.md",
    "zero_alignment.md",
]
SECRET = "sk-draft-page-test-0123456789abcdef"


class RecordedEndpoint:
    """``/v1/completions`` answering with stored texts: a request for ``n`` completions
    gets the first ``n`` stored answers, a single-completion request (a repair) gets
    ``repair``.  Each request's ``n``, model and Authorization header are recorded."""

    def __init__(self, answers: list[str], repair: str) -> None:
        self.answers, self.repair = answers, repair
        self.requests: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server name
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.path != "/v1/completions":
                    self.send_error(404)
                    return
                n = int(body.get("n") or 1)
                texts = outer.answers[:n] if n > 1 else [outer.repair]
                outer.requests.append(
                    {"n": n, "model": body.get("model"), "auth": self.headers["Authorization"]}
                )
                data = json.dumps(
                    {
                        "object": "text_completion",
                        "model": body.get("model"),
                        "choices": [
                            {"index": i, "text": t, "finish_reason": "stop", "stop_reason": None}
                            for i, t in enumerate(texts)
                        ],
                    }
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def fixture_text(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


@pytest.fixture
def endpoint() -> Iterator[RecordedEndpoint]:
    ep = RecordedEndpoint([fixture_text(n) for n in ORDER], fixture_text("forbidden_import.md"))
    yield ep
    ep.close()


@pytest.fixture
def draft_home(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    _workspace: Path,
    embedded_model: Path,
    shared_data: Path,
) -> Path:
    """A workspace of its own (job store, datasets, user templates); the converted model
    cache is the session's.  The real data is the default data folder."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "cache").symlink_to(_workspace / "cache", target_is_directory=True)
    monkeypatch.setenv("COOKBOOK_HOME", str(home))
    monkeypatch.setenv("COOKBOOK_EVAL_DATA", str(shared_data))
    monkeypatch.delenv("COOKBOOK_TEMPLATES", raising=False)
    monkeypatch.delenv("COOKBOOK_TRUSTED_TEMPLATES", raising=False)
    monkeypatch.setenv("DRAFT_PAGE_KEY", SECRET)
    return home


def page() -> AppTest:
    return AppTest.from_file(PAGE, default_timeout=120).run()


def request_draft(at: AppTest, url: str) -> None:
    """Fill in the Draft tab's request (squad, the endpoint, 5 candidates, 1 repair round,
    short sandbox limits) and press Draft."""
    at.selectbox(key="dr_task").set_value("squad").run()
    at.radio(key="dr_endpoint").set_value("url").run()
    at.text_input(key="dr_url").input(url)
    at.text_input(key="dr_key_env").input("DRAFT_PAGE_KEY")
    at.number_input(key="dr_k").set_value(5)
    at.number_input(key="dr_rounds").set_value(1)
    at.number_input(key="dr_examples").set_value(2)
    at.number_input(key="dr_align").set_value(60)
    at.number_input(key="dr_cpu").set_value(2)
    at.number_input(key="dr_tokens").set_value(256)
    at.run()
    assert any("$DRAFT_PAGE_KEY is set" in c.value for c in at.caption)
    at.button(key="dr_go").click().run()
    assert not at.exception, at.exception


def table(at: AppTest) -> Any:
    frames = [d.value for d in at.dataframe if "reason" in d.value.columns]
    assert frames, "no candidates table"
    return frames[0]


def test_draft_tab_end_to_end(draft_home: Path, endpoint: RecordedEndpoint) -> None:
    at = page()
    request_draft(at, endpoint.url)
    submitted = jobs.list_jobs(kind="draft")
    assert len(submitted) == 1
    job = jobs.wait(submitted[0].id, timeout=300)
    assert job.state == "succeeded", (job.reason, jobs.read_log(job.id, tail=30))
    # the job's worker asked the endpoint: five candidates, then one repair per failure
    assert [r["n"] for r in endpoint.requests[:1]] == [5]
    assert sorted(r["n"] for r in endpoint.requests[1:]) == [1, 1, 1, 1]
    assert all(r["auth"] == f"Bearer {SECRET}" for r in endpoint.requests)
    # the finished run is recorded for the results page, with the command (never the key)
    from cookbook_core.drafting import record

    (rec,) = record.latest()
    assert rec["task"] == "squad" and rec["best"] == "c1" and rec["funnel"]["candidates"] == 9
    assert f"--base-url {endpoint.url}" in rec["command"] and "-k 5 --rounds 1" in rec["command"]
    assert SECRET not in json.dumps(rec)

    at.run()
    assert not at.exception, at.exception
    frame = table(at)
    assert len(frame) == 9  # 5 answers + 4 repairs
    by_id = frame.set_index("id")
    assert by_id.loc["c1", "status"] == "✓ passed" and frame.iloc[0]["id"] == "c1"
    assert by_id.loc["c1", "alignment %"] > 0
    assert by_id.loc["c2", "status"] == "✗ static"
    assert "forbidden import at line 3, column 1" in by_id.loc["c2", "reason"]
    assert by_id.loc["c3", "status"] == "✗ checker"
    assert "checker disagrees with its generator" in by_id.loc["c3", "reason"]
    assert "timeout while generating samples" in by_id.loc["c4", "reason"]
    assert "zero alignment" in by_id.loc["c5", "reason"]
    assert all(by_id.loc[f"c{i}.r1", "status"] == "✗ static" for i in range(2, 6))
    assert any("9 candidate(s); passed: extract 9" in c.value for c in at.caption)

    # a failed candidate: its reason, its history, and no Save
    at.selectbox(key="dr_cand").set_value("c3.r1").run()
    assert any("failed at static" in e.value for e in at.error)
    assert any("round 0: checker - checker disagrees" in c.value for c in at.caption)
    assert at.button(key="dr_save").disabled

    # the valid one: samples, a diff against the closest shipped template, Save
    at.selectbox(key="dr_cand").set_value("c1").run()
    assert any("c1 passed every stage (squad_draft)" in s.value for s in at.success)
    cmp = at.selectbox(key="dr_cmp")
    assert "(closest," in cmp.value and cmp.value.startswith("shipped ")
    diffs = [c.value for c in at.code if c.language == "diff"]
    assert diffs and "+++ candidate c1" in diffs[0] and '+@template(name="squad_draft"' in diffs[0]
    cmp.set_value("candidate c5").run()
    diffs = [c.value for c in at.code if c.language == "diff"]
    assert diffs[0].startswith("--- candidate c5\n+++ candidate c1")
    assert not at.button(key="dr_save").disabled
    at.button(key="dr_save").click().run()
    assert not at.exception, at.exception

    saved = paths.user_templates_dir() / "squad_draft.py"
    assert saved.is_file()
    doc = ast.get_docstring(ast.parse(saved.read_text(encoding="utf-8"))) or ""
    info = json.loads((job.run_dir / "draft.json").read_text())
    assert f"prompt: sha256 {info['prompt_hash']}" in doc
    assert f"base_url={endpoint.url}" in doc and "backend=served" in doc
    assert "candidate: c1 (round 0)" in doc and "history: round 0: passed" in doc
    assert "shipped document_qa on the same rows" in doc
    # the key went to the endpoint only: in no file of the run or the saved template
    for f in [saved, *job.run_dir.rglob("*")]:
        if f.is_file():
            assert SECRET not in f.read_text(encoding="utf-8", errors="replace"), f
    assert any("Saved candidate c1 as `squad_draft`" in s.value for s in at.success)

    # one click: a sandboxed preview of the saved file (4 samples with their verdicts)
    def shown() -> int:
        return sum("follows its rule" in m.value for m in at.markdown)

    before = shown()
    at.button(key="dr_preview_go").click().run()
    assert not at.exception, at.exception
    assert shown() == before + 4
    # the sidebar lists it (untrusted), and one click selects it
    at.button(key="dr_open").click().run()
    assert at.sidebar.selectbox(key="tpl_name").value == "squad_draft"
    assert any("untrusted: runs in the sandbox" in c.value for c in at.caption)


def test_generate_and_train_links_after_review(
    draft_home: Path, endpoint: RecordedEndpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Save, then (once a person trusts the folder) generate a dataset with the draft in
    one click, and open the Training page with that dataset selected."""
    at = page()
    endpoint.answers = [fixture_text("valid_fenced.md")] * 2
    request_draft_small(at, endpoint.url)
    job = jobs.wait(jobs.list_jobs(kind="draft")[0].id, timeout=300)
    assert job.state == "succeeded", job.reason
    at.run()
    at.button(key="dr_save").click().run()
    saved = paths.user_templates_dir() / "squad_draft.py"
    assert saved.is_file()
    assert any("Generate a dataset with it to train on it" in c.value for c in at.caption)

    monkeypatch.setenv("COOKBOOK_TRUSTED_TEMPLATES", str(saved.parent))  # reviewed
    at.number_input(key="dr_gen_n").set_value(20)
    at.button(key="dr_generate").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    gen = jobs.wait(jobs.list_jobs(kind="generate")[0].id, timeout=120)
    assert gen.state == "succeeded", gen.reason
    at.run()
    data = sd.dataset_for("squad_draft")
    assert data is not None and Path(data, "manifest.json").is_file()
    links = [m.value for m in at.markdown if m.value.startswith("[Train on")]
    assert links and "training?data=" in links[0]

    tr = AppTest.from_file(TRAINING, default_timeout=60)
    tr.query_params["data"] = data
    tr.run()
    assert not tr.exception, tr.exception
    assert tr.selectbox(key="tr_data").value == data


def request_draft_small(at: AppTest, url: str) -> None:
    at.selectbox(key="dr_task").set_value("squad").run()
    at.radio(key="dr_endpoint").set_value("url").run()
    at.text_input(key="dr_url").input(url)
    at.number_input(key="dr_k").set_value(2)
    at.number_input(key="dr_rounds").set_value(0)
    at.number_input(key="dr_examples").set_value(1)
    at.number_input(key="dr_align").set_value(30)
    at.number_input(key="dr_cpu").set_value(2)
    at.run()
    at.button(key="dr_go").click().run()
    assert not at.exception, at.exception


def test_bad_requests_are_refused_before_a_job_is_queued(draft_home: Path) -> None:
    at = page()
    at.selectbox(key="dr_task").set_value(sd.NEW_TASK).run()
    at.text_input(key="dr_new_name").input("rhymes")
    at.selectbox(key="dr_kind").set_value("cloze")
    at.text_area(key="dr_desc_new").input("Complete the line with a rhyming word.")
    at.text_area(key="dr_rows").input(
        '{"context": "the cat sat on the", "answer": "mat"}\nnot json'
    )
    at.radio(key="dr_endpoint").set_value("url").run()
    at.text_input(key="dr_url").input("http://127.0.0.1:9/v1").run()
    at.button(key="dr_go").click().run()
    assert any("pasted row on line 2 is not JSON" in e.value for e in at.error)
    at.text_area(key="dr_rows").input('{"context": "the cat sat on the", "answer": "mat"}').run()
    at.button(key="dr_go").click().run()
    assert any("paste more than the 2 shown" in e.value for e in at.error)
    # a key where its variable's name belongs is refused, and never echoed
    at.text_input(key="dr_key_env").input(SECRET.replace("-", "+")).run()
    at.button(key="dr_go").click().run()
    errors = " ".join(e.value for e in at.error)
    assert "must be the name of an environment variable" in errors and "sk+draft" not in errors
    assert jobs.list_jobs(kind="draft") == []


# ----------------------------------------------------------------------------------
# The library under the tab


def test_new_task_rows_are_split_and_measured(shared_data: Path) -> None:
    """A new task: pasted rows in its kind's format, the first shown, the rest measured;
    the stored valid answer passes on them like on SQuAD."""
    raw = contracts.load_rows("squad", shared_data, examples=0, align_rows=62).measured_raw
    pasted = [
        {"context": r["context"], "question": r["question"], "answer": r["answers"][0]} for r in raw
    ]
    cfg = loop.DraftConfig(
        task="my_qa",
        kind="extractive_qa",
        description="Answer a question with a span of the passage.",
        pasted=pasted,
        examples=2,
        settings=checks.Settings(n_samples=6),
    )
    d = loop.Drafting.prepare(cfg)
    assert d.rows.task.name == "my_qa" and d.rows.source == "pasted rows"
    assert len(d.rows.shown) == 2 and len(d.rows.measured) == 60
    assert "Answer a question with a span of the passage." in d.prompt
    assert 'name="my_qa_draft"' in d.prompt and pasted[0]["question"].strip() in d.prompt
    c = d.evaluate(fixture_text("valid_fenced.md"))
    assert c.passed and c.outcome.scores["rows"] == 60
    assert d.baseline() is None  # no shipped template stands for a new task
    with pytest.raises(BadInput, match="a cloze row has context, answer"):
        contracts.custom_rows(contracts.custom_task("x", "cloze", "d"), [{"text": "a"}] * 3)
    with pytest.raises(BadInput, match="is a known task"):
        contracts.custom_task("squad", "extractive_qa", "d")
    with pytest.raises(BadInput, match="lower-case letters"):
        contracts.custom_task("My Task", "extractive_qa", "d")


def test_endpoint_config_never_holds_a_key() -> None:
    with pytest.raises(BadInput, match="never holds an API key"):
        draft_job.check_endpoint({"kind": "url", "base_url": "http://x", "api_key": SECRET})
    with pytest.raises(BadInput, match="base URL must start with http"):
        draft_job.check_endpoint({"kind": "url", "base_url": "ftp://x"})
    with pytest.raises(BadInput, match="go with the url endpoint"):
        draft_job.check_endpoint({"kind": "managed", "api_key_env": "K"})
    ok = draft_job.check_endpoint(
        {"kind": "url", "base_url": "http://h:1/v1", "api_key_env": "MY_KEY"}
    )
    assert ok == {
        "kind": "url",
        "model": "default",
        "base_url": "http://h:1/v1",
        "served_model": None,
        "api_key_env": "MY_KEY",
    }
    assert sd.key_status("NO_SUCH_VARIABLE_HERE") == "$NO_SUCH_VARIABLE_HERE is not set here"


def test_closest_shipped_template_and_diff() -> None:
    shipped = sd.shipped_sources()
    source = shipped["document_qa"]
    name, ratio = sd.closest_shipped(source.replace("document", "passage"), shipped) or ("", 0)
    assert name == "document_qa" and 0.5 < ratio < 1
    text = sd.diff("a\nb\n", "a\nc\n", "x", "y")
    assert text.splitlines()[:2] == ["--- x", "+++ y"] and "-b" in text and "+c" in text
    assert sd.diff("same\n", "same\n", "x", "y") == ""


def test_cli_draft_from_an_endpoint_is_recorded(
    draft_home: Path, endpoint: RecordedEndpoint, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same stored answers through ``cookbook templates draft --base-url``: the CLI
    finishes with the ranked table and keeps the run's summary for the results page."""
    from cookbook_core.cli.main import main
    from cookbook_core.drafting import record

    argv = ["templates", "draft", "--task", "squad", "--base-url", endpoint.url]
    argv += ["--api-key-env", "DRAFT_PAGE_KEY", "-k", "5", "--rounds", "0", "--examples", "2"]
    argv += ["--align-rows", "60", "--cpu-seconds", "2", "--quiet"]
    assert main(argv) == 0  # c1 passed
    out = capsys.readouterr().out
    assert "passed each stage (of 5 candidates" in out and "best: c1" in out
    (rec,) = record.latest()
    assert rec["funnel"]["candidates"] == 5 and rec["best"] == "c1"
    assert rec["command"] == (
        f"cookbook templates draft --task squad -k 5 --rounds 0 --align-rows 60 "
        f"--base-url {endpoint.url}"
    )
    assert SECRET not in json.dumps(rec)
