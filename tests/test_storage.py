"""The storage layer: atomic file writes that keep the old file when writing fails, the JSONL
reader's per-line errors, and folder publication that never leaves the target missing."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from cookbook_core import storage
from cookbook_core.errors import BadInput


class Unserializable:
    pass


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_write_json_replaces_and_ends_with_newline(tmp_path: Path) -> None:
    path = storage.write_json(tmp_path / "sub" / "a.json", {"x": 1, "é": "ü"}, ensure_ascii=False)
    assert path.read_text(encoding="utf-8") == '{\n  "x": 1,\n  "é": "ü"\n}\n'
    storage.write_json(path, [1, 2], indent=None)
    assert path.read_text() == "[1, 2]\n"
    assert _leftovers(path.parent) == []


def test_old_file_intact_when_the_serializer_raises(tmp_path: Path) -> None:
    path = storage.write_json(tmp_path / "state.json", {"v": 1})
    with pytest.raises(TypeError, match="not JSON serializable"):
        storage.write_json(path, {"v": Unserializable()})
    assert json.loads(path.read_text()) == {"v": 1}
    assert _leftovers(tmp_path) == []


def test_old_jsonl_intact_when_a_row_generator_fails_midway(tmp_path: Path) -> None:
    path = storage.write_jsonl(tmp_path / "rows.jsonl", [{"i": 0}, {"i": 1}])
    before = path.read_bytes()

    def rows():  # type: ignore[no-untyped-def]
        yield {"i": 10}
        yield {"i": 11}
        raise RuntimeError("crash while writing")

    with pytest.raises(RuntimeError, match="crash while writing"):
        storage.write_jsonl(path, rows())
    assert path.read_bytes() == before
    assert _leftovers(tmp_path) == []


def test_old_file_intact_when_the_rename_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = storage.write_text(tmp_path / "a.txt", "old")

    def failing_replace(src: object, dst: object) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(storage.os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk gone"):
        storage.write_text(path, "new")
    assert path.read_text() == "old"
    assert _leftovers(tmp_path) == []


def test_write_bytes_and_text(tmp_path: Path) -> None:
    assert storage.write_bytes(tmp_path / "b", b"\x00\x01").read_bytes() == b"\x00\x01"
    assert storage.write_text(tmp_path / "t", "line\n").read_text() == "line\n"


def test_jsonl_round_trip_skips_blank_lines_and_numbers_lines(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text('{"a": 1}\n\n  \n{"a": 2}\n', encoding="utf-8")
    assert list(storage.iter_jsonl(path)) == [(1, {"a": 1}), (4, {"a": 2})]
    assert storage.read_jsonl(path, limit=1) == [{"a": 1}]
    assert storage.read_jsonl(tmp_path / "missing.jsonl", missing_ok=True) == []
    with pytest.raises(FileNotFoundError):
        storage.read_jsonl(tmp_path / "missing.jsonl")


def test_jsonl_errors_name_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"a": 1}\n{"a": 2\n', encoding="utf-8")
    with pytest.raises(BadInput, match=rf"^{path}:2: not valid JSON \("):
        storage.read_jsonl(path)
    path.write_text('{"a": 1}\n\n[1, 2]\n', encoding="utf-8")
    with pytest.raises(BadInput, match=rf"^{path}:3: expected a JSON object per line$"):
        storage.read_jsonl(path)
    assert [v for _, v in storage.iter_jsonl(path, objects=False)] == [{"a": 1}, [1, 2]]


def test_jsonl_errors_use_the_callers_error_class(tmp_path: Path) -> None:
    class MyError(BadInput):
        pass

    path = tmp_path / "bad.jsonl"
    path.write_text("nope\n", encoding="utf-8")
    with pytest.raises(MyError, match=":1: not valid JSON"):
        storage.read_jsonl(path, error=MyError)


@pytest.mark.parametrize("exchange", [True, False], ids=["swap", "rename-aside"])
def test_publish_dir_replaces_a_folder(tmp_path: Path, exchange: bool) -> None:
    target = tmp_path / "ds"
    target.mkdir()
    (target / "old.txt").write_text("old")
    staged = tmp_path / ".ds.new"
    staged.mkdir()
    (staged / "new.txt").write_text("new")
    storage.publish_dir(staged, target, exchange=exchange)
    assert sorted(p.name for p in target.iterdir()) == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def test_publish_dir_restores_the_old_folder_when_the_second_rename_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "ds"
    target.mkdir()
    (target / "old.txt").write_text("old")
    staged = tmp_path / ".ds.new"
    staged.mkdir()
    real_rename = os.rename

    def rename(src: os.PathLike[str], dst: os.PathLike[str]) -> None:
        if Path(src) == staged:
            raise OSError("cross-device link")
        real_rename(src, dst)

    monkeypatch.setattr(storage.os, "rename", rename)
    with pytest.raises(OSError, match="cross-device"):
        storage.publish_dir(staged, target, exchange=False)
    assert (target / "old.txt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".ds.new", "ds"]


def test_publish_dir_swap_never_leaves_the_target_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the atomic swap, no step between the start and the end removes ``target``."""
    target = tmp_path / "ds"
    target.mkdir()
    staged = tmp_path / ".ds.new"
    staged.mkdir()
    (staged / "new.txt").write_text("new")
    seen: list[bool] = []
    real_rmtree = storage.shutil.rmtree

    def rmtree(path: str | os.PathLike[str], *args: object, **kw: object) -> None:
        seen.append(target.is_dir())
        real_rmtree(path, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(storage.shutil, "rmtree", rmtree)
    if not storage._exchange(staged, target):  # swap them once to probe support...
        pytest.skip("renameat2(RENAME_EXCHANGE) is not supported on this filesystem")
    storage._exchange(staged, target)  # ...and back
    monkeypatch.setattr(storage.os, "rename", lambda *a: pytest.fail("rename-aside used"))
    storage.publish_dir(staged, target)
    assert seen == [True] and (target / "new.txt").read_text() == "new"


def test_staged_dir_publishes_on_success_and_discards_on_error(tmp_path: Path) -> None:
    target = tmp_path / "out"
    with storage.staged_dir(target) as tmp:
        (tmp / "a").write_text("1")
    assert (target / "a").read_text() == "1"
    with pytest.raises(RuntimeError), storage.staged_dir(target) as tmp:
        (tmp / "b").write_text("2")
        raise RuntimeError("half way")
    assert sorted(p.name for p in target.iterdir()) == ["a"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
