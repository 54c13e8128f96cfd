"""The OS boundary alone must hold: every escape attempt here runs with the static
checks *and* the in-interpreter audit hook switched off (``validate=False,
in_process_guards=False``), so only bubblewrap's namespaces, the read-only view, the
unprivileged uid and the seccomp filters stand between the template and the host.
Also: malformed or forged answers become one clear error, deeply nested source does
not crash the parent, and untrusted templates are never imported in-process."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from cookbook_core import discovery, generate
from cookbook_core.sandbox import boundary, protocol
from cookbook_core.sandbox.runner import Limits, run_source, validate_source

FAST = Limits(cpu_seconds=3, wall_seconds=15, memory_mb=1024)
HOST_TEMPLATES_PY = Path(boundary.__file__).resolve().parent.parent / "templates.py"


def attempt_source(body: str, imports: str = "", checker: str = "") -> str:
    """A template whose generator runs ``body`` (which sets ``out``) and returns it as
    the prompt.  ``body`` may call ``attempt(f)``: ``f()``'s repr or its exception."""
    body = textwrap.indent(textwrap.dedent(body).strip("\n"), "    ")
    return (
        '"""Escape attempt."""\n'
        "import json, os, sys\n"
        "from cookbook_core.templates import Example, template\n"
        + imports
        + textwrap.dedent('''

        def attempt(f):
            try:
                return "ok:" + repr(f())
            except BaseException as exc:
                return f"{type(exc).__name__}:{getattr(exc, 'errno', None)}"


        @template(name="escape", family="search", task="t")
        def escape(rng, vocab):
            """Tries something it must not be able to do."""
        ''')
        + body
        + '\n    return Example(out, "c", {"parent": {}, "child": {}})\n'
        + checker
    )


def unguarded(source: str, **kw: object):
    """Run with static checks and the audit hook off: the OS boundary alone."""
    return run_source(source, n=1, validate=False, in_process_guards=False, limits=FAST, **kw)


def outcome(body: str, imports: str = "") -> dict:
    res = unguarded(attempt_source(body, imports))
    assert res.ok, res.error
    return json.loads(res.samples[0]["prompt"])


# ----------------------------------------------------------------------------------
# Files


def test_writes_outside_the_private_tmp_fail(tmp_path: Path) -> None:
    target = tmp_path / "pwned.txt"
    before = hashlib.sha256(HOST_TEMPLATES_PY.read_bytes()).hexdigest()
    got = outcome(
        f"""
        def write(path):
            with open(path, "a") as fh:
                fh.write("pwned")
        out = json.dumps({{
            "host_tmp": attempt(lambda: write({str(target)!r})),
            "api_module": attempt(lambda: write("/sandbox/lib/cookbook_core/templates.py")),
            "python_prefix": attempt(lambda: write(os.path.join(sys.base_prefix, "pwned"))),
            "root": attempt(lambda: write("/pwned")),
            "private_tmp": attempt(lambda: write("/tmp/fine")),
        }})
        """
    )
    assert got["private_tmp"].startswith("ok:")  # the control: writing is possible there
    for key in ("host_tmp", "api_module", "python_prefix", "root"):
        assert not got[key].startswith("ok:"), (key, got[key])
    assert got["api_module"] in ("OSError:30", "PermissionError:13")  # EROFS or EACCES
    assert not target.exists()
    assert hashlib.sha256(HOST_TEMPLATES_PY.read_bytes()).hexdigest() == before


def test_mknod_and_mkfifo_are_refused(tmp_path: Path) -> None:
    got = outcome(
        f"""
        import stat
        out = json.dumps({{
            "fifo_tmp": attempt(lambda: os.mkfifo("/tmp/fifo")),
            "fifo_host": attempt(lambda: os.mkfifo({str(tmp_path / "fifo")!r})),
            "node_tmp": attempt(lambda: os.mknod("/tmp/node", 0o600 | stat.S_IFREG)),
            "created": os.path.exists("/tmp/fifo") or os.path.exists("/tmp/node"),
        }})
        """
    )
    assert got["fifo_tmp"] == "PermissionError:1"  # EPERM from seccomp, not the filesystem
    assert got["node_tmp"] == "PermissionError:1"
    assert not got["fifo_host"].startswith("ok:")
    assert got["created"] is False
    assert not (tmp_path / "fifo").exists()


def test_host_folders_are_not_visible() -> None:
    prefix_parts = Path(os.path.realpath(sys.base_prefix)).parts
    got = outcome(
        """
        def ls(p):
            return sorted(os.listdir(p))
        out = json.dumps({
            "root": attempt(lambda: ls("/")),
            "root_home": attempt(lambda: ls("/root")),
            "etc": attempt(lambda: ls("/etc")),
            "home": attempt(lambda: ls("/home")),
            "work": attempt(lambda: ls("/work")),
        })
        """
    )
    top = set(eval(got["root"][3:]))  # noqa: S307 - a repr of a list of str we made
    allowed_top = {"usr", "lib", "lib64", "proc", "dev", "tmp", "sandbox", prefix_parts[1]}
    assert top <= allowed_top, top
    for key in ("etc", "home", "work"):
        if key != prefix_parts[1]:
            assert got[key] == "FileNotFoundError:2", (key, got[key])
    if got["root_home"].startswith("ok:"):  # only the path down to the bound interpreter
        seen = set(eval(got["root_home"][3:]))  # noqa: S307
        assert prefix_parts[1] == "root" and seen == {prefix_parts[2]}, seen
    else:
        assert got["root_home"] == "FileNotFoundError:2"


# ----------------------------------------------------------------------------------
# Other processes


def test_other_processes_environment_is_not_readable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COOKBOOK_TEST_SECRET", "s3cr3t-value-7731")
    got = outcome(
        f"""
        found = []
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
        for p in pids:
            try:
                if "s3cr3t" in open(f"/proc/{{p}}/environ", "rb").read().decode("latin-1"):
                    found.append(p)
            except OSError:
                pass
        out = json.dumps({{
            "pids": pids,
            "found": found,
            "parent": attempt(lambda: open("/proc/{os.getpid()}/environ", "rb").read()),
            "own_env": "COOKBOOK_TEST_SECRET" in os.environ,
        }})
        """
    )
    assert got["found"] == [] and got["own_env"] is False
    assert len(got["pids"]) <= 3, got["pids"]  # a fresh /proc: bwrap's init and the child
    assert not got["parent"].startswith("ok:")


def test_killing_the_parent_is_impossible() -> None:
    got = outcome(
        f"""
        import signal
        out = json.dumps({{"kill": attempt(lambda: os.kill({os.getpid()}, signal.SIGTERM))}})
        """
    )
    # our pid does not exist in the sandbox's PID namespace (or is someone harmless)
    assert got["kill"] in ("ProcessLookupError:3", "PermissionError:1"), got
    assert os.getpid()  # still here


MK = "/tmp/mk.py"  # written by the template: running it leaves /tmp/proof


@pytest.mark.parametrize(
    "how, code",
    [
        ("os.system", f"os.system(sys.executable + ' {MK}')"),
        ("subprocess", f"__import__('subprocess').run([sys.executable, '{MK}'])"),
        ("os.fork", "os.fork() or 0"),
        ("os.posix_spawn", f"os.posix_spawn(sys.executable, [sys.executable, '{MK}'], {{}})"),
        (
            "fork_exec",
            f"__import__('_posixsubprocess').fork_exec([sys.executable.encode(), b'{MK}'], "
            "[sys.executable.encode()], True, (), None, None, -1, -1, -1, -1, -1, -1, "
            "*os.pipe(), False, False, -1, None, None, None, -1, None, False)",
        ),
        ("os.execv", f"os.execv(sys.executable, [sys.executable, '{MK}'])"),
    ],
)
def test_process_creation_is_refused(how: str, code: str) -> None:
    got = outcome(
        f"""
        with open("{MK}", "w") as fh:
            fh.write("open('/tmp/proof', 'w').close()")
        result = attempt(lambda: {code})
        import time
        time.sleep(0.2)
        out = json.dumps({{"result": result, "proof": os.path.exists("/tmp/proof")}})
        """
    )
    if how == "os.system":  # glibc's system() gives 127 << 8 when its spawn fails
        assert got["result"] == f"ok:{127 << 8}", got
    else:
        assert got["result"] == "PermissionError:1", got
    assert got["proof"] is False


def test_threads_still_work() -> None:
    """The control for the process tests: clone with CLONE_THREAD stays allowed."""
    got = outcome(
        """
        import threading
        box = []
        t = threading.Thread(target=lambda: box.append(1))
        t.start()
        t.join()
        out = json.dumps({"ran": box == [1]})
        """
    )
    assert got["ran"] is True


def test_sockets_are_refused() -> None:
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
    try:
        got = outcome(
            f"""
            import socket
            out = json.dumps({{
                "tcp": attempt(lambda: socket.create_connection(("127.0.0.1", {port}), 2)),
                "unix": attempt(lambda: socket.socket(socket.AF_UNIX)),
                "pair": attempt(lambda: socket.socketpair()),
            }})
            """
        )
    finally:
        done.set()
        thread.join()
        server.close()
    assert got == {k: "PermissionError:1" for k in ("tcp", "unix", "pair")}
    assert not accepted


def test_the_sandbox_is_not_root_on_the_host() -> None:
    """While a template sleeps, find its process from the host and read its real uid."""
    source = attempt_source("import time\ntime.sleep(2.5)\nout = str(os.getuid())")
    box: dict = {}
    t = threading.Thread(target=lambda: box.update(res=unguarded(source)))
    t.start()
    uids: set[int] = set()
    deadline = time.monotonic() + 10
    while t.is_alive() and time.monotonic() < deadline:
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                cmd = Path(entry.path, "cmdline").read_bytes()
                if b"/sandbox/child.py" in cmd and not cmd.startswith(b"bwrap"):
                    status = Path(entry.path, "status").read_text()
                    uids |= {int(x) for x in status.split("Uid:")[1].split("\n")[0].split()}
            except (OSError, IndexError, ValueError):
                continue
        time.sleep(0.05)
    t.join()
    assert box["res"].ok and box["res"].samples[0]["prompt"] == str(boundary.SANDBOX_UID)
    assert uids, "the sandboxed process was not seen"
    assert 0 not in uids, uids


# ----------------------------------------------------------------------------------
# Answers


def _raw_writer(payload_expr: str) -> str:
    """A generator that writes ``payload_expr`` (bytes) to every possible result fd,
    then exits: the parent sees only what it wrote."""
    return attempt_source(
        f"""
        data = {payload_expr}
        for fd in range(3, 20):
            try:
                os.write(fd, data)
            except OSError:
                pass
        os._exit(0)
        out = ""
        """
    )


GOOD_TEMPLATE_DESC = {
    "name": "escape",
    "family": "search",
    "tasks": ["t"],
    "doc": "",
    "has_checker": True,
    "token_space": None,
    "params": [],
    "artifacts": {},
}


@pytest.mark.parametrize(
    "payload, needle",
    [
        ("b'[' * 200000 + b']' * 200000", "nested too deeply"),
        ("b'\\xff\\xfe not utf-8'", "not valid UTF-8"),
        (
            repr(json.dumps({"ok": True, "samples": [1], "templates": [GOOD_TEMPLATE_DESC]}))
            + ".encode()",
            "sample 0 must be an object",
        ),
        (
            repr(
                '{"ok": true, "samples": [{"prompt": "\\ud800", "completion": "c", "meta": {}}], '
                '"templates": ' + json.dumps([GOOD_TEMPLATE_DESC]) + "}"
            )
            + ".encode()",
            "lone surrogate",
        ),
        (
            repr(json.dumps({"ok": False, "error_type": "x y", "message": "m", "line": None}))
            + ".encode()",
            "not an identifier",
        ),
        ("b'{\"ok\": true}' * 3", "not JSON"),
    ],
)
def test_malformed_answers_become_one_clear_error(payload: str, needle: str) -> None:
    res = unguarded(_raw_writer(payload))
    assert not res.ok
    assert res.error_type == "MalformedResult", res.error
    assert needle in res.message and "\n" not in res.error
    res.error.encode("utf-8")  # printable as is


def test_a_verdict_cannot_be_forged_by_the_generator() -> None:
    """The generator writes a complete, well-formed answer claiming the rule holds, then
    exits; the checker (which says False) runs in a separate process on the samples the
    parent holds."""
    forged = json.dumps(
        {
            "ok": True,
            "samples": [{"prompt": "forged", "completion": "c", "meta": {}}],
            "templates": [GOOD_TEMPLATE_DESC],
        }
    )
    with_flag = forged.replace('"meta": {}', '"meta": {}, "follows_rule": true')
    checker = textwrap.dedent(
        """

        @escape.checker
        def rule(inputs, answer, params):
            return False
        """
    )
    for text, expect_ok in ((forged, True), (with_flag, False)):
        source = attempt_source(
            f"""
            for fd in range(3, 20):
                try:
                    os.write(fd, {text!r}.encode())
                except OSError:
                    pass
            os._exit(0)
            out = ""
            """,
            checker=checker,
        )
        res = unguarded(source)
        if expect_ok:
            assert res.ok, res.error
            assert res.samples[0]["prompt"] == "forged"
            assert res.samples[0]["follows_rule"] is False
        else:
            assert res.error_type == "MalformedResult" and "unexpected ['follows_rule']" in (
                res.message
            )


def test_protocol_rejects_deep_meta() -> None:
    deep: dict = {}
    node = deep
    for _ in range(protocol.MAX_DEPTH + 2):
        node["x"] = {}
        node = node["x"]
    with pytest.raises(protocol.MalformedResult, match="nested deeper"):
        protocol.decode(json.dumps({"ok": True, "meta": deep}).encode())


# ----------------------------------------------------------------------------------
# Deeply nested source


@pytest.mark.parametrize(
    "source",
    ["x = " + "-" * 100_000 + "1\n", "x = " + "(" * 100_000 + ")" * 100_000 + "\n"],
)
def test_deeply_nested_source_is_one_problem(source: str, tmp_path: Path) -> None:
    problems = validate_source(source)
    assert len(problems) >= 1 and all(p.line >= 0 for p in problems)
    from cookbook_core.cli.main import main

    f = tmp_path / "deep.py"
    f.write_text(source)
    assert main(["templates", "check", str(f)]) == 2
    assert discovery.parse_file(f)[0].error is not None


# ----------------------------------------------------------------------------------
# Fail closed


def test_missing_bwrap_fails_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(boundary, "_BWRAP_FALLBACKS", ())
    monkeypatch.setenv("PATH", "/nonexistent")
    boundary._probe_ok.cache_clear()
    try:
        with pytest.raises(boundary.BoundaryUnavailable, match="bubblewrap"):
            run_source(attempt_source("out = 'ran'"), n=1, validate=False)
    finally:
        boundary._probe_ok.cache_clear()


# ----------------------------------------------------------------------------------
# Trust


MARKING = '''"""Changes a helper module's global when imported (passes the static checks)."""
import cookbook_core.template_helpers as template_helpers
from cookbook_core.templates import Example, template

template_helpers.LETTERS = "imported"


@template(name="marked", family="search", task="t")
def marked(rng, vocab):
    """Says which letters it sees."""
    return Example(template_helpers.LETTERS, "c", {"parent": {}, "child": {}})
'''


def test_untrusted_template_is_never_imported_in_process(
    user_templates: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from cookbook_core import template_helpers
    from cookbook_core.cli.main import main

    letters = template_helpers.LETTERS
    monkeypatch.setattr(template_helpers, "LETTERS", letters)  # restored after the test
    (user_templates / "marked.py").write_text(MARKING)
    entry = discovery.find("marked")
    assert entry.ok and not entry.trusted
    with pytest.raises(discovery.UntrustedTemplate, match="COOKBOOK_TRUSTED_TEMPLATES"):
        discovery.get("marked")
    with pytest.raises(discovery.UntrustedTemplate):
        discovery.load_file(user_templates / "marked.py")
    # generating from it runs it in sandboxed children, where the change stays
    cfg = generate.GenerateConfig(sources=[generate.Source("marked")], n=4, workers=2)
    manifest = generate.generate(cfg, tmp_path / "out")
    assert manifest["templates"][0]["sandboxed"] is True
    rows = (tmp_path / "out" / "data.jsonl").read_text().splitlines()
    assert [json.loads(r)["prompt"] for r in rows] == ["imported"] * 4
    assert template_helpers.LETTERS == letters, "an untrusted template was imported in-process"
    # previewing by name runs it in the sandbox, where the change stays
    assert main(["templates", "preview", "marked", "-n", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["prompt"] == "imported"
    assert template_helpers.LETTERS == letters, "an untrusted template was imported in-process"
    # the control: once its folder is trusted explicitly, it is imported here
    monkeypatch.setenv("COOKBOOK_TRUSTED_TEMPLATES", str(user_templates))
    assert discovery.get("marked").name == "marked"
    assert template_helpers.LETTERS == "imported"


def test_saving_into_a_trusted_folder_is_refused(extra_templates: Path) -> None:
    from cookbook_core.errors import BadInput
    from cookbook_core.sandbox.runner import save_template

    src = (HOST_TEMPLATES_PY.parent.parent / "templates" / "last_word.py").read_text()
    with pytest.raises(BadInput, match="trusted folder"):
        save_template("last_word_copy", src, folder=extra_templates)
    assert not (extra_templates / "last_word_copy.py").exists()
