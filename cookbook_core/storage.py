"""One storage layer for files that others read: atomic writes, JSONL reading, folder publication.

* **Atomic file writes** (:func:`write_text`, :func:`write_bytes`, :func:`write_json`,
  :func:`write_jsonl`): the content goes to a temporary file beside the target, is
  flushed and ``fsync``-ed, then renamed over the target (``os.replace``, atomic on
  POSIX), and the folder entry is synced.  A reader sees the old file or the new one,
  never a half-written one; when serializing or writing fails (a value JSON cannot
  encode, a full disk, an exception in a row generator) the temporary file is removed and
  the old file is left as it was.
* **JSONL reading** (:func:`iter_jsonl`, :func:`read_jsonl`): one object per non-blank
  line, with the line number; a bad line raises the caller's error class with
  ``path:line: ...`` so users can fix the file.
* **Folder publication** (:func:`publish_dir`, :func:`staged_dir`): a folder built under a
  temporary name replaces the target in one step.  On Linux the two folders are swapped
  with ``renameat2(RENAME_EXCHANGE)``, so the target path always names a complete folder;
  where that is unavailable the old folder is first renamed aside (never deleted before
  the new one is in place) and put back if the second rename fails.

* **Output checks** (:func:`check_output`): before any work starts, whether a file or
  folder can be written at a path the user gave (``--out``, the workspace root): not an
  existing thing of the other kind, no file in the way, not on a read-only filesystem.

What it does not do: locking between concurrent writers (the last rename wins), formats
other than text/JSON/JSONL, or deciding where files live (:mod:`cookbook_core.paths`).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import json
import os
import secrets
import shutil
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

from cookbook_core.errors import BadInput

__all__ = [
    "check_output",
    "iter_jsonl",
    "publish_dir",
    "read_jsonl",
    "staged_dir",
    "write_bytes",
    "write_json",
    "write_jsonl",
    "write_text",
]


def _temp_name(target: Path, what: str) -> Path:
    return target.with_name(f".{target.name}.{what}-{os.getpid()}-{secrets.token_hex(3)}")


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (best effort: some filesystems refuse)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _atomic(path: str | Path, mode: str, fill: Callable[[IO[Any]], None]) -> Path:
    """Write ``path`` through a temporary file that ``fill`` writes; rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_name(path, "tmp")
    try:
        encoding = None if "b" in mode else "utf-8"
        with open(tmp, mode, encoding=encoding) as fh:
            fill(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    _fsync_dir(path.parent)
    return path


def write_text(path: str | Path, text: str) -> Path:
    """Replace ``path`` with ``text`` (UTF-8) atomically; the path written."""
    return _atomic(path, "w", lambda fh: fh.write(text))


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Replace ``path`` with ``data`` atomically; the path written."""
    return _atomic(path, "wb", lambda fh: fh.write(data))


def write_json(
    path: str | Path,
    obj: Any,
    *,
    indent: int | None = 2,
    default: Callable[[Any], Any] | None = None,
    sort_keys: bool = False,
    ensure_ascii: bool = True,
) -> Path:
    """Replace ``path`` with ``obj`` as JSON (plus a final newline) atomically.

    ``obj`` is serialized before the file is opened: a value JSON cannot encode raises
    ``TypeError``/``ValueError`` and leaves the old file untouched.
    """
    text = json.dumps(
        obj, indent=indent, default=default, sort_keys=sort_keys, ensure_ascii=ensure_ascii
    )
    return write_text(path, text + "\n")


def write_jsonl(
    path: str | Path,
    rows: Iterable[Mapping[str, Any]],
    *,
    default: Callable[[Any], Any] | None = None,
    ensure_ascii: bool = False,
) -> Path:
    """Replace ``path`` with one JSON object per line atomically (``rows`` may be a
    generator: it is consumed while writing, and an exception from it keeps the old file)."""

    def fill(fh: IO[str]) -> None:
        for row in rows:
            fh.write(json.dumps(row, default=default, ensure_ascii=ensure_ascii) + "\n")

    return _atomic(path, "w", fill)


def iter_jsonl(
    path: str | Path, *, error: type[Exception] = BadInput, objects: bool = True
) -> Iterator[tuple[int, Any]]:
    """``(line number, value)`` for each non-blank line of a JSONL file (numbers from 1).

    A line that is not UTF-8 raises ``error("<path>:<line>: not UTF-8 text ...")``, one that
    is not JSON ``error("<path>:<line>: not valid JSON (<reason>)")``;
    with ``objects`` (the default) a value that is not a JSON object raises
    ``error("<path>:<line>: expected a JSON object per line")``.  ``error`` is the caller's
    exception class (e.g. a ``BadInput`` subclass), so callers keep their own error types.
    """
    path = Path(path)
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise error(f"{path}:{lineno}: not UTF-8 text (is it a binary file?)") from None
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                raise error(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
            except RecursionError:
                raise error(f"{path}:{lineno}: JSON nested too deeply") from None
            if objects and not isinstance(value, dict):
                raise error(f"{path}:{lineno}: expected a JSON object per line")
            yield lineno, value


def read_jsonl(
    path: str | Path,
    *,
    error: type[Exception] = BadInput,
    limit: int | None = None,
    missing_ok: bool = False,
) -> list[dict[str, Any]]:
    """The objects of a JSONL file (the first ``limit``); ``[]`` for a missing file when
    ``missing_ok``.  Errors as in :func:`iter_jsonl`."""
    path = Path(path)
    if missing_ok and not path.is_file():
        return []
    out: list[dict[str, Any]] = []
    for _, row in iter_jsonl(path, error=error):
        if limit is not None and len(out) >= limit:
            break
        out.append(row)
    return out


# ----------------------------------------------------------------------------------
# Output checks


def _read_only(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _unwritable(folder: Path) -> str | None:
    """Why nothing can be created in the existing folder ``folder`` (None when it can)."""
    if _read_only(folder):
        return f"{folder} is on a read-only filesystem"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"{folder} is not writable"
    return None


def check_output(path: str | Path, *, folder: bool, what: str = "--out") -> Path:
    """``path`` made absolute, after checking that a ``folder`` (or a file) can be written
    there; ``BadInput("<what> <path>: ...")`` otherwise.

    Refused: an existing file where a folder is wanted (or the reverse), a path under a
    file (``notes.txt/out``), and a path whose nearest existing folder is on a read-only
    filesystem or not writable.  Nothing is created.
    """
    path = Path(os.path.abspath(Path(path).expanduser()))
    if path.exists():
        if folder and not path.is_dir():
            raise BadInput(f"{what} {path}: it is an existing file, not a folder")
        if not folder and path.is_dir():
            raise BadInput(f"{what} {path}: it is an existing folder, not a file")
    anchor = path.parent
    while not anchor.exists() and anchor != anchor.parent:
        anchor = anchor.parent
    if not anchor.is_dir():
        raise BadInput(f"{what} {path}: cannot be created: {anchor} is a file, not a folder")
    problem = _unwritable(anchor)
    if problem is None and folder and path.is_dir():
        problem = _unwritable(path)
    if problem:
        raise BadInput(f"{what} {path}: cannot be written: {problem}")
    return path


# ----------------------------------------------------------------------------------
# Folders

_RENAME_EXCHANGE = 2  # linux/fs.h
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths in one atomic step (Linux ``renameat2``); False when the
    system or filesystem does not support it."""
    libc_name = ctypes.util.find_library("c")
    if not libc_name:
        return False
    libc = ctypes.CDLL(libc_name, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return False
    renameat2.argtypes = [
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_uint,
    ]
    res = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if res == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(a), None, str(b))


def publish_dir(staged: str | Path, target: str | Path, *, exchange: bool = True) -> Path:
    """Put the finished folder ``staged`` at ``target``, replacing any folder there.

    ``target`` names either the old complete folder or the new one at every moment when
    the atomic swap is available (``exchange``, Linux); otherwise the old folder is renamed
    aside first and restored if the second rename fails, and only deleted once the new one
    is in place.  ``staged`` must be on the same filesystem (e.g. a sibling).
    """
    staged, target = Path(staged), Path(target)
    if not staged.is_dir():
        raise FileNotFoundError(f"{staged} is not a folder")
    if not target.exists():
        os.rename(staged, target)
    elif exchange and target.is_dir() and _exchange(staged, target):
        shutil.rmtree(staged)  # now holds the old folder
    else:
        aside = _temp_name(target, "old")
        os.rename(target, aside)
        try:
            os.rename(staged, target)
        except BaseException:
            os.rename(aside, target)
            raise
        if aside.is_dir() and not aside.is_symlink():
            shutil.rmtree(aside)
        else:
            aside.unlink()
    _fsync_dir(target.parent)
    return target


@contextlib.contextmanager
def staged_dir(target: str | Path, *, exchange: bool = True) -> Iterator[Path]:
    """A fresh temporary folder beside ``target``; published there (:func:`publish_dir`)
    when the block ends normally, deleted when it raises (``target`` is then untouched)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staged = _temp_name(target, "tmp")
    staged.mkdir()
    try:
        yield staged
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    publish_dir(staged, target, exchange=exchange)
