"""One declaration per config (issue 18, item 3): the dataclass fields of ``TrainConfig``,
``EvalConfig``, ``SelfGuideConfig`` and ``GenerateConfig`` carry their help, ranges and
defaults, and the ``cookbook`` flags, the studio's widgets and the studio's config
builders are derived from them.

The parity tests fail when any front end restates a default differently: the config that
the CLI parses from the fewest possible arguments, the one the studio builds from
untouched widgets, and the dataclass's own defaults must be equal, field by field, and
every widget's range must be the declared one.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest
from streamlit.testing.v1 import AppTest

from cookbook_core import configs
from cookbook_core.cli import eval as cli_eval
from cookbook_core.cli import jobs as cli_jobs
from cookbook_core.cli import main as cli_main
from cookbook_core.cli import selfguide as cli_selfguide
from cookbook_core.errors import BadInput
from cookbook_core.eval.config import EvalConfig
from cookbook_core.generate_config import GenerateConfig, Source
from cookbook_core.selfguide.config import SelfGuideConfig
from cookbook_core.train.config import TrainConfig

PAGES = Path(__file__).resolve().parent.parent / "pages"
CONFIGS = (TrainConfig, EvalConfig, SelfGuideConfig, GenerateConfig, Source)


# ----------------------------------------------------------------------------------
# The machinery, on a small config


class ToyError(BadInput):
    pass


@dataclass
class Toy(configs.Config):
    what: ClassVar[str] = "toy"
    error: ClassVar[type[BadInput]] = ToyError

    name: str = configs.option(help="a name")
    steps: int = configs.option(5, help="how many", min=1, ui_max=100)
    rate: float = configs.option(0.5, help="a share", min=0, max=1)
    temp: float | None = configs.option(None, help="a temperature", above=0)
    mode: str = configs.option("a", help="a mode", choices=("a", "b"))
    limit: int | None = configs.option(None, help="at most", min=1, ui_none=0, ui_default=7)
    flag: bool = configs.option(False, help="a switch")
    maybe: bool | None = configs.option(None, help="a three-way switch")
    items: list[str] = configs.option(factory=lambda: ["x", "y"], help="a list")


def test_from_dict_names_unknown_and_missing_keys() -> None:
    assert Toy.from_dict({"name": "n"}) == Toy(name="n")
    assert Toy.from_dict(Toy(name="n", steps=3).to_dict()) == Toy(name="n", steps=3)
    with pytest.raises(ToyError, match="unknown toy option\\(s\\): bogus, zz"):
        Toy.from_dict({"name": "n", "zz": 1, "bogus": 2})
    with pytest.raises(ToyError, match="a toy config needs name"):
        Toy.from_dict({"steps": 2})
    with pytest.raises(ToyError, match="must be a JSON object"):
        Toy.from_dict(["name"])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "change, message",
    [
        ({"steps": 0}, "steps must be a positive integer, got 0"),
        ({"steps": 2.0}, "steps must be a positive integer, got 2.0"),
        ({"steps": True}, "steps must be a positive integer, got True"),
        ({"rate": 1.5}, "rate must be in [0, 1], got 1.5"),
        ({"rate": "x"}, "rate must be a number in [0, 1], got 'x'"),
        ({"rate": float("nan")}, "rate must be a finite number in [0, 1], got nan"),
        ({"temp": 0.0}, "temp must be > 0, got 0.0"),
        ({"mode": "c"}, "mode must be one of a, b, got 'c'"),
        ({"limit": 0}, "limit must be a positive integer, got 0"),
        ({"flag": "yes"}, "flag must be true or false, got 'yes'"),
    ],
)
def test_check_says_what_a_valid_value_is(change: dict[str, Any], message: str) -> None:
    Toy(name="n").check()  # the defaults are valid
    Toy(name="n", temp=0.1, limit=1, maybe=True).check()
    with pytest.raises(ToyError) as info:
        dataclasses.replace(Toy(name="n"), **change).check()
    assert str(info.value) == message


def test_flags_are_derived_from_the_declaration() -> None:
    parser = argparse.ArgumentParser()
    configs.add_arguments(parser, Toy)
    args = parser.parse_args(["--name", "n"])
    assert configs.from_args(Toy, args) == Toy(name="n")
    args = parser.parse_args(
        ["--name", "n", "--steps", "3", "--mode", "b", "--flag", "--no-maybe", "--items", "p,q"]
    )
    assert configs.from_args(Toy, args) == Toy(
        name="n", steps=3, mode="b", flag=True, maybe=False, items=["p", "q"]
    )
    with pytest.raises(SystemExit):
        parser.parse_args(["--name", "n", "--mode", "c"])  # choices come from the declaration
    with pytest.raises(SystemExit):
        parser.parse_args([])  # a field without a default is a required flag
    helps = {a.dest: a.help for a in parser._actions}
    assert helps["steps"] == "how many (default: 5)" and helps["temp"] == "a temperature"


def test_widgets_are_derived_from_the_declaration() -> None:
    assert configs.widget(Toy, "steps") == {
        "min_value": 1,
        "max_value": 100,
        "value": 5,
        "help": "how many",
    }
    assert configs.widget(Toy, "rate") == {
        "min_value": 0.0,
        "max_value": 1.0,
        "value": 0.5,
        "help": "a share",
    }
    limit = configs.widget(Toy, "limit")  # None is shown as 0; the studio starts at 7
    assert (limit["min_value"], limit["value"]) == (0, 7)
    assert configs.from_widget(Toy, "limit", 0) is None
    assert configs.from_widget(Toy, "limit", 7) == 7


def test_every_field_of_every_config_has_help() -> None:
    for cls in CONFIGS:
        for f in dataclasses.fields(cls):
            assert f.metadata.get("help"), f"{cls.__name__}.{f.name} has no help"


def test_the_declared_defaults_pass_their_own_checks() -> None:
    TrainConfig(data="d").check()
    EvalConfig(tasks=["squad"]).check()
    SelfGuideConfig(task="t").check()
    GenerateConfig(sources=[Source("document_qa")], n=1).check()


# ----------------------------------------------------------------------------------
# The CLI: the fewest arguments give the declared defaults


def _parse(*argv: str) -> argparse.Namespace:
    return cli_main.build_parser().parse_args(list(argv))


def test_cli_defaults_are_the_declared_defaults() -> None:
    train = cli_jobs._train_config(_parse("train", "--data", "d"))
    assert train == TrainConfig(data="d").to_dict()
    evaluation = cli_eval._config(_parse("eval", "--task", "squad"))
    assert evaluation == EvalConfig(tasks=["squad"])
    selfguide = cli_selfguide._config(_parse("selfguide", "run", "--task", "task738"))
    assert selfguide == SelfGuideConfig(task="task738")
    generate = cli_main.generate_config(_parse("generate", "-t", "document_qa", "-n", "5"))
    assert generate == GenerateConfig(sources=[Source("document_qa")], n=5)


def _subparser(parser: argparse.ArgumentParser, *path: str) -> argparse.ArgumentParser:
    for name in path:
        action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = action.choices[name]
    return parser


@pytest.mark.parametrize(
    "cls, path",
    [
        (TrainConfig, ("train",)),
        (EvalConfig, ("eval",)),
        (SelfGuideConfig, ("selfguide", "run")),
        (GenerateConfig, ("generate",)),
    ],
)
def test_every_declared_option_is_a_flag_with_its_default_and_help(
    cls: type, path: tuple[str, ...]
) -> None:
    parser = _subparser(cli_main.build_parser(), *path)
    actions = {a.dest: a for a in parser._actions}
    for name in configs.cli_fields(cls):
        action = actions[name]
        assert set(configs.flags(cls, name)) <= set(action.option_strings), name
        if action.required:  # only a field without a default is a required flag
            assert configs.field_of(cls, name).default is dataclasses.MISSING, name
        else:
            assert action.default == configs.default(cls, name), name
        assert action.help.replace("%%", "%").startswith(configs.meta(cls, name)["help"]), name
        if "choices" in configs.meta(cls, name):
            assert list(action.choices) == list(configs.meta(cls, name)["choices"]), name


# ----------------------------------------------------------------------------------
# The studio: untouched widgets give the declared defaults, with the declared ranges


def _check_widgets(at: AppTest, cls: type, widgets: dict[str, str]) -> None:
    """Each widget (by key) shows field ``name``'s declared range, and its untouched value
    is the declared default (or the declared studio default)."""
    for key, name in widgets.items():
        element = at.number_input(key=key) if key in _numbers(at) else at.slider(key=key)
        want = configs.widget(cls, name)
        assert element.value == want["value"], (key, element.value, want)
        lo = element.min if hasattr(element, "min") else element.proto.min
        hi = element.max if hasattr(element, "max") else element.proto.max
        assert (lo, hi) == (want["min_value"], want["max_value"]), key
        studio_default = configs.meta(cls, name).get("ui_default")
        expected = studio_default if studio_default is not None else configs.default(cls, name)
        assert configs.from_widget(cls, name, element.value) == expected, key


def _numbers(at: AppTest) -> set[str]:
    return {w.key for w in at.number_input}


def test_training_page_widgets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COOKBOOK_HOME", str(tmp_path / "home"))
    at = AppTest.from_file(str(PAGES / "training.py"), default_timeout=60).run()
    assert not at.exception, at.exception
    _check_widgets(
        at,
        TrainConfig,
        {
            "tr_steps": "steps",
            "tr_lr": "lr",
            "tr_batch": "batch_size",
            "tr_maxlen": "max_length",
            "tr_rank": "lora_r",
            "tr_save": "save_every",
            "tr_seed": "seed",
            "tr_maxs": "max_samples",
            "tr_natural_n": "natural_n",
        },
    )
    assert at.text_input(key="tr_model").value == configs.default(TrainConfig, "model")
    assert at.radio(key="tr_method").value == configs.default(TrainConfig, "method")


def test_evaluation_page_widgets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COOKBOOK_HOME", str(tmp_path / "home"))
    at = AppTest.from_file(str(PAGES / "evaluation.py"), default_timeout=60).run()
    assert not at.exception, at.exception
    _check_widgets(at, EvalConfig, {"ev_limit": "limit", "ev_maxnew": "max_new_tokens"})
    assert at.text_input(key="ev_model").value == configs.default(EvalConfig, "model")


def test_selfguide_page_widgets(
    shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COOKBOOK_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COOKBOOK_EVAL_DATA", str(shared_data))
    at = AppTest.from_file(str(PAGES / "selfguide.py"), default_timeout=60).run()
    assert not at.exception, at.exception
    _check_widgets(
        at,
        SelfGuideConfig,
        {
            "sg_n_inputs": "n_inputs",
            "sg_n_outputs": "n_outputs",
            "sg_steps": "steps",
            "sg_eval_limit": "eval_limit",
            "sg_min_share": "min_share",
        },
    )


def test_datasets_page_widgets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COOKBOOK_HOME", str(tmp_path / "home"))
    at = AppTest.from_file(str(PAGES / "datasets.py"), default_timeout=60).run()
    assert not at.exception, at.exception
    _check_widgets(at, GenerateConfig, {"ds_n": "n", "ds_seed": "seed"})
    _check_widgets(at, Source, {"ds_w::document_qa": "weight"})
    assert at.selectbox(key="ds_format").value == configs.default(GenerateConfig, "format")


def test_studio_config_builders_use_the_declared_defaults(tmp_path: Path) -> None:
    from cookbook_core.studio import evaluation as studio_eval
    from cookbook_core.studio import jobs as studio_jobs

    assert studio_jobs.train_config("d") == TrainConfig(data="d").to_dict()
    assert studio_eval.eval_config(["squad"]) == EvalConfig(tasks=["squad"]).to_dict()
    with pytest.raises(BadInput, match="unknown evaluation option"):
        studio_eval.eval_config(["squad"], limt=3)
    cfg = studio_jobs.generate_config({"document_qa": 1.0}, 10, name="parity-check")["config"]
    assert cfg == GenerateConfig(sources=[Source("document_qa")], n=10).to_dict()
