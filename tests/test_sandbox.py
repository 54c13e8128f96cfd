"""The sandbox: a hostile corpus, each case contained with a clear error and the
parent unharmed; static validation with line and column; safe saving; valid
templates preview correctly."""

from __future__ import annotations

import os
import socket
import textwrap
import threading
import time
from pathlib import Path

import pytest

from cookbook_core import discovery
from cookbook_core.errors import BadInput
from cookbook_core.sandbox import runner as sandbox
from cookbook_core.sandbox.runner import Limits, SandboxRejected, run_source, validate_source

HEADER = '''
"""Hostile test template."""
import random
from typing import Annotated
from cookbook_core.templates import Example, Range, template
'''


def tpl(body: str, extra_imports: str = "") -> str:
    """A template whose generator runs ``body`` (indented) and then returns a sample."""
    body = textwrap.indent(textwrap.dedent(body).strip("\n"), "    ")
    return (
        HEADER
        + extra_imports
        + '''

@template(name="hostile", family="search", task="squad")
def hostile(rng, vocab, *, k: Annotated[int, Range(1, 3), "k"] = 1) -> Example:
    """A test template that tries something it should not."""
'''
        + body
        + """
    return Example("p", "c", {"parent": {}, "child": {}})
"""
    )


FAST = Limits(cpu_seconds=2, wall_seconds=6, memory_mb=1024)


def contained(source: str, **kw: object) -> sandbox.SandboxResult:
    """Run with static validation bypassed: the runtime layer alone must hold."""
    res = run_source(source, n=2, validate=False, limits=FAST, **kw)
    assert not res.ok, "hostile code ran to completion"
    assert res.error_type and res.message
    return res


# ----------------------------------------------------------------------------------
# Runtime containment (static checks bypassed on purpose)


def test_infinite_loop_is_stopped() -> None:
    t0 = time.monotonic()
    res = run_source(
        tpl("while True:\n    pass"),
        n=1,
        validate=False,
        limits=Limits(cpu_seconds=1, wall_seconds=4),
    )
    assert not res.ok
    assert time.monotonic() - t0 < 8
    assert res.error_type in ("LimitExceeded", "Crashed")
    assert "CPU" in res.message or "timed out" in res.message


def test_memory_bomb_hits_the_address_space_limit() -> None:
    res = contained(tpl("x = bytearray(8 * 1024 ** 3)"))
    assert res.error_type == "MemoryError"
    assert res.line is not None


def test_fork_bomb_is_refused() -> None:
    res = contained(tpl("while True:\n    os.fork()", "import os\n"))
    assert res.error_type == "PermissionError" and "os.fork" in res.message


def test_subprocess_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "created_by_subprocess"
    res = contained(tpl(f"subprocess.run(['touch', {str(target)!r}])", "import subprocess\n"))
    assert res.error_type == "PermissionError"
    assert not target.exists()


def test_deep_recursion_is_an_error() -> None:
    res = contained(tpl("def f(n):\n    return f(n + 1)\nf(0)"))
    assert res.error_type == "RecursionError"


def test_writing_outside_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "pwned.txt"
    res = contained(tpl(f"open({str(target)!r}, 'w').write('x')"))
    assert res.error_type == "PermissionError" and "writing" in res.message
    assert not target.exists()


def test_environment_secret_is_not_visible(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COOKBOOK_TEST_SECRET", "s3cr3t-value")
    source = (
        tpl("")
        .replace(
            'return Example("p", "c"',
            'return Example(os.environ.get("COOKBOOK_TEST_SECRET", "none"), "c"',
        )
        .replace("from typing", "import os\nfrom typing")
    )
    res = run_source(source, n=1, validate=False, limits=FAST)
    assert res.ok
    assert res.samples[0]["prompt"] == "none"


def test_reading_the_parents_environment_file_is_refused() -> None:
    res = contained(tpl(f"open('/proc/{os.getpid()}/environ').read()"))
    assert res.error_type == "PermissionError" and "reading" in res.message


def test_network_connection_is_refused() -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(0.2)
    port = server.getsockname()[1]
    accepted: list[object] = []
    done = threading.Event()

    def accept() -> None:
        while not done.is_set():
            try:
                accepted.append(server.accept())
                return
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept)
    thread.start()
    res = contained(
        tpl(f"socket.create_connection(('127.0.0.1', {port}), timeout=2)", "import socket\n")
    )
    done.set()
    thread.join()
    server.close()
    assert res.error_type == "PermissionError" and "socket" in res.message
    assert not accepted, "the sandboxed code reached the loopback server"


def test_printing_gigabytes_is_capped() -> None:
    t0 = time.monotonic()
    res = contained(tpl("while True:\n    print('x' * 1_000_000)"))
    assert time.monotonic() - t0 < 8
    assert res.error_type in ("LimitExceeded", "Crashed")


def test_flooding_the_result_pipe_hits_the_output_cap() -> None:
    res = contained(
        tpl(
            "for fd in (3, 4, 5):\n    try:\n        while True:\n"
            "            os.write(fd, b'x' * 65536)\n    except OSError:\n        pass",
            "import os\n",
        )
    )
    assert res.error_type == "LimitExceeded" and "output exceeded" in res.message


def test_killing_the_parent_is_refused() -> None:
    res = contained(tpl("os.kill(os.getppid(), signal.SIGKILL)", "import os, signal\n"))
    assert res.error_type == "PermissionError"
    assert os.getpid()  # still here


def test_ctypes_through_builtins_is_refused() -> None:
    res = contained(tpl("__builtins__['__import__']('ctypes').CDLL(None)"))
    assert res.error_type in ("PermissionError", "TypeError")


def test_wrong_return_type_is_reported() -> None:
    source = tpl("").replace(
        'return Example("p", "c", {"parent": {}, "child": {}})', 'return ("p", "c")'
    )
    res = run_source(source, n=1, limits=FAST)
    assert not res.ok and res.error_type == "TypeError" and "expected Example" in res.message


def test_runtime_error_reports_the_users_line() -> None:
    res = run_source(tpl("x = 1 // 0"), n=1, limits=FAST)
    assert not res.ok and res.error_type == "ZeroDivisionError"
    src_lines = tpl("x = 1 // 0").splitlines()
    assert src_lines[res.line - 1].strip() == "x = 1 // 0"


# ----------------------------------------------------------------------------------
# Static validation


@pytest.mark.parametrize(
    "code, needle",
    [
        ("import os", "import of 'os' is not allowed"),
        ("import importlib", "import of 'importlib' is not allowed"),
        ("from ctypes import CDLL", "import from 'ctypes' is not allowed"),
        ("import subprocess as sp", "import of 'subprocess' is not allowed"),
        ("x = __builtins__['__import__']('os')", "dunder name '__builtins__'"),
        ("x = __import__('os')", "'__import__' is not allowed"),
        ("x = getattr(random, '_os')", "'getattr' is not allowed"),
        ("x = random._os", "private or dunder attribute '_os'"),
        ("x = ''.__class__.__mro__[1].__subclasses__()", "'__class__'"),
        ("import typing\nx = typing.sys.modules", "attribute 'sys' is not allowed"),
        ("x = eval('1')", "'eval' is not allowed"),
        ("x = open('/etc/passwd')", "'open' is not allowed"),
        ("x = '{0.__class__}'.format(1)", "format strings"),
    ],
)
def test_static_rejections_have_line_and_column(code: str, needle: str) -> None:
    source = tpl(code)
    problems = validate_source(source)
    assert problems, "not rejected"
    hit = [p for p in problems if needle in p.message]
    assert hit, [str(p) for p in problems]
    lines = source.splitlines()
    p = hit[0]
    assert p.line >= 1 and p.col >= 1
    assert (
        code.splitlines()[-1].strip() in lines[p.line - 1]
        or code.splitlines()[0] in lines[p.line - 1]
    )
    with pytest.raises(SandboxRejected):
        run_source(source, n=1)


def test_syntax_error_has_position() -> None:
    problems = validate_source("x = (\n")
    assert len(problems) == 1 and problems[0].line >= 1 and "syntax error" in problems[0].message


def test_missing_decorator_and_bad_signature() -> None:
    assert "no function decorated" in validate_source("def f(rng, vocab):\n    pass\n")[0].message
    bad = HEADER + "\n@template(name='x', family='search', task='t')\ndef x(rng, *, k):\n    pass\n"
    messages = " | ".join(p.message for p in validate_source(bad))
    assert "(rng, vocab)" in messages and "needs a default" in messages
    assert "needs a type annotation" in messages


# ----------------------------------------------------------------------------------
# Valid templates and saving


@pytest.mark.parametrize("name", [n for n in discovery.names() if n != "rhyming_poetry"])
def test_shipped_templates_preview_in_the_sandbox(name: str, vocab: tuple[str, ...]) -> None:
    tpl_obj = discovery.get(name)
    source = Path(tpl_obj.source_file).read_text()
    assert validate_source(source) == []
    res = run_source(source, n=8, seed=3)
    assert res.ok, res.error
    local = tpl_obj.preview(vocab, 8, seed=3)
    assert [s["prompt"] for s in res.samples] == [e.prompt for e in local]
    assert all(s["follows_rule"] for s in res.samples)
    assert res.elapsed_s < 5
    assert res.templates[0]["name"] == name


def test_params_are_checked_in_the_sandbox() -> None:
    source = Path(discovery.get("document_qa").source_file).read_text()
    res = run_source(source, n=2, params={"k": 99})
    assert not res.ok and res.error_type == "TemplateError" and "out of range" in res.message


def test_save_template_validates_names_and_keeps_history(tmp_path: Path) -> None:
    good = tpl("")
    path = sandbox.save_template("my_tpl", good, folder=tmp_path)
    assert path == tmp_path / "my_tpl.py" and path.read_text() == good
    changed = good.replace('"p"', '"q"')
    sandbox.save_template("my_tpl", changed, folder=tmp_path)
    assert path.read_text() == changed
    hist = sandbox.history("my_tpl", folder=tmp_path)
    assert len(hist) == 1 and hist[0].read_text() == good
    for bad in ("../evil", "a/b", "Upper", "", "x" * 80, "1abc", "..", "a.py"):
        with pytest.raises(BadInput):
            sandbox.save_template(bad, good, folder=tmp_path)
    with pytest.raises(SandboxRejected):
        sandbox.save_template("my_tpl", tpl("import os"), folder=tmp_path)
    assert path.read_text() == changed  # a rejected save leaves the file alone
    assert sorted(p.name for p in tmp_path.iterdir()) == [".history", "my_tpl.py"]


def test_cli_check_and_sandboxed_preview(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cookbook_core.cli.main import main

    bad = tmp_path / "bad.py"
    bad.write_text(tpl("import os"))
    assert main(["templates", "check", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:" in err and "import of 'os' is not allowed" in err
    good = tmp_path / "good.py"
    good.write_text(Path(discovery.get("last_word").source_file).read_text())
    assert main(["templates", "check", str(good)]) == 0
    capsys.readouterr()
    assert main(["templates", "preview", "--file", str(good), "-n", "3", "--json"]) == 0
    samples = __import__("json").loads(capsys.readouterr().out)
    assert len(samples) == 3 and all(s["follows_rule"] for s in samples)
    failing = tmp_path / "failing.py"
    failing.write_text(tpl("x = 1 // 0"))
    assert main(["templates", "preview", "--file", str(failing)]) == 1
    assert "ZeroDivisionError" in capsys.readouterr().err
