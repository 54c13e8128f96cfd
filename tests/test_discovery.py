"""Finding templates: broken files listed with their error, duplicates named,
did-you-mean for unknown names, reload on change."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from cookbook_core import discovery
from cookbook_core.templates import TemplateError
from tests.test_generate import FAULTY


def test_syntax_error_does_not_hide_other_templates(extra_templates: Path) -> None:
    (extra_templates / "broken.py").write_text(
        "@template(name='broken', family='search', task='x')\ndef f(:\n"
    )
    entries = discovery.scan()
    broken = [e for e in entries if e.file.name == "broken.py"]
    assert len(broken) == 1 and not broken[0].ok
    assert "line 2" in broken[0].error
    assert "document_qa" in discovery.names()
    assert discovery.get("document_qa").name == "document_qa"
    with pytest.raises(TemplateError, match="broken"):
        discovery.get("broken")


def test_duplicate_names_name_both_files(extra_templates: Path) -> None:
    (extra_templates / "copy.py").write_text(FAULTY.replace('name="flaky"', 'name="document_qa"'))
    with pytest.raises(discovery.DuplicateTemplate) as info:
        discovery.get("document_qa")
    assert "copy.py" in str(info.value) and "templates/document_qa.py" in str(info.value)


def test_unknown_name_suggests(extra_templates: Path) -> None:
    with pytest.raises(discovery.UnknownTemplate, match="did you mean 'document_qa'"):
        discovery.get("documnt_qa")


def test_edited_file_is_reloaded(extra_templates: Path) -> None:
    f = extra_templates / "flaky.py"
    f.write_text(FAULTY)
    assert discovery.get("flaky").params["fail_rate"].default == 0.5
    f.write_text(FAULTY.replace("= 0.5,", "= 0.25,"))
    later = time.time() + 5
    os.utime(f, (later, later))
    assert discovery.get("flaky").params["fail_rate"].default == 0.25


def test_import_error_is_reported_with_file(extra_templates: Path) -> None:
    (extra_templates / "bad_import.py").write_text(
        FAULTY.replace('name="flaky"', 'name="bad_import"') + "\nimport no_such_module_xyz\n"
    )
    with pytest.raises(TemplateError, match="bad_import.py.*no_such_module_xyz"):
        discovery.get("bad_import")
