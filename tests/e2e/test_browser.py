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


def test_overview_page(page, studio: str) -> None:
    page.goto(studio)
    page.get_by_role("heading", name="Cookbook Studio").wait_for()
    page.locator('[data-testid="stDataFrame"]').wait_for()
    page.locator("td", has_text="document_qa").first.wait_for(state="attached")
    page.screenshot(path=str(SHOTS / "overview.png"), full_page=True)


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
    page.screenshot(path=str(SHOTS / "templates.png"), full_page=True)


def test_mixing_page(page, studio: str) -> None:
    import pandas as pd

    from cookbook_core import mixing

    root = mixing.matrices_root()
    root.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(
        {"squad": [0.10, 0.50, 0.20], "arc": [0.30, 0.25, 0.40], "boolq": [0.5, 0.45, 0.55]},
        index=pd.Index(["base", "document_qa", "multiple_choice_qa"], name="template"),
    ).to_csv(root / "e2e_demo.csv")
    open_page(page, studio, "Mixing")
    page.get_by_text("worst task").first.wait_for()
    page.locator(".js-plotly-plot").nth(2).wait_for()
    page.screenshot(path=str(SHOTS / "mixing.png"), full_page=True)


def test_alignment_page(page, studio: str, shared_data: Path) -> None:
    open_page(page, studio, "Alignment")
    page.get_by_text("Gold alignment").first.wait_for()
    page.locator("mark").first.wait_for(state="attached")
    page.screenshot(path=str(SHOTS / "alignment.png"), full_page=True)
