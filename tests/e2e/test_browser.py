"""End-to-end: the studio served by ``streamlit run`` and driven in Debian's Chromium
through Playwright. Screenshots of each page land in artifacts/screenshots/."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = ROOT / "artifacts" / "screenshots"

pytestmark = pytest.mark.e2e


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def studio(_workspace: Path) -> Iterator[str]:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    port = _free_port()
    env = {**os.environ, "COOKBOOK_HOME": str(_workspace)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(ROOT / "app.py"),
            "--server.headless",
            "true",
            "--server.address",
            "127.0.0.1",
            "--server.port",
            str(port),
            "--browser.gatherUsageStats",
            "false",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("the studio did not start within 60 s")
    yield url
    os.killpg(proc.pid, 15)
    proc.wait(timeout=20)


@pytest.fixture(scope="module")
def page(studio: str) -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        pg = browser.new_page(viewport={"width": 1400, "height": 1000})
        pg.set_default_timeout(60_000)
        yield pg
        browser.close()


def open_page(page, studio: str, title: str) -> None:
    """Start at the studio's root and follow the sidebar link, as a user does."""
    page.goto(studio)
    page.get_by_role("heading", name="Cookbook Studio").wait_for()
    page.get_by_role("link", name=title).click()
    page.get_by_role("heading", name=title).first.wait_for()


def shoot(page, name: str) -> None:
    """Screenshot the whole page: Streamlit scrolls inside its main block, so the viewport
    is stretched to the content's height for the shot."""
    page.wait_for_timeout(800)  # let charts finish their transition
    height = page.evaluate(
        """() => { const m = document.querySelector('[data-testid="stMainBlockContainer"]');
                   return m ? m.scrollHeight : 1000; }"""
    )
    page.set_viewport_size({"width": 1400, "height": max(1000, min(int(height) + 150, 7000))})
    page.wait_for_timeout(800)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
    page.set_viewport_size({"width": 1400, "height": 1000})


def set_number(page, label: str, value: int) -> None:
    """Type into a Streamlit number input and commit it (Enter), then let the page rerun."""
    box = page.get_by_label(label, exact=True)
    box.fill(str(value))
    box.press("Enter")
    page.wait_for_function(
        """([l, v]) => [...document.querySelectorAll('input')].some(
               i => i.getAttribute('aria-label') === l && i.value === v)""",
        arg=[label, str(value)],
    )
    page.wait_for_timeout(500)


def wait_jobs_done(kind: str, timeout: float) -> list:
    """Wait (in the test process, same workspace) until no job of ``kind`` is active."""
    from cookbook_core.jobs import store as jobs

    deadline = time.monotonic() + timeout
    while jobs.list_jobs(states=jobs.ACTIVE, kind=kind):
        assert time.monotonic() < deadline, f"{kind} jobs still active after {timeout} s"
        time.sleep(1)
    return jobs.list_jobs(kind=kind)


def test_overview_page(page, studio: str) -> None:
    page.goto(studio)
    page.get_by_role("heading", name="Cookbook Studio").wait_for()
    page.locator('[data-testid="stDataFrame"]').wait_for()
    page.locator("td", has_text="document_qa").first.wait_for(state="attached")
    shoot(page, "overview")


def test_templates_page_preview_and_new_seed(page, studio: str) -> None:
    open_page(page, studio, "Templates")
    page.get_by_text("samples follow the rule").first.wait_for()
    first_sample = page.locator('[data-testid="stCode"]').first
    before = first_sample.inner_text()
    page.get_by_role("button", name="New seed").click()
    page.wait_for_function(
        """b => { const c = document.querySelector('[data-testid="stCode"]');
                  return c && c.innerText !== b; }""",
        arg=before,
    )
    assert "4/4 samples follow the rule" in page.content()
    shoot(page, "templates")


def test_datasets_page_generates_a_dataset(page, studio: str) -> None:
    open_page(page, studio, "Datasets")
    set_number(page, "Samples", 40)
    set_number(page, "Seed", 7)
    page.get_by_text("Planned: document_qa 40 (100%)").wait_for()
    page.get_by_role("button", name="Generate").click()
    page.get_by_text("Wrote 40 samples").wait_for(timeout=120_000)
    page.get_by_text("seed 7 · created").wait_for()  # the new dataset's manifest
    page.get_by_text("#0 ·").wait_for()
    assert "Document:" in page.locator('[data-testid="stCode"]').first.inner_text()
    shoot(page, "datasets")


def test_training_page_runs_a_tiny_job(page, studio: str, embedded_model: Path) -> None:
    open_page(page, studio, "Training")
    set_number(page, "Steps", 2)
    set_number(page, "Batch size", 2)
    page.get_by_text("More options").click()
    set_number(page, "Max tokens", 64)
    set_number(page, "LoRA rank", 4)
    set_number(page, "Checkpoint every", 1)
    page.get_by_role("button", name="Start training").click()
    # ~30 s on a quiet 2-core machine; far longer when the machine is shared
    page.get_by_text("Finished 2 steps").wait_for(timeout=420_000)
    page.locator(".js-plotly-plot").first.wait_for()
    (job,) = [j for j in wait_jobs_done("train", 10) if j.config.get("max_length") == 64][:1]
    assert job.state == "succeeded" and job.config["steps"] == 2
    assert job.config["data"].endswith("document_qa-n40-s7")  # the newest dataset
    shoot(page, "training")


def test_evaluation_page_compares_base_and_tuned(page, studio: str, shared_data: Path) -> None:
    open_page(page, studio, "Evaluation")
    data = page.get_by_label("Evaluation data", exact=True)
    data.fill(str(shared_data))
    data.press("Enter")
    page.wait_for_timeout(500)
    page.get_by_label("Tasks", exact=True).click()  # the multiselect's input
    page.keyboard.type("arc_easy")
    page.keyboard.press("Enter")
    page.keyboard.press("Escape")
    set_number(page, "Examples per task (0: all)", 4)
    page.get_by_role("button", name="Start evaluation").click()  # the base model
    page.get_by_text("Fine-tuned adapter").wait_for()
    page.locator('[data-testid="stSelectbox"]', has_text="Fine-tuned adapter").click()
    page.get_by_role("option").nth(1).click()  # the run trained above
    page.wait_for_timeout(500)
    page.get_by_role("button", name="Start evaluation").click()
    runs = wait_jobs_done("eval", 480)
    assert [j.state for j in runs[:2]] == ["succeeded", "succeeded"]
    open_page(page, studio, "Evaluation")
    page.get_by_text("correct ·").first.wait_for()
    page.locator(".js-plotly-plot").first.wait_for()
    assert "tuned" in page.content()
    shoot(page, "evaluation")


def test_mixing_page(page, studio: str) -> None:
    import pandas as pd

    from cookbook_core.mix import mixing

    root = mixing.matrices_root()
    root.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(
        {"squad": [0.10, 0.50, 0.20], "arc": [0.30, 0.25, 0.40], "boolq": [0.5, 0.45, 0.55]},
        index=pd.Index(["base", "document_qa", "multiple_choice_qa"], name="template"),
    ).to_csv(root / "e2e_demo.csv")
    open_page(page, studio, "Mixing")
    page.get_by_text("worst task").first.wait_for()
    page.locator(".js-plotly-plot").nth(2).wait_for()
    shoot(page, "mixing")


def test_alignment_page(page, studio: str, shared_data: Path) -> None:
    open_page(page, studio, "Alignment")
    page.get_by_text("Gold alignment").first.wait_for()
    page.locator("mark").first.wait_for(state="attached")
    shoot(page, "alignment")


@pytest.mark.serve
def test_alignment_page_asks_the_server_live(
    page, studio: str, embedded_model: Path, tiny_dataset: Path, _workspace: Path
) -> None:
    """With a vLLM server running, "Generate now" on the Alignment page asks the base
    model and a trained adapter (the Training page's, or one made here when this test runs
    alone) for the example in view, through the server (the adapter is loaded into it by
    name), and shows the answers in a new table."""
    from cookbook_core.serve import env as serve_env
    from cookbook_core.serve import server
    from cookbook_core.train import adapters, training

    if not adapters.list_adapters():
        cfg = training.TrainConfig(data=str(tiny_dataset), steps=2, batch_size=4, lora_r=4)
        training.train(cfg, _workspace / "runs" / "e2e-live-adapter")

    if not serve_env.serve_python().is_file():
        msg = f"the serving environment is missing ({serve_env.serve_python()})"
        pytest.fail(msg) if os.environ.get("CI") else pytest.skip(msg)
    info = server.start(
        "default", name="e2e", port=_free_port(), owner_pid=os.getpid(), timeout=600
    )
    try:
        before = set(server.loaded_models(info))
        open_page(page, studio, "Alignment")
        page.get_by_text("Ask the models now").wait_for()
        tables = page.locator('[data-testid="stDataFrame"]').count()
        page.get_by_role("button", name="Generate now").click()
        page.wait_for_function(
            f"document.querySelectorAll('[data-testid=\"stDataFrame\"]').length > {tables}",
            timeout=300_000,
        )
        added = set(server.loaded_models(info)) - before
        assert len(added) == 1, (before, added)  # the adapter, loaded by the page's request
        shoot(page, "alignment-live")
    finally:
        stopped = server.stop("e2e")
        assert stopped is not None and stopped.state == "stopped"


def test_jobs_page(page, studio: str) -> None:
    open_page(page, studio, "Jobs")
    page.locator('[data-testid="stDataFrame"]').first.wait_for()
    page.get_by_text("Log lines").wait_for()
    shoot(page, "jobs")


def test_experiments_page(page, studio: str) -> None:
    open_page(page, studio, "Experiments")
    page.get_by_text("Run an experiment").wait_for()
    page.get_by_role("button", name="Queue single-task experiment").wait_for()
    shoot(page, "experiments")
