"""``cookbook mix optimize|what-if|build`` on a small matrix."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from cookbook_core.cli.main import main


@pytest.fixture
def matrix(tmp_path: Path) -> Path:
    A = pd.DataFrame(
        {"squad": [0.10, 0.50, 0.20], "arc": [0.30, 0.25, 0.40]},
        index=pd.Index(["base", "document_qa", "multiple_choice_qa"], name="template"),
    )
    path = tmp_path / "A.csv"
    A.to_csv(path)
    return path


def test_optimize_then_build(
    matrix: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = tmp_path / "mix.json"
    assert (
        main(
            [
                "mix",
                "optimize",
                "--matrix",
                str(matrix),
                "--objective",
                "maxmin",
                "--out",
                str(result),
            ]
        )
        == 0
    )
    res = json.loads(result.read_text())
    assert res["objective"] == "maxmin"
    w = res["weights"]
    assert set(w) == {"document_qa", "multiple_choice_qa"} and abs(sum(w.values()) - 1) < 1e-9
    # worst task equalized: 0.5a + 0.2(1-a) = 0.25a + 0.4(1-a)  ->  a = 4/9
    assert w["document_qa"] == pytest.approx(4 / 9, abs=1e-6)
    out = tmp_path / "ds"
    weights = ",".join(f"{t}={v}" for t, v in w.items())
    assert (
        main(
            [
                "mix",
                "build",
                "--weights",
                weights,
                "-n",
                "90",
                "--out",
                str(out),
                "--from-result",
                str(result),
            ]
        )
        == 0
    )
    manifest = json.loads((out / "manifest.json").read_text())
    assert [t["count"] for t in manifest["templates"]] == [40, 50]
    assert manifest["extra"]["mixture"]["objective"] == "maxmin"


def test_what_if_and_bad_input(matrix: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(
            [
                "mix",
                "what-if",
                "--matrix",
                str(matrix),
                "--weights",
                "document_qa=0.5,multiple_choice_qa=0.5",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "35.0" in out  # squad: (50 + 20) / 2
    assert main(["mix", "what-if", "--matrix", str(matrix), "--weights", "document_qa=2"]) == 2
    assert "normalize" in capsys.readouterr().err
    assert (
        main(
            [
                "mix",
                "optimize",
                "--matrix",
                str(matrix),
                "--bound",
                "document_qa=0.8:1",
                "--bound",
                "multiple_choice_qa=0.5:1",
            ]
        )
        == 2
    )
    assert "infeasible bounds" in capsys.readouterr().err
    assert main(["mix", "optimize", "--matrix", "/no/such.csv"]) == 2
