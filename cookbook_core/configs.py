"""Config declarations: one dataclass per kind of run, and everything else derived from it.

A run's config (``TrainConfig``, ``EvalConfig``, ``SelfGuideConfig``, ``GenerateConfig``)
is a dataclass whose fields are declared with :func:`option`: the default, the help
text, and the allowed values (``min``/``max`` inclusive, ``above``/``below`` exclusive,
``choices``), plus how the studio offers it (``ui_min``/``ui_max`` where the valid range
is open or unbounded, ``ui_default`` where the studio starts elsewhere, ``ui_none`` for
the widget value that stands for ``None``).  From that one declaration:

* :meth:`Config.from_dict` / :meth:`Config.to_dict`: the JSON form saved in run folders
  and job configs (an unknown key is a ``BadInput`` naming it);
* :meth:`Config.check`: the range, choice and type checks, with one message style
  (``steps must be a positive integer, got 0``);
* :func:`add_arguments` / :func:`from_args`: the ``cookbook`` subcommand's flags (flag
  name, type, choices, default, help) and the config they parse to;
* :func:`widget`: ``min_value``/``max_value``/``value``/``help`` for a studio
  ``number_input`` or ``slider``; :func:`default` and :func:`help_text` for the rest.

Usage, in the module that owns a config::

    @dataclass
    class TrainConfig(configs.Config):
        what: ClassVar[str] = "training"      # "unknown training option(s): ..."
        error: ClassVar[type[BadInput]] = TrainConfigError
        steps: int = configs.option(80, help="optimizer steps", min=1, ui_max=1_000_000)

What it does not do: know any particular config, or check what needs the world (a
dataset exists, a model resolves): each config's ``validate`` does that after
:meth:`Config.check`.  It imports nothing beyond the standard library and ``errors``,
so the ``cookbook`` command can build its parser without loading any engine.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, TypeVar

from cookbook_core.errors import BadInput

C = TypeVar("C", bound="Config")


def option(
    default: Any = dataclasses.MISSING,
    *,
    help: str,
    factory: Callable[[], Any] | None = None,
    min: float | None = None,
    max: float | None = None,
    above: float | None = None,
    below: float | None = None,
    choices: Sequence[str] | None = None,
    label: str | None = None,
    message: str | None = None,
    flags: Sequence[str] | None = None,
    cli: bool = True,
    convert: Callable[[Any], Any] | None = None,
    ui_min: float | None = None,
    ui_max: float | None = None,
    ui_default: Any = None,
    ui_none: float | None = None,
) -> Any:
    """A dataclass field with its help text and allowed values.

    ``help``: one line for ``--help`` and the studio's tooltip.  ``min``/``max``:
    inclusive bounds; ``above``/``below``: exclusive ones; ``choices``: the allowed
    strings.  ``label``: the name used in error messages (default: the field name);
    ``message``: a format string replacing the standard message (fields ``label``,
    ``value``, ``min``, ``max``, ``choices``).  ``flags``: the command-line flags
    (default ``--field-name``); ``cli=False``: the subcommand declares this field's flag
    itself (with :func:`help_text`).  ``convert``: applied to the JSON value by
    :meth:`Config.from_dict` (nested dataclasses).  ``ui_*``: how the studio offers it.
    ``factory``: a default factory (for lists and dicts).
    """
    meta = {
        "help": help,
        "min": min,
        "max": max,
        "above": above,
        "below": below,
        "choices": tuple(choices) if choices is not None else None,
        "label": label,
        "message": message,
        "flags": tuple(flags) if flags is not None else None,
        "cli": cli,
        "convert": convert,
        "ui_min": ui_min,
        "ui_max": ui_max,
        "ui_default": ui_default,
        "ui_none": ui_none,
    }
    meta = {k: v for k, v in meta.items() if v is not None}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


class Config:
    """Base of the config dataclasses: JSON form and checks derived from the declaration.

    Subclasses set ``what`` (the word in "unknown <what> option(s)") and ``error`` (the
    ``BadInput`` subclass raised).
    """

    what: ClassVar[str] = "config"
    error: ClassVar[type[BadInput]] = BadInput

    @classmethod
    def from_dict(cls: type[C], data: Mapping[str, Any]) -> C:
        """The config from its JSON form: unknown or missing keys raise ``cls.error``."""
        if not isinstance(data, Mapping):
            raise cls.error(f"a {cls.what} config must be a JSON object, got {data!r}")
        specs = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        extra = set(data) - set(specs)
        if extra:
            raise cls.error(f"unknown {cls.what} option(s): {', '.join(sorted(extra))}")
        missing = [n for n, f in specs.items() if n not in data and _required(f)]
        if missing:
            raise cls.error(f"a {cls.what} config needs {', '.join(missing)}")
        values = {}
        for name, value in data.items():
            convert = specs[name].metadata.get("convert")
            values[name] = convert(value) if convert is not None and value is not None else value
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (nested dataclasses as dicts)."""
        return dataclasses.asdict(self)  # type: ignore[call-overload,no-any-return]

    def check(self) -> None:
        """Raise ``self.error`` for the first value outside its declared type, range or
        choices (``None`` passes for optional fields)."""
        hints = _hints(type(self))
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            problem = _problem(f, hints[f.name], getattr(self, f.name))
            if problem is not None:
                raise self.error(problem)


# ----------------------------------------------------------------------------------
# Reading the declaration


def _required(f: dataclasses.Field[Any]) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _base(hint: Any) -> tuple[Any, bool]:
    """(the type without ``None``, whether ``None`` is allowed)."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        optional = len(args) < len(typing.get_args(hint))
        return (args[0] if len(args) == 1 else hint), optional
    return hint, False


def field_of(cls: type, name: str) -> dataclasses.Field[Any]:
    """The dataclass field ``name`` of config class ``cls`` (``KeyError`` if none)."""
    for f in dataclasses.fields(cls):
        if f.name == name:
            return f
    raise KeyError(f"{cls.__name__} has no field {name!r}")


def meta(cls: type, name: str) -> Mapping[str, Any]:
    """The declared metadata of one field (help, bounds, choices, ui hints)."""
    return field_of(cls, name).metadata


def default(cls: type, name: str) -> Any:
    """The default value of field ``name`` (a fresh one for factory defaults)."""
    f = field_of(cls, name)
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    if f.default is dataclasses.MISSING:
        raise KeyError(f"{cls.__name__}.{name} has no default")
    return f.default


def help_text(cls: type, name: str, *, with_default: bool = True) -> str:
    """The field's help, with its default appended for ``--help``."""
    f = field_of(cls, name)
    text = str(f.metadata.get("help", ""))
    if not with_default or _required(f):
        return text
    value = default(cls, name)
    if value is None or value is False or value == [] or value == {}:
        return text
    shown = ",".join(map(str, value)) if isinstance(value, list | tuple) else value
    return f"{text} (default: {shown})"


# ----------------------------------------------------------------------------------
# Checks


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else f"{x:g}"


def requirement(cls: type, name: str) -> str:
    """What a valid value of field ``name`` is, in words (``a positive integer``,
    ``in [0, 1]``, ``> 0``, ``one of lora, full``); empty when anything of its type is."""
    m = meta(cls, name)
    kind, _ = _base(_hints(cls)[name])
    return _requirement(m, kind)


def _requirement(m: Mapping[str, Any], kind: Any) -> str:
    if "choices" in m:
        return "one of " + ", ".join(m["choices"])
    lo, hi = m.get("min"), m.get("max")
    above, below = m.get("above"), m.get("below")
    if kind is int and lo == 1 and hi is None and above is None and below is None:
        return "a positive integer"
    left = f"[{_num(lo)}" if lo is not None else (f"({_num(above)}" if above is not None else "")
    right = f"{_num(hi)}]" if hi is not None else (f"{_num(below)})" if below is not None else "")
    if left and right:
        return f"in {left}, {right}"
    if lo is not None:
        return f">= {_num(lo)}"
    if above is not None:
        return f"> {_num(above)}"
    if hi is not None:
        return f"<= {_num(hi)}"
    if below is not None:
        return f"< {_num(below)}"
    return ""


def _problem(f: dataclasses.Field[Any], hint: Any, value: Any) -> str | None:
    m = f.metadata
    kind, optional = _base(hint)
    if value is None:
        return None if optional else f"{m.get('label', f.name)} must be given"
    label = m.get("label", f.name)
    need = _requirement(m, kind)
    fmt = m.get("message") or "{label} must be {need}, got {value!r}"

    def say(req: str) -> str:
        return fmt.format(
            label=label,
            need=req,
            value=value,
            min=_num(m["min"]) if "min" in m else "",
            max=_num(m["max"]) if "max" in m else "",
            choices=", ".join(m.get("choices", ())),
        )

    if kind is bool:
        return None if isinstance(value, bool) else say("true or false")
    if kind is int:
        if not isinstance(value, int) or isinstance(value, bool):
            return say(need if need.startswith("a ") else f"an integer {need}".strip())
    elif kind is float:
        if not isinstance(value, int | float) or isinstance(value, bool):
            return say(f"a number {need}".strip())
        if not math.isfinite(value):
            return say(f"a finite number {need}".strip())
    elif kind is str and "choices" in m:
        return None if value in m["choices"] else say(need)
    else:
        return None  # paths, lists, dicts: checked by the config's own validate
    lo, hi = m.get("min"), m.get("max")
    above, below = m.get("above"), m.get("below")
    if (
        (lo is not None and value < lo)
        or (hi is not None and value > hi)
        or (above is not None and value <= above)
        or (below is not None and value >= below)
    ):
        return say(need)
    return None


# ----------------------------------------------------------------------------------
# Command line


def flags(cls: type, name: str) -> tuple[str, ...]:
    """The command-line flags of field ``name`` (``--batch-size`` for ``batch_size``)."""
    return tuple(meta(cls, name).get("flags") or ("--" + name.replace("_", "-"),))


def cli_fields(cls: type) -> list[str]:
    """The fields :func:`add_arguments` turns into flags (all but ``cli=False``)."""
    return [f.name for f in dataclasses.fields(cls) if f.metadata.get("cli", True)]


def _comma_list(text: str) -> list[str]:
    items = [x.strip() for x in text.split(",") if x.strip()]
    if not items:
        raise argparse.ArgumentTypeError("expected a comma-separated list")
    return items


def add_arguments(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    cls: type,
    names: Sequence[str] | None = None,
    *,
    skip: Sequence[str] = (),
) -> None:
    """Add a flag for each of ``names`` (default: every :func:`cli_fields` field not in
    ``skip``), typed, with choices, default and help from the declaration; the flag's
    ``dest`` is the field name, so :func:`from_args` finds it."""
    hints = _hints(cls)
    chosen = list(names) if names is not None else [n for n in cli_fields(cls) if n not in skip]
    for name in chosen:
        f = field_of(cls, name)
        m = f.metadata
        kind, _ = _base(hints[name])
        kw: dict[str, Any] = {"dest": name, "help": help_text(cls, name).replace("%", "%%")}
        if _required(f):
            kw["required"] = True
        else:
            kw["default"] = default(cls, name)
        if kind is bool:
            kw["action"] = (
                "store_true" if kw.get("default") is False else argparse.BooleanOptionalAction
            )
        elif typing.get_origin(kind) is list:
            kw.update(type=_comma_list, metavar="A,B,...")
        elif kind in (int, float, str):
            kw["type"] = kind
            if "choices" in m:
                kw["choices"] = list(m["choices"])
        else:
            raise TypeError(f"{cls.__name__}.{name}: no flag for type {kind!r}; set cli=False")
        parser.add_argument(*flags(cls, name), **kw)


def from_args(cls: type[C], args: argparse.Namespace, **given: Any) -> C:
    """The config from parsed arguments: every field that has a flag (``dest`` = field
    name) read from ``args``, then ``given`` (values the subcommand computes itself)."""
    values = {n: getattr(args, n) for n in cli_fields(cls) if hasattr(args, n)}
    values.update(given)
    return cls.from_dict(values)


# ----------------------------------------------------------------------------------
# Studio widgets


def widget(cls: type, name: str) -> dict[str, Any]:
    """``min_value``, ``max_value``, ``value`` and ``help`` for a Streamlit
    ``number_input`` or ``slider`` of field ``name`` (all ints for an int field, floats
    for a float one).  An optional field whose ``None`` the studio shows as a number
    (``ui_none``, e.g. 0 for "all") starts from that number."""
    m = meta(cls, name)
    kind, _ = _base(_hints(cls)[name])
    cast: Callable[[Any], Any] = int if kind is int else float
    none = m.get("ui_none")
    lo = m.get("ui_min", m.get("min", m.get("above")))
    if none is not None:
        lo = none
    hi = m.get("ui_max", m.get("max", m.get("below")))
    value = m.get("ui_default")
    if value is None:
        value = default(cls, name)
        if value is None:
            value = none if none is not None else lo
    return {
        "min_value": None if lo is None else cast(lo),
        "max_value": None if hi is None else cast(hi),
        "value": cast(value),
        "help": help_text(cls, name, with_default=False),
    }


def from_widget(cls: type, name: str, value: Any) -> Any:
    """A widget's value as the field's value: ``ui_none`` becomes ``None``, ints stay ints."""
    m = meta(cls, name)
    if value is None or ("ui_none" in m and value == m["ui_none"]):
        return None
    kind, _ = _base(_hints(cls)[name])
    return int(value) if kind is int else float(value) if kind is float else value
