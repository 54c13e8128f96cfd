"""Bad input never gives a traceback (issue 19): every case exits with code 2 and one line
``cookbook: error: ...`` from the real ``cookbook`` command, leaves nothing behind, and a
cancel during model loading takes effect within seconds.

Each test drives :func:`cookbook_core.cli.main.main` with a temporary ``COOKBOOK_HOME``
(except the cancel test, which needs the session's converted embedded model).  Read-only
filesystems are real ones: a bubblewrap read-only bind mount (``EROFS`` even for root),
skipped, saying so, where bubblewrap cannot run.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from cookbook_core.cli.main import main
from cookbook_core.jobs import store as jobs

ROOT = Path(__file__).resolve().parent.parent
GOOD_ROW = {"prompt": "What is 2+2?", "completion": "4"}


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh, not yet created workspace root for one test."""
    path = tmp_path / "home"
    monkeypatch.setenv("COOKBOOK_HOME", str(path))
    return path


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """Run ``cookbook ARGV``; (exit code, stderr)."""
    capsys.readouterr()
    code = main(list(argv))
    return code, capsys.readouterr().err


def _bad(capsys: pytest.CaptureFixture[str], message: str, *argv: str) -> None:
    """``cookbook ARGV`` exits with 2 and prints exactly ``cookbook: error: MESSAGE``."""
    code, err = _cli(capsys, *argv)
    assert (code, err) == (2, f"cookbook: error: {message}\n")


def _jsonl(path: Path, *lines: str | dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "".join((json.dumps(x) if isinstance(x, dict) else x) + "\n" for x in lines),
        encoding="utf-8",
    )
    return path


def _dataset(folder: Path, manifest: str | dict | None, rows: bytes | None = None) -> Path:
    """A dataset folder: ``data.jsonl`` holding ``rows`` (when given) and a manifest."""
    folder.mkdir(parents=True, exist_ok=True)
    if rows is not None:
        (folder / "data.jsonl").write_bytes(rows)
    if manifest is not None:
        text = manifest if isinstance(manifest, str) else json.dumps(manifest)
        (folder / "manifest.json").write_text(text, encoding="utf-8")
    return folder


def _nothing_queued(home: Path) -> None:
    assert not (home / "runs").exists() and not (home / "jobs.db").exists()


GARBAGE = bytes(range(255, -1, -1)) * 4  # binary, starting with bytes that are not UTF-8


# ----------------------------------------------------------------------------------
# cookbook train --data


def _train_cases(tmp: Path) -> list[tuple[Path, str]]:
    ok = json.dumps(GOOD_ROW).encode() + b"\n"
    manifest = {"data": "data.jsonl", "format": "jsonl", "n": 1}
    outside = _jsonl(tmp / "elsewhere" / "rows.jsonl", GOOD_ROW)
    d = {
        "binary_file": tmp / "garbage.jsonl",
        "binary_dataset": _dataset(tmp / "bin", manifest, GARBAGE),
        "list_rows": _jsonl(tmp / "lists.jsonl", "[1, 2]"),
        "number_rows": _jsonl(tmp / "numbers.jsonl", GOOD_ROW, "42"),
        "meta_not_json": _jsonl(tmp / "meta.jsonl", {**GOOD_ROW, "meta": "{not json"}),
        "meta_a_list": _jsonl(tmp / "meta_list.jsonl", {**GOOD_ROW, "meta": [1, 2]}),
        "manifest_broken": _dataset(tmp / "broken", '{"data": "data.jsonl", ', ok),
        "manifest_binary": _dataset(tmp / "binman", None, ok),
        "manifest_incomplete": _dataset(tmp / "incomplete", {"n": 1}, ok),
        "manifest_no_format": _dataset(tmp / "noformat", {"data": "data.jsonl"}, ok),
        "manifest_missing_file": _dataset(tmp / "missing", {**manifest, "data": "gone.jsonl"}),
        "manifest_traversal": _dataset(
            tmp / "traversal", {**manifest, "data": "../elsewhere/rows.jsonl"}
        ),
        "manifest_absolute": _dataset(tmp / "absolute", {**manifest, "data": str(outside)}),
    }
    d["binary_file"].write_bytes(GARBAGE)
    (d["manifest_binary"] / "manifest.json").write_bytes(GARBAGE)
    m = {k: v / "manifest.json" for k, v in d.items()}
    return [
        (d["binary_file"], f"{d['binary_file']}:1: not UTF-8 text (is it a binary file?)"),
        (
            d["binary_dataset"],
            f"{d['binary_dataset'].resolve()}/data.jsonl:1: not UTF-8 text (is it a binary file?)",
        ),
        (d["list_rows"], f"{d['list_rows']}:1: expected a JSON object per line"),
        (d["number_rows"], f"{d['number_rows']}:2: expected a JSON object per line"),
        (d["meta_not_json"], f"{d['meta_not_json']}:1: field 'meta' is text but not valid JSON"),
        (d["meta_a_list"], f"{d['meta_a_list']}:1: field 'meta' must be a JSON object"),
        (
            d["manifest_broken"],
            f"{m['manifest_broken']}: not valid JSON (Expecting property name enclosed in "
            "double quotes at line 1)",
        ),
        (d["manifest_binary"], f"{m['manifest_binary']}: not UTF-8 text (is it a binary file?)"),
        (
            d["manifest_incomplete"],
            f"{m['manifest_incomplete']}: field 'data' (the data file's name) is missing or "
            "not text",
        ),
        (
            d["manifest_no_format"],
            f"{m['manifest_no_format']}: field 'format' must be one of jsonl, parquet, hf, "
            "got None",
        ),
        (
            d["manifest_missing_file"],
            f"{m['manifest_missing_file']}: data file 'gone.jsonl' does not exist in "
            f"{d['manifest_missing_file']}",
        ),
        (
            d["manifest_traversal"],
            f"{m['manifest_traversal']}: data '../elsewhere/rows.jsonl' points outside the "
            "dataset folder",
        ),
        (
            d["manifest_absolute"],
            f"{m['manifest_absolute']}: data '{outside}' points outside the dataset folder",
        ),
    ]


TRAIN_CASES = [
    "binary_file",
    "binary_dataset",
    "list_rows",
    "number_rows",
    "meta_not_json",
    "meta_a_list",
    "manifest_broken",
    "manifest_binary",
    "manifest_incomplete",
    "manifest_no_format",
    "manifest_missing_file",
    "manifest_traversal",
    "manifest_absolute",
]


@pytest.mark.parametrize("case", range(len(TRAIN_CASES)), ids=TRAIN_CASES)
def test_train_with_bad_data_exits_2_before_a_job_is_queued(
    case: int, home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, message = _train_cases(tmp_path / "data")[case]
    _bad(capsys, message, "train", "--data", str(data), "--background")
    _nothing_queued(home)


def test_train_with_bad_natural_data_exits_2(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = _jsonl(tmp_path / "good.jsonl", GOOD_ROW)
    natural = tmp_path / "natural.jsonl"
    natural.write_bytes(b'{"prompt": "a", "completion": "b"}\n' + GARBAGE)
    message = f"{natural}:2: not UTF-8 text (is it a binary file?)"
    _bad(capsys, message, "train", "--data", str(good), "--natural-data", str(natural))
    _nothing_queued(home)


# ----------------------------------------------------------------------------------
# cookbook mix optimize / what-if

GOOD_MATRIX = "template,squad,arc\nbase,0.1,0.3\ndocument_qa,0.5,0.25\nmultiple_choice_qa,0.2,0.4\n"

MATRIX_CASES = {
    "non_numeric": (
        GOOD_MATRIX.replace("0.25", "abc"),
        "the accuracy matrix has 1 non-numeric cell(s): (document_qa, arc) = 'abc'",
    ),
    "duplicated_row": (
        GOOD_MATRIX + "document_qa,0.6,0.1\n",
        "the accuracy matrix has duplicated template row(s): document_qa "
        "(each template and each task once)",
    ),
    "duplicated_column": (
        "template,squad,squad\nbase,0.1,0.3\ndocument_qa,0.5,0.25\n",
        "the accuracy matrix has duplicated task column(s): squad "
        "(each template and each task once)",
    ),
    "overflowing_cell": (
        GOOD_MATRIX.replace("0.5", "1e309"),
        "the accuracy matrix has 1 infinite cell(s) (too large to be an accuracy): "
        "(document_qa, squad)",
    ),
    "too_many_cells": (GOOD_MATRIX + "yes_no_qa,0.1,0.2,0.3\n", None),
    "binary": (None, "not UTF-8 text (is it a binary file?)"),
}


@pytest.mark.parametrize("command", ["optimize", "what-if"])
@pytest.mark.parametrize("case", list(MATRIX_CASES))
def test_mix_with_a_bad_matrix_exits_2(
    case: str, command: str, home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text, message = MATRIX_CASES[case]
    path = tmp_path / "A.csv"
    if text is None:
        path.write_bytes(GARBAGE)
    else:
        path.write_text(text, encoding="utf-8")
    if message is None:  # the row's line number in the file
        message = "5: 4 cells but the header has 3 columns"
        expected = f"{path}:{message}"
    else:
        expected = f"{path}: {message}"
    extra = ["--weights", "document_qa=1"] if command == "what-if" else []
    _bad(capsys, expected, "mix", command, "--matrix", str(path), *extra)


WEIGHT_CASES = {
    "overflow": (
        "document_qa=1e309",
        "--weights 'document_qa=1e309': the weight must be a finite number >= 0",
    ),
    "inf": (
        "document_qa=inf",
        "--weights 'document_qa=inf': the weight must be a finite number >= 0",
    ),
    "nan": (
        "document_qa=nan",
        "--weights 'document_qa=nan': the weight must be a finite number >= 0",
    ),
    "negative": (
        "document_qa=-1",
        "--weights 'document_qa=-1': the weight must be a finite number >= 0",
    ),
    "sum_overflows": (
        "document_qa=1e308,multiple_choice_qa=1e308",
        "the weights are too large: their sum overflows (use shares, e.g. 0.3)",
    ),
    "given_twice": (
        "document_qa=0.5,document_qa=0.5",
        "--weights: 'document_qa' is given more than once",
    ),
    "not_a_number": ("document_qa=lots", "--weights 'document_qa=lots': expected NAME=WEIGHT"),
}


@pytest.mark.parametrize("case", list(WEIGHT_CASES))
def test_mix_what_if_with_bad_weights_exits_2(
    case: str, home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    weights, message = WEIGHT_CASES[case]
    path = tmp_path / "A.csv"
    path.write_text(GOOD_MATRIX, encoding="utf-8")
    argv = ["mix", "what-if", "--matrix", str(path), "--weights", weights, "--normalize"]
    _bad(capsys, message, *argv)


@pytest.mark.parametrize(
    "option, message",
    [
        (
            ["--task-weight", "squad=1e309"],
            "--task-weight 'squad=1e309': the weight must be a finite number >= 0",
        ),
        (
            ["--task-weight", "squad=1e308", "--task-weight", "arc=1e308"],
            "the task weights are too large: their sum overflows",
        ),
        (
            ["--objective", "entropy", "--temperature", "inf"],
            "temperature must be a finite number > 0 for the entropy objective, got inf",
        ),
        (
            ["--bound", "document_qa=nan:1"],
            "bounds for 'document_qa' must satisfy 0 <= low <= high <= 1, got (nan, 1.0)",
        ),
    ],
)
def test_mix_optimize_with_bad_numbers_exits_2(
    option: list[str], message: str, home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "A.csv"
    path.write_text(GOOD_MATRIX, encoding="utf-8")
    out = tmp_path / "result.json"
    _bad(capsys, message, "mix", "optimize", "--matrix", str(path), *option, "--out", str(out))
    assert not out.exists()


# ----------------------------------------------------------------------------------
# cookbook eval --data task=FILE

SQUAD = {"context": "Paris is in France.", "question": "Where is Paris?", "answers": ["France"]}
ARC = {"question": "2+2?", "choices": ["3", "4"], "answer_index": 1}

EVAL_CASES: dict[str, tuple[str, str, bytes, str]] = {
    # name: (task, file name, bytes, message after "<path>")
    "binary_jsonl": ("squad", "d.jsonl", GARBAGE, ":1: not UTF-8 text (is it a binary file?)"),
    "binary_csv": ("squad", "d.csv", GARBAGE, ": not UTF-8 text (is it a binary file?)"),
    "binary_parquet": (
        "squad",
        "d.parquet",
        GARBAGE,
        ": not a readable Parquet file (Could not open Parquet input source '{path}': Parquet "
        "magic bytes not found in footer. Either the file is corrupted or this is not a "
        "parquet file.)",
    ),
    "not_json": ("squad", "d.jsonl", b"context: Paris\n", ":1: not valid JSON (Expecting value)"),
    "a_list_per_line": ("squad", "d.jsonl", b"[1, 2]\n", ":1: expected a JSON object per line"),
    "context_a_list": (
        "squad",
        "d.jsonl",
        json.dumps({**SQUAD, "context": ["a"]}).encode(),
        ", line 1: field 'context' must be text, got list",
    ),
    "answers_a_number": (
        "squad",
        "d.jsonl",
        json.dumps({**SQUAD, "answers": 5}).encode(),
        ", line 1: field 'answers' must be a non-empty list of texts",
    ),
    "answers_empty": (
        "squad",
        "d.jsonl",
        json.dumps({**SQUAD, "answers": []}).encode(),
        ", line 1: field 'answers' must be a non-empty list of texts",
    ),
    "answer_index_bool": (
        "arc_easy",
        "d.jsonl",
        json.dumps({**ARC, "answer_index": True}).encode(),
        ", line 1: field 'answer_index' must be an integer, got bool",
    ),
    "choices_of_objects": (
        "arc_easy",
        "d.jsonl",
        json.dumps({**ARC, "choices": [{"a": 1}, {"b": 2}]}).encode(),
        ", line 1: field 'choices' must be a non-empty list of texts",
    ),
    "boolq_answer": (
        "boolq",
        "d.jsonl",
        json.dumps({"context": "c", "question": "q", "answer": "perhaps"}).encode(),
        ", line 1: field 'answer' must be yes or no, got 'perhaps'",
    ),
    "em_label": (
        "em_beer",
        "d.jsonl",
        json.dumps({"left_text": "a", "right_text": "b", "answer": "banana"}).encode(),
        ", line 1: the label must be yes/no or 1/0, got 'banana'",
    ),
    "csv_too_many_cells": (
        "squad",
        "d.csv",
        b"context,question,answers\nc,q,a,extra\n",
        ":2: more cells than the header has",
    ),
}


@pytest.mark.parametrize("case", list(EVAL_CASES))
def test_eval_with_garbage_data_exits_2_before_the_model_loads(
    case: str, home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    task, name, content, tail = EVAL_CASES[case]
    path = tmp_path / name
    path.write_bytes(content + (b"\n" if not content.endswith(b"\n") else b""))
    out = tmp_path / "run"
    message = f"{path}{tail.replace('{path}', str(path))}"
    # --backend transformers: ``auto`` first looks for a running server for the model
    argv = ["eval", "--task", task, "--data", f"{task}={path}", "--backend", "transformers"]
    argv += ["--out", str(out)]
    _bad(capsys, message, *argv)
    assert not out.exists()


# ----------------------------------------------------------------------------------
# --out and COOKBOOK_HOME


def _out_commands(tmp: Path) -> dict[str, tuple[list[str], bool]]:
    """Each command that takes --out: (argv without --out, whether --out is a folder)."""
    matrix = tmp / "A.csv"
    matrix.write_text(GOOD_MATRIX, encoding="utf-8")
    squad = _jsonl(tmp / "squad.jsonl", SQUAD)
    return {
        "generate": (["generate", "-t", "document_qa", "-n", "5"], True),
        "mix optimize": (["mix", "optimize", "--matrix", str(matrix)], False),
        "mix build": (["mix", "build", "--weights", "document_qa=1", "-n", "5"], True),
        "eval": (["eval", "--task", "squad", "--data", f"squad={squad}"], True),
        "align": (["align", "--template", "yes_no_qa", "--task", "boolq"], False),
        "experiment report": (["experiment", "report", "--no-figures"], True),
        "selfguide run": (["selfguide", "run", "--task", "task036"], True),
    }


OUT_COMMANDS = [
    "generate",
    "mix optimize",
    "mix build",
    "eval",
    "align",
    "experiment report",
    "selfguide run",
]


@pytest.mark.parametrize("command", OUT_COMMANDS)
def test_out_under_a_file_exits_2(
    command: str, home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv, _ = _out_commands(tmp_path)[command]
    blocker = tmp_path / "notes.txt"
    blocker.write_text("a file, not a folder\n")
    out = blocker / "sub" / "out"
    message = f"--out {out}: cannot be created: {blocker} is a file, not a folder"
    _bad(capsys, message, *argv, "--out", str(out))
    assert blocker.read_text() == "a file, not a folder\n"


@pytest.mark.parametrize("command", OUT_COMMANDS)
def test_out_of_the_wrong_kind_exits_2(
    command: str, home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv, folder = _out_commands(tmp_path)[command]
    if folder:
        out = tmp_path / "existing.txt"
        out.write_text("keep me\n")
        message = f"--out {out}: it is an existing file, not a folder"
    else:
        out = tmp_path / "existing_folder"
        out.mkdir()
        message = f"--out {out}: it is an existing folder, not a file"
    _bad(capsys, message, *argv, "--out", str(out))
    assert out.is_dir() or out.read_text() == "keep me\n"


def _bwrap_read_only(folder: Path) -> list[str]:
    """A command prefix that runs with ``folder`` as a read-only bind mount (a real
    read-only filesystem: writes fail with EROFS, even for root)."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        pytest.skip("bubblewrap (bwrap) is not installed: no way to mount a read-only folder")
    prefix = [bwrap, "--dev-bind", "/", "/", "--ro-bind", str(folder), str(folder)]
    probe = subprocess.run([*prefix, "touch", str(folder / "probe")], capture_output=True)
    if b"Read-only file system" not in probe.stderr:
        pytest.skip(f"bwrap cannot mount a read-only folder here: {probe.stderr.decode()[:200]}")
    return prefix


def _cli_in(prefix: list[str], home: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COOKBOOK_HOME": str(home), "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [*prefix, sys.executable, "-m", "cookbook_core.cli.main", *argv],
        capture_output=True,
        text=True,
        env=env,
        cwd=str(ROOT),
        timeout=120,
    )


@pytest.mark.parametrize("command", ["mix optimize", "generate", "eval"])
def test_out_on_a_read_only_filesystem_exits_2(command: str, home: Path, tmp_path: Path) -> None:
    argv, _ = _out_commands(tmp_path)[command]
    locked = tmp_path / "locked"
    locked.mkdir()
    prefix = _bwrap_read_only(locked)
    out = locked / "out"
    res = _cli_in(prefix, home, *argv, "--out", str(out))
    message = f"--out {out}: cannot be written: {locked} is on a read-only filesystem"
    assert (res.returncode, res.stderr.splitlines()[-1:]) == (2, [f"cookbook: error: {message}"])
    assert "Traceback" not in res.stderr and not out.exists()


def test_home_under_a_file_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    home = blocker / "home"
    monkeypatch.setenv("COOKBOOK_HOME", str(home))
    message = f"COOKBOOK_HOME {home}: cannot be created: {blocker} is a file, not a folder"
    for argv in (["jobs", "list"], ["generate", "-t", "document_qa", "-n", "5"]):
        _bad(capsys, message, *argv)


def test_home_that_is_a_file_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home"
    home.write_text("x")
    monkeypatch.setenv("COOKBOOK_HOME", str(home))
    _bad(capsys, f"COOKBOOK_HOME {home}: it is an existing file, not a folder", "jobs", "list")


def test_home_on_a_read_only_filesystem_exits_2(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    prefix = _bwrap_read_only(locked)
    res = _cli_in(prefix, locked / "home", "jobs", "list")
    message = (
        f"COOKBOOK_HOME {locked / 'home'}: cannot be written: {locked} is on a read-only filesystem"
    )
    assert (res.returncode, res.stderr) == (2, f"cookbook: error: {message}\n")


# ----------------------------------------------------------------------------------
# A corrupt, truncated or emptied job database


def _home_with_jobs(home: Path, n: int = 3) -> list[str]:
    """``n`` queued generate jobs in ``home`` (never started), the database checkpointed so
    that ``jobs.db`` alone holds them."""
    ids = []
    for i in range(n):
        config = {
            "config": {"sources": [{"template": "document_qa"}], "n": 5},
            "out": str(home / f"ds{i}"),
        }
        ids.append(jobs.submit("generate", config, start=False).id)
    con = sqlite3.connect(jobs.db_path())
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    for suffix in ("-wal", "-shm"):
        jobs.db_path().with_name("jobs.db" + suffix).unlink(missing_ok=True)
    return ids


def _garbage(db: Path) -> None:
    db.write_bytes(GARBAGE * 16)


def _truncate(db: Path) -> None:
    data = db.read_bytes()
    assert len(data) >= 4 * 4096
    db.write_bytes(data[: 2 * 4096])


def _overwrite_pages(db: Path) -> None:
    data = bytearray(db.read_bytes())
    data[4096:] = bytes(len(data) - 4096)  # every page after the header page zeroed
    db.write_bytes(bytes(data))


CORRUPTIONS: dict[str, tuple[Callable[[Path], None], str]] = {
    "garbage": (_garbage, "file is not a database"),
    "truncated": (_truncate, "database disk image is malformed"),
    "pages_zeroed": (_overwrite_pages, "database disk image is malformed"),
}


@pytest.mark.parametrize("case", list(CORRUPTIONS))
def test_corrupt_job_database_says_so_keeps_a_backup_and_repairs(
    case: str, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = _home_with_jobs(home)
    before = {i: jobs.get(i) for i in ids}
    db = jobs.db_path()
    damage, detail = CORRUPTIONS[case]
    damage(db)
    corrupt = db.read_bytes()
    code, err = _cli(capsys, "jobs", "list")
    backups = sorted(home.glob("jobs.db.corrupt-*[!l]"))
    assert len(backups) == 1 and backups[0].read_bytes() == corrupt
    message = (
        f"the job database {db} is corrupt ({detail}); a copy is kept at {backups[0]}; its 3 "
        f"run folder(s) in {home / 'runs'} are untouched: `cookbook jobs repair` rebuilds the "
        "database from them"
    )
    assert (code, err) == (2, f"cookbook: error: {message}\n")
    assert _cli(capsys, "jobs", "list")[0] == 2  # every time, one backup
    assert sorted(home.glob("jobs.db.corrupt-*[!l]")) == backups

    code, out = main(["jobs", "repair"]), capsys.readouterr().out
    assert code == 0 and f"from 3 run folder(s); the old database is kept at {backups[0]}" in out
    rows = jobs.list_jobs(refresh=False)  # (``jobs list`` would start the queued jobs)
    assert [j.id for j in rows] == ids[::-1]  # newest first, as before
    for j in rows:
        old = before[j.id]
        assert (j.kind, j.state, j.config, j.run_dir) == (
            old.kind,
            "queued",
            old.config,
            old.run_dir,
        )


@pytest.mark.parametrize("how", ["emptied", "deleted"])
def test_emptied_job_database_never_reads_as_no_jobs(
    how: str, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _home_with_jobs(home, 2)
    db = jobs.db_path()
    if how == "emptied":
        db.write_bytes(b"")
    else:
        db.unlink()
    message = (
        f"the job database {db} {'is empty (0 bytes)' if how == 'emptied' else 'was missing'}, "
        f"but 2 job run folder(s) exist in {home / 'runs'} (was it deleted or truncated?): "
        "`cookbook jobs repair` rebuilds the database from them"
    )
    code, err = _cli(capsys, "jobs", "list")
    assert (code, err) == (2, f"cookbook: error: {message}\n")
    assert main(["jobs", "repair"]) == 0
    assert len(jobs.list_jobs(refresh=False)) == 2


# ----------------------------------------------------------------------------------
# A cancel during model loading


def test_cancel_during_model_loading_takes_effect_within_seconds(
    embedded_model: Path, tiny_dataset: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = {"data": str(tiny_dataset), "steps": 50, "batch_size": 2, "max_length": 64}
    job = jobs.submit("train", config)
    log = job.run_dir / "log.txt"
    deadline = time.time() + 60
    while "loading default" not in (log.read_text() if log.is_file() else ""):
        assert time.time() < deadline, "the worker never started loading"
        assert jobs.get(job.id).active, jobs.read_log(job.id)
        time.sleep(0.05)
    started = time.time()
    assert main(["jobs", "cancel", job.id, "--wait"]) == 0
    took = time.time() - started
    job = jobs.get(job.id)
    assert (job.state, job.reason) == ("cancelled", "cancelled"), jobs.read_log(job.id)
    assert capsys.readouterr().out.strip().endswith(f"job {job.id} is cancelled")
    assert took < 10, f"the cancel took {took:.1f} s"
    # stopped while loading: no optimizer step ran, no checkpoint was written
    assert not (job.run_dir / "metrics.jsonl").exists(), jobs.read_log(job.id)
    assert not (job.run_dir / "checkpoints").exists()
