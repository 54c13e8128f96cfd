"""The operating-system boundary around untrusted template code: bubblewrap + seccomp.

What it builds, for every run of untrusted code (see :func:`launch`):

* **bubblewrap** (Debian's ``bwrap``, run unprivileged) puts the child in new user,
  mount, PID, network, IPC, UTS (and, where possible, cgroup) namespaces, with a
  freshly mounted ``/proc`` (only the sandbox's own processes), a minimal ``/dev``,
  a private size-capped ``tmpfs`` on ``/tmp`` (the only writable place), and a root
  that holds read-only binds of only: the Python installation (``sys.base_prefix``),
  the system library folders the interpreter links against (``/usr/lib``,
  ``/usr/lib64``, with their ``/lib`` links), four template-API modules of this
  project (``cookbook_core/__init__``, ``errors``, ``templates``,
  ``template_helpers``) and the child program.  No ``/etc``, no home folders, no
  project tree, no ``/usr/bin``.  Further user namespaces are disabled, all
  capabilities dropped, ``no_new_privs`` set, and the process dies with its parent.
* **An unprivileged uid.**  Inside, the child is uid/gid 65534.  When the caller is
  root, the launcher first drops to uid/gid 65534 (``nobody``) on the host too,
  so the sandbox is not host-root either; install folders that ``nobody`` cannot
  reach (a Python under ``/root``) are first bind-mounted into a world-readable
  staging folder inside a private mount namespace of the launcher (which needs
  ``CAP_SYS_ADMIN``, as root normally has).
* **seccomp** (filters compiled with libseccomp through the ``pyseccomp``
  binding): the filter bubblewrap installs refuses (``EPERM``) ``fork``,
  ``vfork``, ``clone`` without ``CLONE_THREAD`` (threads stay possible),
  ``socket``/``socketpair``, ``mknod``/``mknodat`` (so ``mkfifo`` too),
  ``ptrace`` and cross-process memory access, namespace and mount calls, kernel
  keyrings, BPF, ``perf_event_open``, ``userfaultfd``, ``io_uring`` and module
  loading; ``clone3`` answers ``ENOSYS`` so threads fall back to ``clone``.  A
  second filter, which the child loads as its first act (:data:`EXEC_FILTER`),
  refuses ``execve``/``execveat`` from then on.  Other architectures' syscall
  entry points are killed (libseccomp's default for a foreign arch).

It **fails closed**: when ``bwrap`` is missing, user namespaces are disabled, the
seccomp binding or library is missing, or the probe run does not report the
expected state, :class:`BoundaryUnavailable` is raised with one message saying
what to install or enable.  Nothing here ever runs template code without it.

What it does not do: resource limits and the wall clock (``runner``), judging the
child's output (``protocol``), or defend against kernel exploits (a seccomp
denylist narrows, but does not remove, the kernel attack surface).
"""

from __future__ import annotations

import ctypes
import errno
import functools
import importlib.util
import os
import py_compile
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cookbook_core.errors import CookbookError

SANDBOX_UID = 65534
SANDBOX_ROOT = "/sandbox"
SANDBOX_LIB = f"{SANDBOX_ROOT}/lib"
SANDBOX_CHILD = f"{SANDBOX_ROOT}/child.py"
TMP_SIZE_BYTES = 64 * 1024 * 1024

_PACKAGE = Path(__file__).resolve().parent.parent
API_MODULES = ("__init__.py", "errors.py", "templates.py", "template_helpers.py")
"""The only project files visible inside the sandbox (under ``/sandbox/lib/cookbook_core``)."""

INSTALL_HINT = (
    "install bubblewrap (as root: `apt-get install -y bubblewrap`, or `make setup`) "
    "and make sure unprivileged user namespaces are enabled "
    "(`sysctl user.max_user_namespaces` > 0; on Debian also "
    "`sysctl kernel.unprivileged_userns_clone=1`)"
)

# Syscalls refused by the filter bubblewrap installs (names unknown to this
# architecture's table are skipped).
DENIED_SYSCALLS = (
    "fork",
    "vfork",
    "socket",
    "socketpair",
    "mknod",
    "mknodat",
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "kcmp",
    "pidfd_getfd",
    "unshare",
    "setns",
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "open_tree",
    "move_mount",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "mount_setattr",
    "open_by_handle_at",
    "name_to_handle_at",
    "keyctl",
    "add_key",
    "request_key",
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "personality",
    "syslog",
    "acct",
    "swapon",
    "swapoff",
    "reboot",
    "quotactl",
)
EXEC_SYSCALLS = ("execve", "execveat")
_CLONE_THREAD = 0x00010000


class BoundaryUnavailable(CookbookError):
    """The OS boundary cannot be built here; untrusted code is not run at all."""

    def __init__(self, reason: str) -> None:
        super().__init__(
            f"the template sandbox cannot be built: {reason}; untrusted template code is "
            f"never run without it. To fix: {INSTALL_HINT}"
        )
        self.reason = reason


# ----------------------------------------------------------------------------------
# seccomp programs


def _compile(rules: Callable[[object], None]) -> bytes:
    try:
        import pyseccomp
    except (ImportError, OSError) as exc:  # OSError: libseccomp.so.2 missing
        raise BoundaryUnavailable(
            f"the seccomp binding is not importable ({exc}); `pip install pyseccomp` "
            "and libseccomp2 are needed"
        ) from None
    filt = pyseccomp.SyscallFilter(pyseccomp.ALLOW)
    rules(filt)
    fd = os.memfd_create("cookbook-seccomp", 0)
    with os.fdopen(fd, "w+b") as fh:
        filt.export_bpf(fh)
        fh.seek(0)
        program = fh.read()
    if not program or len(program) % 8:
        raise BoundaryUnavailable("libseccomp produced no usable BPF program")
    return program


def _add(filt: object, action: int, name: str, *args: object) -> None:
    try:
        filt.add_rule(action, name, *args)  # type: ignore[attr-defined]
    except (RuntimeError, OSError, ValueError):  # not a syscall on this architecture
        pass


def _base_rules(filt: object) -> None:
    import pyseccomp as sc

    eperm = sc.ERRNO(errno.EPERM)
    for name in DENIED_SYSCALLS:
        _add(filt, eperm, name)
    # clone is a new process unless CLONE_THREAD is set (flags are argument 0 on x86-64/arm64)
    _add(filt, eperm, "clone", sc.Arg(0, sc.MASKED_EQ, _CLONE_THREAD, 0))
    _add(filt, sc.ERRNO(errno.ENOSYS), "clone3")  # its flags are not filterable


def _exec_rules(filt: object) -> None:
    import pyseccomp as sc

    for name in EXEC_SYSCALLS:
        _add(filt, sc.ERRNO(errno.EPERM), name)


@functools.lru_cache(maxsize=1)
def seccomp_programs() -> tuple[bytes, bytes]:
    """The compiled BPF programs: (installed by bwrap, loaded by the child to stop exec)."""
    return _compile(_base_rules), _compile(_exec_rules)


# ----------------------------------------------------------------------------------
# What the sandbox sees


@dataclass(frozen=True)
class Bind:
    """One read-only bind: host path ``src`` at ``dest`` inside the sandbox."""

    src: str
    dest: str


def _python_install() -> tuple[str, str]:
    """(install prefix, real interpreter path); the interpreter must lie under the prefix."""
    exe = os.path.realpath(sys.executable)
    prefix = os.path.realpath(sys.base_prefix)
    if not exe.startswith(prefix + os.sep):
        raise BoundaryUnavailable(f"the interpreter {exe} is not under its prefix {prefix}")
    return prefix, exe


def binds() -> tuple[list[Bind], list[tuple[str, str]]]:
    """The read-only binds and the symlinks (target, link) that make up the sandbox."""
    prefix, _ = _python_install()
    out = [Bind(prefix, prefix)]
    links: list[tuple[str, str]] = []
    for d in ("/usr/lib", "/usr/lib64", "/lib", "/lib64"):
        if os.path.islink(d):
            links.append((os.readlink(d), d))
        elif os.path.isdir(d) and not prefix.startswith(d + os.sep) and prefix != d:
            out.append(Bind(d, d))
    for name in API_MODULES:
        src = _PACKAGE / name
        out.append(Bind(str(src), f"{SANDBOX_LIB}/cookbook_core/{name}"))
        cached = _bytecode(src)
        if cached:  # same mtime and size as the bound source: used as is, saves ~50 ms
            out.append(Bind(cached, f"{SANDBOX_LIB}/cookbook_core/__pycache__/{Path(cached).name}"))
    out.append(Bind(str(Path(__file__).with_name("child.py")), SANDBOX_CHILD))
    return out, links


def _bytecode(src: Path) -> str | None:
    """The up-to-date ``.pyc`` of a module source (written if missing), or None."""
    cfile = importlib.util.cache_from_source(str(src))
    try:
        st = os.stat(src)
        with open(cfile, "rb") as fh:
            head = fh.read(16)
        fresh = (
            head[:4] == importlib.util.MAGIC_NUMBER
            and int.from_bytes(head[4:8], "little") == 0
            and int.from_bytes(head[8:12], "little") == int(st.st_mtime) & 0xFFFFFFFF
            and int.from_bytes(head[12:16], "little") == st.st_size & 0xFFFFFFFF
        )
        if fresh:
            return cfile
    except OSError:
        pass
    try:
        return py_compile.compile(str(src), cfile=cfile, doraise=True)
    except (OSError, py_compile.PyCompileError):
        return None


def _world_reachable(path: str) -> bool:
    """Whether uid 65534 can reach ``path`` (every folder above searchable, it readable)."""
    p = Path(path)
    for parent in reversed(p.parents):
        if not os.stat(parent).st_mode & stat.S_IXOTH:
            return False
    mode = os.stat(p).st_mode
    need = stat.S_IROTH | (stat.S_IXOTH if stat.S_ISDIR(mode) else 0)
    return mode & need == need


# ----------------------------------------------------------------------------------
# Dropping root


_MS_BIND, _MS_REC, _MS_PRIVATE = 4096, 16384, 1 << 18
_CLONE_NEWNS = 0x00020000


@functools.lru_cache(maxsize=1)
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


@functools.lru_cache(maxsize=1)
def _stage_dir() -> str:
    """A world-searchable folder of empty mount points (bound over in the launcher only)."""
    d = tempfile.mkdtemp(prefix="cookbook-sandbox-stage-")
    os.chmod(d, 0o755)
    return d


def _staged(all_binds: list[Bind]) -> tuple[list[Bind], list[tuple[str, str]]]:
    """Binds rewritten to staging mount points where ``nobody`` cannot reach the source."""
    stage = _stage_dir()
    out, mounts = [], []
    for i, b in enumerate(all_binds):
        if _world_reachable(b.src):
            out.append(b)
            continue
        point = os.path.join(stage, str(i))
        if os.path.isdir(b.src):
            os.makedirs(point, mode=0o755, exist_ok=True)
        elif not os.path.exists(point):
            with open(point, "w"):
                pass
            os.chmod(point, 0o644)
        mounts.append((b.src, point))
        out.append(Bind(point, b.dest))
    return out, mounts


def _drop_to_nobody(mounts: Sequence[tuple[str, str]]) -> None:
    """Runs in the forked launcher (root) before exec of bwrap."""
    if mounts:
        libc = _libc()
        if libc.unshare(_CLONE_NEWNS) != 0:
            raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNS) for the staging binds")
        if libc.mount(None, b"/", None, _MS_REC | _MS_PRIVATE, None) != 0:
            raise OSError(ctypes.get_errno(), "making the launcher's mounts private")
        for src, point in mounts:
            if libc.mount(src.encode(), point.encode(), None, _MS_BIND | _MS_REC, None) != 0:
                raise OSError(ctypes.get_errno(), f"staging bind of {src}")
    os.setgroups([])
    os.setresgid(SANDBOX_UID, SANDBOX_UID, SANDBOX_UID)
    os.setresuid(SANDBOX_UID, SANDBOX_UID, SANDBOX_UID)


# ----------------------------------------------------------------------------------
# The command


@dataclass
class Launch:
    """How to start one sandboxed child: argv, fds to pass, what to run before exec."""

    argv: list[str]
    pass_fds: tuple[int, ...]
    before_exec: Callable[[], None]
    close_after_start: tuple[int, ...]


_BWRAP_FALLBACKS = ("/usr/bin/bwrap", "/bin/bwrap")  # when PATH is minimal


def bwrap_path() -> str:
    """The ``bwrap`` executable (raises :class:`BoundaryUnavailable` when missing)."""
    exe = shutil.which("bwrap") or next(
        (p for p in _BWRAP_FALLBACKS if os.access(p, os.X_OK)), None
    )
    if not exe:
        raise BoundaryUnavailable("`bwrap` (bubblewrap) is not installed")
    return exe


def launch(child_args: Sequence[str], extra_before_exec: Callable[[], None]) -> Launch:
    """The bwrap command running ``python -I -S -B /sandbox/child.py *child_args``.

    ``extra_before_exec`` (resource limits) runs in the launcher after the uid drop.
    The seccomp program travels on a pipe whose read end is in ``pass_fds``; the
    caller closes ``close_after_start`` once the process is started.
    """
    exe = bwrap_path()
    base_filter, _ = seccomp_programs()
    _, interpreter = _python_install()
    all_binds, links = binds()
    as_root = os.geteuid() == 0
    mounts: list[tuple[str, str]] = []
    if as_root:
        all_binds, mounts = _staged(all_binds)
    read_fd, write_fd = os.pipe()
    os.write(write_fd, base_filter)  # a few KB: fits the pipe buffer
    os.close(write_fd)
    argv = [
        exe,
        "--unshare-user",
        "--unshare-ipc",
        "--unshare-pid",
        "--unshare-net",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--disable-userns",
        "--die-with-parent",
        "--new-session",
        "--cap-drop",
        "ALL",
        "--uid",
        str(SANDBOX_UID),
        "--gid",
        str(SANDBOX_UID),
        "--hostname",
        "sandbox",
        "--clearenv",
        "--setenv",
        "LANG",
        "C.UTF-8",
        "--setenv",
        "HOME",
        "/tmp",
        "--setenv",
        "PATH",
        "/nonexistent",
    ]
    for b in all_binds:
        argv += ["--ro-bind", b.src, b.dest]
    for target, link in links:
        argv += ["--symlink", target, link]
    argv += [
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--size",
        str(TMP_SIZE_BYTES),
        "--tmpfs",
        "/tmp",
        "--remount-ro",
        "/",
        "--chdir",
        "/tmp",
        "--seccomp",
        str(read_fd),
        "--",
        interpreter,
        "-I",
        "-S",
        "-B",
        SANDBOX_CHILD,
        *child_args,
    ]

    def before_exec() -> None:
        extra_before_exec()  # limits first: root may still raise them
        if as_root:
            _drop_to_nobody(mounts)

    return Launch(argv, (read_fd,), before_exec, (read_fd,))


@functools.lru_cache(maxsize=1)
def _probe_ok() -> bool:
    launch_ = launch(["--probe"], lambda: None)
    try:
        res = subprocess.run(
            launch_.argv,
            pass_fds=launch_.pass_fds,
            preexec_fn=launch_.before_exec,  # noqa: PLW1509 - see runner
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=20,
            env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
        )
    except subprocess.SubprocessError as exc:
        raise BoundaryUnavailable(f"the launcher failed before bwrap started ({exc})") from None
    except OSError as exc:
        raise BoundaryUnavailable(f"bwrap could not be started ({exc})") from None
    finally:
        for fd in launch_.close_after_start:
            os.close(fd)
    out = res.stdout.decode("utf-8", "replace").strip()
    if res.returncode != 0 or out != "boundary-ok":
        why = (res.stderr.decode("utf-8", "replace").strip() or out or "no output")[-300:]
        raise BoundaryUnavailable(f"the probe run failed (exit {res.returncode}: {why})")
    return True


def ensure_available() -> None:
    """Raise :class:`BoundaryUnavailable` unless a probe child starts with the full
    boundary in place (checked once per process; failures are re-checked next time)."""
    _probe_ok()


__all__ = [
    "API_MODULES",
    "BoundaryUnavailable",
    "DENIED_SYSCALLS",
    "Launch",
    "SANDBOX_UID",
    "binds",
    "bwrap_path",
    "ensure_available",
    "launch",
    "seccomp_programs",
]
