"""The template object model: the ``@template`` decorator, parameters and examples.

A template is a plain Python function that draws random tokens and returns one
:class:`Example` (prompt, completion, meta).  The decorator wraps it in a
:class:`Template` that knows its name, task family, the real task it stands for,
its typed parameters (with defaults and documented ranges, read from the
function's ``Annotated`` keyword arguments) and its rule checker.

**Determinism (random streams).**  The indices of a template are cut into fixed
streams of :data:`STREAM` consecutive indices.  Stream ``s`` has one
``random.Random`` seeded from (template name, seed, ``s``); sample ``k`` is the
``k % STREAM``-th sample drawn from stream ``k // STREAM``, after the samples before
it in that stream (each retried on a fault, see :data:`RETRIES`).  So sample ``k``
is still a pure function of (template, params, seed, ``k``) and of nothing else (not
of the dataset size, the mixture, the block layout or the number of workers), while
a generator is seeded once per ``STREAM`` samples instead of once per sample.
:meth:`Template.samples` is the one implementation of that rule: the generation
engine, :meth:`Template.sample` and the previews all draw through it.

What this module does not do: find template files on disk (``discovery``), pick
token spaces (``tokens``) or write datasets (``generate``).
"""

from __future__ import annotations

import difflib
import inspect
import random
import re
import traceback
import typing
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cookbook_core.errors import BadInput

FAMILIES = ("selection", "search", "comparison")

_SEED_STRIDE = 1 << 40  # stream space per (template, seed); far more than any dataset

STREAM = 64
"""Consecutive indices drawn from one seeded generator (part of the determinism rule:
changing it changes every sample)."""

RETRIES = 3
"""Attempts per sample: a template that raises (or returns something that is not a
valid :class:`Example`) is called again on the same, advanced, stream."""


ARTIFACT_NAME = re.compile(r"^[a-z][a-z0-9_]{0,47}$")
"""What an artifact may be called (it becomes part of a file name)."""


class TemplateError(BadInput):
    """Bad use of a template: unknown name or parameter, a value out of range."""


@dataclass(frozen=True)
class Range:
    """Inclusive numeric bounds for an ``int`` or ``float`` parameter."""

    low: float
    high: float


@dataclass(frozen=True)
class OneOf:
    """The allowed values of a ``str`` parameter."""

    values: tuple[str, ...]

    def __init__(self, *values: str) -> None:
        object.__setattr__(self, "values", tuple(values))


@dataclass(frozen=True)
class Param:
    """One typed keyword parameter of a template, as a UI or CLI sees it."""

    name: str
    type: type
    default: Any
    help: str = ""
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] | None = None

    def describe(self) -> str:
        """Human text for the allowed values: ``int in [1, 10]``, ``one of a, b``."""
        if self.choices:
            return "one of " + ", ".join(self.choices)
        if self.low is not None and self.high is not None:
            return f"{self.type.__name__} in [{_fmt(self.low)}, {_fmt(self.high)}]"
        return self.type.__name__

    def coerce(self, value: Any, template: str = "") -> Any:
        """Convert ``value`` (possibly a CLI string) to this parameter's type and check it."""
        where = f"{template}.{self.name}" if template else self.name
        try:
            converted = _convert(self.type, value)
        except (TypeError, ValueError):
            raise TemplateError(
                f"parameter {where}={value!r} is not a valid {self.type.__name__}; "
                f"allowed: {self.describe()}"
            ) from None
        if self.choices is not None and converted not in self.choices:
            raise TemplateError(
                f"parameter {where}={converted!r} is not allowed; allowed: {self.describe()}"
            )
        if (
            self.low is not None
            and converted < self.low
            or (self.high is not None and converted > self.high)
        ):
            raise TemplateError(
                f"parameter {where}={converted!r} is out of range; allowed: {self.describe()}"
            )
        return converted


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _convert(kind: type, value: Any) -> Any:
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(value)
    if kind is int:
        if isinstance(value, bool):
            raise TypeError(value)
        if isinstance(value, float) and not value.is_integer():
            raise ValueError(value)
        return int(value)
    if kind is float:
        if isinstance(value, bool):
            raise TypeError(value)
        return float(value)
    if kind is str:
        if not isinstance(value, str):
            raise TypeError(value)
        return value
    raise TypeError(f"unsupported parameter type {kind}")


@dataclass(slots=True)
class Example:
    """One generated sample: the prompt, the completion the rule dictates, and meta.

    ``meta`` holds at least ``parent`` (the drawn inputs) and ``child`` (inputs
    derived from them); templates may add ``rule`` (what the rule computed).
    """

    prompt: str
    completion: str
    meta: dict[str, Any] = field(default_factory=dict)


Generator = Callable[..., Example]
Checker = Callable[[Mapping[str, Any], str, Mapping[str, Any]], bool]


@dataclass(slots=True)
class FaultLog:
    """Attempts and faults counted while drawing samples, with the first traceback."""

    attempts: int = 0
    faults: int = 0
    first: str | None = None


def _validate(ex: Any, name: str) -> None:
    if not isinstance(ex, Example):
        raise TypeError(f"template {name!r} returned {type(ex).__name__}, expected Example")
    if not (isinstance(ex.prompt, str) and isinstance(ex.completion, str)):
        raise TypeError(f"template {name!r}: prompt and completion must be str")
    if not isinstance(ex.meta, dict):
        raise TypeError(f"template {name!r}: meta must be a dict")


class Template:
    """A data-generating template: generator function + parameters + rule checker."""

    def __init__(
        self,
        fn: Generator,
        *,
        name: str,
        family: str,
        task: str | Sequence[str],
        token_space: str | None = None,
        artifacts: Mapping[str, str] | None = None,
    ) -> None:
        if family not in FAMILIES:
            raise TemplateError(
                f"template {name!r}: family must be one of {', '.join(FAMILIES)}, not {family!r}"
            )
        if not name.isidentifier():
            raise TemplateError(f"template name {name!r} must be a Python identifier")
        self.fn = fn
        self.name = name
        self.family = family
        self.tasks: tuple[str, ...] = (task,) if isinstance(task, str) else tuple(task)
        self.token_space = token_space
        self.doc = inspect.cleandoc(fn.__doc__ or "")
        self.params: dict[str, Param] = _read_params(fn, name)
        self.source_file: str | None = inspect.getsourcefile(fn)
        self._checker: Checker | None = None
        self._salt = zlib.crc32(name.encode()) & 0xFFFF
        self.artifacts: dict[str, str] = _read_artifacts(artifacts, name)
        self._artifact_data: dict[str, Any] = {}
        self._artifact_files = True  # False in the sandbox child: data only as supplied

    # -- artifacts ---------------------------------------------------------------
    def artifact(self, name: str) -> Any:
        """The data of the declared artifact ``name``: as supplied (the sandbox child), or
        the latest version stored next to the template's file (trusted, in-process)."""
        if name not in self.artifacts:
            declared = ", ".join(self.artifacts) or "none"
            raise TemplateError(
                f"template {self.name!r} reads artifact {name!r} but does not declare it "
                f"(declared: {declared}); add it to @template(artifacts={{...}})"
            )
        if name not in self._artifact_data:
            if not self._artifact_files or self.source_file is None:
                raise TemplateError(
                    f"template {self.name!r}: artifact {name!r} was not supplied to this run"
                )
            from cookbook_core import artifacts  # not in the sandbox: trusted templates only

            self._artifact_data[name] = artifacts.load(self.source_file, name, self.name)
        return self._artifact_data[name]

    def supply_artifacts(self, data: Mapping[str, Any]) -> None:
        """Use ``data`` (name -> parsed JSON) for this template's artifacts and never read
        files for them (how the sandbox child hands over what the parent sent)."""
        self._artifact_data = {k: v for k, v in data.items() if k in self.artifacts}
        self._artifact_files = False

    def _active(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """``fn`` running with this template as the one ``template_helpers.artifact``
        reads from (the function itself when no artifact is declared: no overhead)."""
        if not self.artifacts:
            return fn

        def call(*args: Any, **kwargs: Any) -> Any:
            _ACTIVE.append(self)
            try:
                return fn(*args, **kwargs)
            finally:
                _ACTIVE.pop()

        return call

    # -- declaration -------------------------------------------------------------
    def checker(self, fn: Checker) -> Checker:
        """Decorator: register ``fn(inputs, answer, params) -> bool`` as the rule checker."""
        self._checker = fn
        return fn

    # -- parameters --------------------------------------------------------------
    def resolve_params(self, given: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Defaults overlaid with ``given``, each value coerced and range-checked."""
        given = dict(given or {})
        out: dict[str, Any] = {}
        for key in given:
            if key not in self.params:
                raise TemplateError(self._unknown_param_message(key))
        for name, p in self.params.items():
            out[name] = p.coerce(given[name], self.name) if name in given else p.default
        return out

    def _unknown_param_message(self, key: str) -> str:
        known = list(self.params)
        msg = f"template {self.name!r} has no parameter {key!r}"
        close = difflib.get_close_matches(key, known, n=1)
        if close:
            msg += f"; did you mean {close[0]!r}?"
        return msg + f" (parameters: {', '.join(known) or 'none'})"

    # -- sampling ----------------------------------------------------------------
    def stream_rng(self, seed: int, stream: int) -> random.Random:
        """The generator of stream ``stream`` (indices ``[stream * STREAM, (stream + 1) *
        STREAM)``) under ``seed``: a pure function of the template's name and both."""
        return random.Random((seed * 65536 + self._salt) * _SEED_STRIDE + stream)

    def samples(
        self,
        vocab: Sequence[str],
        seed: int,
        start: int,
        stop: int,
        params: Mapping[str, Any] | None = None,
        *,
        resolved: bool = False,
        log: FaultLog | None = None,
    ) -> Iterator[Example]:
        """Samples ``start`` to ``stop - 1`` (see the module doc for the rule).

        A sample that raises, or returns anything but an :class:`Example` with ``str``
        prompt and completion and a ``dict`` meta, is attempted again on the advanced
        stream, up to :data:`RETRIES` times; then the last exception propagates.
        ``log`` (the engine's) counts attempts and faults and keeps the first
        traceback.  An unaligned ``start`` replays its stream from the beginning
        (at most ``STREAM - 1`` extra samples).  ``resolved=True`` skips parameter
        checking (the engine resolves once).
        """
        kw = dict(params or {}) if resolved else self.resolve_params(params)
        fn = self._active(self.fn)
        k = start - start % STREAM
        while k < stop:
            rng = self.stream_rng(seed, k // STREAM)
            end = min(stop, k + STREAM)
            for i in range(k, end):
                for attempt in range(RETRIES):
                    if log is not None:
                        log.attempts += 1
                    try:
                        ex = fn(rng, vocab, **kw)
                        if type(ex) is not Example or type(ex.meta) is not dict:
                            _validate(ex, self.name)
                        if type(ex.prompt) is not str or type(ex.completion) is not str:
                            _validate(ex, self.name)
                        break
                    except Exception:  # noqa: BLE001 - counted, retried, then raised
                        if log is not None:
                            log.faults += 1
                            if log.first is None:
                                log.first = traceback.format_exc(limit=8)
                        if attempt == RETRIES - 1:
                            raise
                if i >= start:
                    yield ex
            k = end

    def sample(
        self,
        vocab: Sequence[str],
        seed: int = 0,
        index: int = 0,
        params: Mapping[str, Any] | None = None,
        *,
        resolved: bool = False,
    ) -> Example:
        """Generate sample ``index``; the same arguments always give the same example
        (the one a generated dataset holds at this template's index ``index``).

        ``resolved=True`` skips parameter checking.
        """
        return next(self.samples(vocab, seed, index, index + 1, params, resolved=resolved))

    def preview(
        self,
        vocab: Sequence[str],
        n: int = 5,
        seed: int = 0,
        params: Mapping[str, Any] | None = None,
    ) -> list[Example]:
        """The first ``n`` samples for ``seed``."""
        return list(self.samples(vocab, seed, 0, n, params))

    def preview_records(
        self,
        vocab: Sequence[str],
        n: int = 5,
        seed: int = 0,
        params: Mapping[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        """The first ``n`` samples as plain dicts with the rule's verdict on each
        (``follows_rule``; ``None`` when the template has no checker)."""
        kw = self.resolve_params(params)
        return [
            {
                "prompt": e.prompt,
                "completion": e.completion,
                "meta": e.meta,
                "follows_rule": self.check(e, e.completion, kw) if self.has_checker else None,
            }
            for e in self.preview(vocab, n, seed, kw)
        ]

    # -- rule --------------------------------------------------------------------
    @property
    def has_checker(self) -> bool:
        return self._checker is not None

    def check(
        self,
        example: Example | Mapping[str, Any],
        answer: str,
        params: Mapping[str, Any] | None = None,
    ) -> bool:
        """Does ``answer`` follow the template's rule for this sample's inputs?

        ``example`` is an :class:`Example` or its ``meta`` mapping (with ``parent``
        and ``child``).
        """
        if self._checker is None:
            raise TemplateError(f"template {self.name!r} has no rule checker")
        meta = example.meta if isinstance(example, Example) else example
        inputs = {**meta.get("parent", {}), **meta.get("child", {})}
        verdict = self._active(self._checker)(inputs, answer, self.resolve_params(params))
        return bool(verdict)

    def __repr__(self) -> str:
        return f"Template({self.name!r}, family={self.family!r}, tasks={self.tasks!r})"


def template(
    *,
    name: str,
    family: str,
    task: str | Sequence[str],
    token_space: str | None = None,
    artifacts: Mapping[str, str] | None = None,
) -> Callable[[Generator], Template]:
    """Declare a template.

    The decorated function has the signature ``fn(rng, vocab, *, **params) -> Example``:
    ``rng`` is a seeded :class:`random.Random`, ``vocab`` the token space (a sequence
    of strings), and every parameter is keyword-only, annotated as
    ``Annotated[int, Range(1, 10), "help text"]`` (or ``OneOf(...)`` for strings) with a
    default.  ``token_space`` names the space the template prefers (``None``: the
    generator's default).  ``artifacts`` declares the data files the template reads with
    ``template_helpers.artifact(name)``: ``{name: one line saying what the JSON holds}``
    (stored beside the file, versioned: :mod:`cookbook_core.artifacts`).
    """

    def wrap(fn: Generator) -> Template:
        return Template(
            fn, name=name, family=family, task=task, token_space=token_space, artifacts=artifacts
        )

    return wrap


_ACTIVE: list[Template] = []
"""The templates whose function or checker is running (innermost last)."""


def active_artifact(name: str) -> Any:
    """The artifact ``name`` of the template whose code is running now."""
    if not _ACTIVE:
        raise TemplateError(
            f"artifact({name!r}) is only available inside a template's function or checker "
            "(not at module level)"
        )
    return _ACTIVE[-1].artifact(name)


def _read_artifacts(given: Mapping[str, str] | None, tname: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, desc in dict(given or {}).items():
        if not (isinstance(key, str) and ARTIFACT_NAME.match(key)):
            raise TemplateError(
                f"template {tname!r}: artifact name {key!r} must be a lowercase identifier "
                "(a-z, 0-9, _) of at most 48 characters, starting with a letter"
            )
        if not isinstance(desc, str) or not desc.strip():
            raise TemplateError(
                f"template {tname!r}: artifact {key!r} needs a description of its JSON"
            )
        out[key] = desc.strip()
    return out


def _read_params(fn: Callable[..., Any], tname: str) -> dict[str, Param]:
    sig = inspect.signature(fn)
    positional = [
        p for p in sig.parameters.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    if len(positional) != 2:
        raise TemplateError(
            f"template {tname!r}: the function must take exactly (rng, vocab) positionally, "
            "then keyword-only parameters"
        )
    try:
        hints = typing.get_type_hints(fn, include_extras=True)
    except Exception as exc:  # unresolvable annotations
        raise TemplateError(f"template {tname!r}: cannot read annotations: {exc}") from exc
    params: dict[str, Param] = {}
    for p in sig.parameters.values():
        if p.kind is not p.KEYWORD_ONLY:
            if p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
                raise TemplateError(f"template {tname!r}: *args/**kwargs are not allowed")
            continue
        if p.default is inspect.Parameter.empty:
            raise TemplateError(f"template {tname!r}: parameter {p.name!r} needs a default")
        params[p.name] = _param_from_hint(tname, p.name, hints.get(p.name), p.default)
    return params


def _param_from_hint(tname: str, pname: str, hint: Any, default: Any) -> Param:
    kind: Any = hint
    low = high = None
    choices = None
    help_text = ""
    if typing.get_origin(hint) is typing.Annotated:
        kind, *extras = typing.get_args(hint)
        for extra in extras:
            if isinstance(extra, Range):
                low, high = extra.low, extra.high
            elif isinstance(extra, OneOf):
                choices = extra.values
            elif isinstance(extra, str):
                help_text = extra
    if kind not in (int, float, str, bool):
        raise TemplateError(
            f"template {tname!r}: parameter {pname!r} must be annotated int, float, str or bool"
        )
    param = Param(pname, kind, default, help_text, low, high, choices)
    param.coerce(default, tname)  # the default itself must be allowed
    return param
