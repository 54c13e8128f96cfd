"""The Templates page under Streamlit's AppTest: preview, new seed, parameters,
editing with validation, sandbox preview, save and duplicate (in an untrusted scratch
folder, whose templates the page previews through the sandbox only)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parent.parent
PAGE = str(ROOT / "pages" / "templates.py")


def page() -> AppTest:
    return AppTest.from_file(PAGE, default_timeout=60).run()


def codes(at: AppTest) -> list[str]:
    return [c.value for c in at.code]


def test_preview_renders_with_verdicts() -> None:
    at = page()
    assert not at.exception, at.exception
    assert at.sidebar.selectbox(key="tpl_name").value == "commonsense_selection"
    at.sidebar.selectbox(key="tpl_name").set_value("document_qa").run()
    assert not at.exception
    assert any("4/4 samples follow the rule" in c.value for c in at.caption)
    first = [c for c in codes(at) if c.startswith("Document:")]
    assert len(first) == 4
    at.button(key="newseed::document_qa").click().run()
    assert at.number_input(key="seed::document_qa").value != 0
    after = [c for c in codes(at) if c.startswith("Document:")]
    assert after != first


def test_parameter_widgets_change_samples() -> None:
    at = page()
    at.sidebar.selectbox(key="tpl_name").set_value("document_qa").run()
    at.number_input(key="param::document_qa::k").set_value(5).run()
    assert not at.exception
    completions = [m.value for m in at.markdown if m.value.startswith("**Completion:**")]
    assert completions and all(len(c.split("`")[1].split()) == 5 for c in completions)


def test_edit_shows_validation_problem_with_line() -> None:
    at = page()
    at.sidebar.selectbox(key="tpl_name").set_value("last_word").run()
    src = at.text_area(key="editor::last_word").value
    at.text_area(key="editor::last_word").input("import os\n" + src).run()
    assert not at.exception
    errors = " ".join(e.value for e in at.error)
    assert "line 1, column 1" in errors and "import of 'os' is not allowed" in errors
    # the edit survives a switch to another template and back
    at.sidebar.selectbox(key="tpl_name").set_value("document_qa").run()
    at.sidebar.selectbox(key="tpl_name").set_value("last_word").run()
    assert at.text_area(key="editor::last_word").value.startswith("import os\n")


def test_save_and_duplicate_in_scratch_folder(
    user_templates: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = (ROOT / "templates" / "last_word.py").read_text()
    (user_templates / "scratch_word.py").write_text(
        src.replace('name="last_word"', 'name="scratch_word"')
    )
    at = page()
    at.sidebar.selectbox(key="tpl_name").set_value("scratch_word").run()
    assert not at.exception, at.exception
    # an untrusted template: its samples and verdicts come from the sandbox
    assert any("untrusted: runs in the sandbox" in c.value for c in at.caption)
    assert any("4/4 samples follow the rule" in c.value for c in at.caption)
    edited = at.text_area(key="editor::scratch_word").value.replace(
        "Complete the last word", "Finish the last word"
    )
    at.text_area(key="editor::scratch_word").input(edited).run()
    assert any("Changes against the saved file" in e.label for e in at.expander)
    at.button(key="sbx::scratch_word").click().run()
    assert not at.exception
    assert any(c.value.startswith("Finish the last word") for c in at.code)
    at.button(key="save::scratch_word").click().run()
    assert (user_templates / "scratch_word.py").read_text() == edited
    assert len(list((user_templates / ".history").glob("scratch_word-*.py"))) == 1
    at.text_input(key="dup_name::scratch_word").input("scratch_copy").run()
    at.button(key="dup::scratch_word").click().run()
    assert not at.exception
    copy = (user_templates / "scratch_copy.py").read_text()
    assert 'name="scratch_copy"' in copy and "def scratch_copy(" in copy
    shutil.rmtree(user_templates)


def test_untrusted_template_with_an_artifact_previews_in_the_sandbox(
    user_templates: Path,
) -> None:
    """The page names a declared artifact with no version (and the command that drafts
    one), then previews with the latest version once there is one."""
    import json

    from cookbook_core import artifacts
    from tests.test_artifacts import GROUPS, RHYMER

    path = user_templates / "rhymer.py"
    path.write_text(RHYMER)
    at = page()
    at.sidebar.selectbox(key="tpl_name").set_value("rhymer").run()
    assert not at.exception, at.exception
    captions = [c.value for c in at.caption]
    assert any("cookbook templates artifact draft rhymer rhymes" in c for c in captions)
    assert any("holds no version" in e.value for e in at.error)
    artifacts.save(path, "rhymes", json.dumps(GROUPS))
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any("version 1 of 1" in c.value for c in at.caption)
    assert any("4/4 samples follow the rule" in c.value for c in at.caption)
