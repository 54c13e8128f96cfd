"""Checking what a sandboxed child sends back, before the parent uses any of it.

Everything on the child's result channel is written by a process that ran
untrusted code, so it is data to validate, never to trust.  :func:`decode` turns
the raw bytes into JSON values (strict UTF-8, no lone surrogates, bounded nesting
and sizes), and the ``*_result`` functions check the exact shape each mode must
have: a preview is exactly ``n`` samples of ``prompt``/``completion`` strings and a
JSON ``meta`` object, plus a description of the file's templates; a check is
exactly ``n`` verdicts (``true``/``false``/``null``); an error is a type, a message
and a line; a generation child (see ``generation.py``) first says it is ready, then
answers each request with exactly the samples asked for as ``[prompt, completion,
meta]`` triples and its fault counts.  Anything else raises :class:`MalformedResult`,
whose message is the one error the user sees.

What it does not do: run anything, or decide whether a well-formed answer is true
(the parent gets verdicts from a separate check run; see ``runner``).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from cookbook_core.templates import ARTIFACT_NAME, FAMILIES

MAX_DEPTH = 16
MAX_ITEMS = 10_000
MAX_STRING = 1_000_000
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,99}")
_PARAM_TYPES = {"int": int, "float": float, "str": str, "bool": bool}


class MalformedResult(ValueError):
    """The child's answer does not have the shape it must have."""


def decode(raw: bytes) -> Any:
    """Strict UTF-8 JSON with bounded nesting; raises :class:`MalformedResult`."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedResult(f"not valid UTF-8 at byte {exc.start}") from None
    if not text.strip():
        raise MalformedResult("empty result")
    try:
        value = json.loads(text, parse_constant=_no_constant, parse_float=_finite)
    except (RecursionError, MemoryError):
        raise MalformedResult("JSON nested too deeply") from None
    except ValueError as exc:
        raise MalformedResult(f"not JSON ({str(exc)[:120]})") from None
    # A lone surrogate can only come from a \uD800-\uDFFF escape (strict UTF-8 refuses
    # encoded ones): without such an escape the text needs no per-string check.
    _check_value(value, 0, "result", surrogates=_SURROGATE_ESCAPE.search(text) is not None)
    return value


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"non-finite number {text[:40]}")
    return value


def _check_value(value: Any, depth: int, where: str, *, surrogates: bool = True) -> None:
    """Plain JSON data only: bounded depth, sizes, and strings that encode as UTF-8.
    ``surrogates=False``: the caller knows no string holds a surrogate and every float
    is finite (:func:`decode` does, from the text and its float parser)."""
    if _plainly_ok(value, depth, surrogates=surrogates):
        return
    _locate_problem(value, depth, where)
    raise MalformedResult(f"{where}: not plain JSON data")  # the two checks disagree


def _plainly_ok(value: Any, depth: int, *, surrogates: bool = True) -> bool:
    """The fast check (no locations): True when :func:`_locate_problem` would find nothing.
    Lone surrogates and non-finite numbers are found by one C-speed encode of the whole
    value (skipped with ``surrogates=False``), depth and sizes by a walk that looks only
    at containers and string lengths."""
    if surrogates:
        try:
            json.dumps(value, ensure_ascii=False, allow_nan=False).encode("utf-8")
        except (UnicodeEncodeError, ValueError, TypeError, RecursionError):
            return False
    stack = [(value, depth)]
    pop, push = stack.pop, stack.append
    while stack:
        v, d = pop()
        kind = type(v)
        if kind is str:
            if len(v) > MAX_STRING:
                return False
        elif kind is dict:
            if d >= MAX_DEPTH and v or len(v) > MAX_ITEMS:
                return False
            for k, x in v.items():
                if type(k) is not str or len(k) > MAX_STRING:
                    return False
                if type(x) in (dict, list) or type(x) is str and len(x) > MAX_STRING:
                    push((x, d + 1))
        elif kind is list:
            if d >= MAX_DEPTH and v or len(v) > MAX_ITEMS:
                return False
            for x in v:
                if type(x) in (dict, list) or type(x) is str and len(x) > MAX_STRING:
                    push((x, d + 1))
        elif d > MAX_DEPTH or kind not in (bool, int, float) and v is not None:
            return False
    return depth <= MAX_DEPTH


def _locate_problem(value: Any, depth: int, where: str) -> None:
    """The slow check: raise :class:`MalformedResult` naming where the problem is."""
    stack = [(value, depth, where)]
    while stack:
        v, d, w = stack.pop()
        if d > MAX_DEPTH:
            raise MalformedResult(f"{w}: nested deeper than {MAX_DEPTH} levels")
        if isinstance(v, str):
            _check_str(v, w)
        elif isinstance(v, bool) or v is None or isinstance(v, int):
            continue
        elif isinstance(v, float):
            if not math.isfinite(v):
                raise MalformedResult(f"{w}: non-finite number")
        elif isinstance(v, list):
            if len(v) > MAX_ITEMS:
                raise MalformedResult(f"{w}: more than {MAX_ITEMS} items")
            stack += [(x, d + 1, f"{w}[{i}]") for i, x in enumerate(v)]
        elif isinstance(v, dict):
            if len(v) > MAX_ITEMS:
                raise MalformedResult(f"{w}: more than {MAX_ITEMS} keys")
            for k, x in v.items():
                _check_str(k, f"{w} key")
                stack.append((x, d + 1, f"{w}.{k[:40]}"))
        else:  # json.loads makes nothing else; kept for values built in-process
            raise MalformedResult(f"{w}: {type(v).__name__} is not JSON data")


def _check_str(s: str, where: str) -> None:
    if len(s) > MAX_STRING:
        raise MalformedResult(f"{where}: string longer than {MAX_STRING} characters")
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        raise MalformedResult(f"{where}: string is not valid Unicode (lone surrogate)") from None


def _require(obj: Any, keys: dict[str, Any], where: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise MalformedResult(f"{where} must be an object, got {type(obj).__name__}")
    if set(obj) != set(keys):
        missing, extra = sorted(set(keys) - set(obj)), sorted(set(obj) - set(keys))
        raise MalformedResult(f"{where} has the wrong keys (missing {missing}, unexpected {extra})")
    for key, kinds in keys.items():
        if not isinstance(obj[key], kinds) or (
            isinstance(obj[key], bool) and bool not in _as_tuple(kinds)
        ):
            raise MalformedResult(f"{where}.{key} has the wrong type ({type(obj[key]).__name__})")
    return obj


def _as_tuple(kinds: Any) -> tuple[type, ...]:
    return kinds if isinstance(kinds, tuple) else (kinds,)


def error_result(obj: dict[str, Any]) -> tuple[str, str, int | None]:
    """(type, message, line) of a failed run."""
    _require(
        obj,
        {"ok": bool, "error_type": str, "message": str, "line": (int, type(None))},
        "error result",
    )
    if not _IDENT.fullmatch(obj["error_type"]):
        raise MalformedResult("error result: error_type is not an identifier")
    if len(obj["message"]) > 4000:
        raise MalformedResult("error result: message longer than 4000 characters")
    line = obj["line"]
    if line is not None and not 0 <= line < 10_000_000:
        raise MalformedResult("error result: line out of range")
    return obj["error_type"], obj["message"], line


def preview_result(obj: Any, n: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(samples, template descriptions) of a successful preview run."""
    _require(obj, {"ok": bool, "samples": list, "templates": list}, "preview result")
    if len(obj["samples"]) != n:
        raise MalformedResult(f"expected {n} samples, got {len(obj['samples'])}")
    for i, s in enumerate(obj["samples"]):
        _require(s, {"prompt": str, "completion": str, "meta": dict}, f"sample {i}")
    if not 1 <= len(obj["templates"]) <= 100:
        raise MalformedResult("the template list must hold 1 to 100 entries")
    for i, t in enumerate(obj["templates"]):
        _check_description(t, f"template {i}")
    return obj["samples"], obj["templates"]


def _check_description(t: Any, where: str) -> None:
    _require(
        t,
        {
            "name": str,
            "family": str,
            "tasks": list,
            "doc": str,
            "has_checker": bool,
            "token_space": (str, type(None)),
            "params": list,
            "artifacts": dict,
        },
        where,
    )
    arts = t["artifacts"]
    if len(arts) > 20 or not all(
        isinstance(k, str) and ARTIFACT_NAME.fullmatch(k) and isinstance(v, str) and len(v) < 2000
        for k, v in arts.items()
    ):
        raise MalformedResult(f"{where}: artifacts must map up to 20 names to short descriptions")
    if not _IDENT.fullmatch(t["name"]):
        raise MalformedResult(f"{where}: name is not an identifier")
    if t["family"] not in FAMILIES:
        raise MalformedResult(f"{where}: unknown family")
    if len(t["tasks"]) > 100 or not all(isinstance(x, str) and len(x) < 200 for x in t["tasks"]):
        raise MalformedResult(f"{where}: tasks must be a list of short strings")
    if len(t["params"]) > 100:
        raise MalformedResult(f"{where}: more than 100 parameters")
    for j, p in enumerate(t["params"]):
        pw = f"{where} parameter {j}"
        _require(
            p,
            {
                "name": str,
                "type": str,
                "default": (int, float, str, bool),
                "help": str,
                "low": (int, float, type(None)),
                "high": (int, float, type(None)),
                "choices": (list, type(None)),
            },
            pw,
        )
        kind = _PARAM_TYPES.get(p["type"])
        if kind is None or not _IDENT.fullmatch(p["name"]):
            raise MalformedResult(f"{pw}: bad name or type")
        default = p["default"]
        if isinstance(default, bool) != (kind is bool) or (
            kind is not float and not isinstance(default, kind)
        ):
            raise MalformedResult(f"{pw}: default does not match its type")
        if p["choices"] is not None and not all(isinstance(c, str) for c in p["choices"]):
            raise MalformedResult(f"{pw}: choices must be strings")


def check_result(obj: Any, n: int) -> list[bool | None]:
    """The ``n`` verdicts of a successful check run."""
    _require(obj, {"ok": bool, "verdicts": list}, "check result")
    verdicts = obj["verdicts"]
    if len(verdicts) != n or not all(v is None or isinstance(v, bool) for v in verdicts):
        raise MalformedResult(f"expected {n} verdicts (true, false or null)")
    return verdicts


MAX_TRACEBACK = 20_000
"""Longest first-fault traceback a generation child may send."""


def ready_result(obj: Any) -> None:
    """A generation child's first answer: it loaded the template and waits for requests."""
    _require(obj, {"ok": bool, "ready": bool}, "ready answer")
    if not obj["ready"]:
        raise MalformedResult("ready answer: 'ready' is false")


@dataclass(frozen=True)
class Chunk:
    """One generation answer: ``samples`` (prompt, completion, meta) and fault counts;
    ``exhausted`` when a sample failed every retry (then ``samples`` is empty)."""

    samples: list[tuple[str, str, dict[str, Any]]]
    faults: int
    attempts: int
    first: str | None
    exhausted: bool


def generate_result(obj: Any, n: int, retries: int) -> Chunk:
    """The answer to a request for ``n`` samples: exactly ``n`` triples (none when
    exhausted), ``0 <= faults <= attempts <= retries * n``, a bounded traceback."""
    _require(
        obj,
        {
            "ok": bool,
            "samples": list,
            "faults": int,
            "attempts": int,
            "first": (str, type(None)),
            "exhausted": bool,
        },
        "generation answer",
    )
    exhausted = obj["exhausted"]
    raw = obj["samples"]
    if len(raw) != (0 if exhausted else n):
        want = "no samples after a sample failed every retry" if exhausted else f"{n} samples"
        raise MalformedResult(f"expected {want}, got {len(raw)}")
    faults, attempts = obj["faults"], obj["attempts"]
    if not 0 <= faults <= attempts <= retries * n or (not exhausted and attempts < n):
        raise MalformedResult(f"impossible counts: {faults} faults in {attempts} attempts")
    if exhausted and not faults:
        raise MalformedResult("a sample failed every retry, yet no fault was counted")
    first = obj["first"]
    if first is not None and len(first) > MAX_TRACEBACK:
        raise MalformedResult(f"traceback longer than {MAX_TRACEBACK} characters")
    samples = []
    for i, s in enumerate(raw):
        if not (
            type(s) is list
            and len(s) == 3
            and type(s[0]) is str
            and type(s[1]) is str
            and type(s[2]) is dict
        ):
            raise MalformedResult(
                f"sample {i} is not [prompt (str), completion (str), meta (object)]"
            )
        samples.append((s[0], s[1], s[2]))
    return Chunk(samples, faults, attempts, first, exhausted)


__all__ = [
    "MAX_DEPTH",
    "MAX_TRACEBACK",
    "Chunk",
    "MalformedResult",
    "check_result",
    "decode",
    "error_result",
    "generate_result",
    "preview_result",
    "ready_result",
]
