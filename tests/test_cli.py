"""The ``cookbook`` command: listing, preview, generate, and bad input (exit code 2
with a specific message)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cookbook_core.cli.main import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_templates_list_and_show(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "templates", "list", "--json")
    assert code == 0
    names = {e["name"] for e in json.loads(out)}
    assert {"document_qa", "entity_matching", "rhyming_poetry"} <= names
    code, out, _ = run(capsys, "templates", "show", "document_qa")
    assert code == 0 and "k = 3" in out and "int in [1, 10]" in out


def test_preview_applies_params(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys,
        "templates",
        "preview",
        "document_qa",
        "-n",
        "3",
        "--seed",
        "4",
        "--param",
        "k=5",
        "--json",
    )
    assert code == 0
    samples = json.loads(out)
    assert len(samples) == 3
    assert all(len(s["completion"].split()) == 5 and s["follows_rule"] for s in samples)


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["templates", "preview", "documentqa"], "did you mean 'document_qa'"),
        (["templates", "show", "retreival"], "did you mean 'retrieval'"),
        (["templates", "preview", "document_qa", "--param", "kk=2"], "did you mean 'k'"),
        (["templates", "preview", "document_qa", "--param", "k=99"], "allowed: int in [1, 10]"),
        (["templates", "preview", "document_qa", "--param", "k=two"], "is not a valid int"),
        (["templates", "preview", "document_qa", "--param", "direction=up"], "one of both"),
        (["templates", "preview", "document_qa", "--param", "k"], "expected KEY=VALUE"),
        (["generate", "-t", "document_qa:abc", "-n", "5"], "is not a number"),
        (["generate", "-t", "nope", "-n", "5"], "unknown template 'nope'"),
        (["generate", "-t", "document_qa", "-n", "0"], "-n must be at least 1"),
        (["generate", "-t", "document_qa", "-n", "5", "--param", "x.k=2"], "not among the chosen"),
        (
            ["generate", "-t", "document_qa", "-n", "5", "--token-space", "bogus"],
            "unknown token space",
        ),
    ],
)
def test_bad_input_exits_2_with_message(
    capsys: pytest.CaptureFixture[str], argv: list[str], needle: str
) -> None:
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert needle in err
    assert "Traceback" not in err


def test_generate_mixture(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out = tmp_path / "mix"
    code, stdout, _ = run(
        capsys,
        "generate",
        "-t",
        "document_qa:3",
        "-t",
        "yes_no_qa:1",
        "-n",
        "40",
        "--seed",
        "2",
        "--out",
        str(out),
        "--param",
        "document_qa.k=2",
    )
    assert code == 0, stdout
    m = json.loads((out / "manifest.json").read_text())
    assert [t["count"] for t in m["templates"]] == [30, 10]
    assert m["templates"][0]["params"]["k"] == 2
    assert "wrote 40 samples" in stdout


def test_console_script_help() -> None:
    exe = Path(sys.executable).with_name("cookbook")
    if not exe.exists():
        pytest.skip("console script not installed in this environment")
    res = subprocess.run([str(exe), "generate", "--help"], capture_output=True, text=True)
    assert res.returncode == 0
    assert "--template" in res.stdout and "NAME[:WEIGHT]" in res.stdout


def _cookbook(*argv: str) -> subprocess.CompletedProcess[str]:
    """The installed ``cookbook`` command, as a user runs it (a fresh process)."""
    exe = Path(sys.executable).with_name("cookbook")
    if not exe.exists():
        pytest.fail(f"console script {exe} missing: run `pip install -e .` in the venv")
    return subprocess.run([str(exe), *argv], capture_output=True, text=True, timeout=300)


def test_generate_command_writes_identical_bytes_for_1_and_2_workers(tmp_path: Path) -> None:
    common = ["generate", "-t", "document_qa:2", "-t", "last_word", "-n", "6000", "--seed", "3"]
    for workers in ("1", "2"):
        res = _cookbook(*common, "--workers", workers, "--out", str(tmp_path / workers))
        assert res.returncode == 0, res.stderr
    one = (tmp_path / "1" / "data.jsonl").read_bytes()
    assert one == (tmp_path / "2" / "data.jsonl").read_bytes()
    assert one.count(b"\n") == 6000
    manifest = json.loads((tmp_path / "2" / "manifest.json").read_text())
    assert manifest["workers"] == 2 and manifest["start_method"] == "fork"
    assert manifest["layout"] == "compact"


def test_generate_layout_option(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    for layout in ("compact", "full"):
        code, _, _ = run(
            capsys, "generate", "-t", "document_qa", "-n", "5", "--layout", layout,
            "--out", str(tmp_path / layout),
        )  # fmt: skip
        assert code == 0
    compact = json.loads((tmp_path / "compact" / "data.jsonl").read_text().splitlines()[0])
    full = json.loads((tmp_path / "full" / "data.jsonl").read_text().splitlines()[0])
    assert "messages" not in compact and "in_prompt" in compact["meta"]
    assert full["messages"][0]["content"] == full["prompt"] and "in_prompt" not in full["meta"]
    assert full["meta"]["parent"]["document"] in compact["prompt"]
    with pytest.raises(SystemExit) as info:
        main(["generate", "-t", "document_qa", "-n", "5", "--layout", "wide"])
    assert info.value.code == 2 and "invalid choice: 'wide'" in capsys.readouterr().err


def test_quiet_eval_prints_no_progress_bars(tmp_path: Path, shared_data: Path) -> None:
    """--quiet silences the libraries' bars too (transformers' "Loading weights" was shown)."""
    argv = ["eval", "--task", "piqa", "--limit", "1", "--data-dir", str(shared_data)]
    res = _cookbook(*argv, "--backend", "transformers", "--quiet", "--out", str(tmp_path / "q"))
    assert res.returncode == 0, res.stderr
    assert "piqa" in res.stdout and res.stderr == ""


@pytest.mark.parametrize("argv", [["--help"], ["templates", "list"]])
def test_light_commands_import_nothing_heavy(argv: list[str]) -> None:
    """``cookbook --help`` and ``templates list`` start fast: no numpy, pandas, torch..."""
    probe = (
        "import sys\n"
        "from cookbook_core.cli.main import main\n"
        "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
        "heavy = ('numpy', 'pandas', 'pyarrow', 'torch', 'transformers', 'datasets', 'tqdm')\n"
        "print('HEAVY=' + ','.join(m for m in heavy if m in sys.modules))\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", probe, *argv], capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().splitlines()[-1] == "HEAVY="


def test_serve_start_ticker_rewrites_a_terminal_line_and_logs_every_15_s(capsys) -> None:
    from cookbook_core.cli.serve import start_progress

    tick = start_progress(quiet=False, tty=False)
    for s in (0, 0.5, 1, 14.9, 15, 29, 31, 31.5):
        tick(s)
    assert capsys.readouterr().err.splitlines() == [
        "starting vLLM (0 s)",
        "starting vLLM (15 s)",
        "starting vLLM (31 s)",
    ]
    tty = start_progress(quiet=False, tty=True)
    tty(1)
    tty(2)
    assert capsys.readouterr().err == "\rstarting vLLM (1 s)\rstarting vLLM (2 s)"
    start_progress(quiet=True, tty=True)(3)
    assert capsys.readouterr().err == ""
