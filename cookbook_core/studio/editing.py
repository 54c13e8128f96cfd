"""Helpers for editing template source in the studio: duplicate under a new name, and
diff against the saved file.

Pure functions over strings and plain data; no file access, no code execution
(running edited code is the sandbox's job).
"""

from __future__ import annotations

import ast
import difflib
import re

from cookbook_core.errors import BadInput

_IDENT = re.compile(r"[a-z][a-z0-9_]{0,63}")


def duplicate_source(source: str, old: str, new: str) -> str:
    """``source`` with template ``old`` renamed to ``new`` (decorator name, function
    name and the ``@old.checker`` decorator)."""
    if not _IDENT.fullmatch(new):
        raise BadInput(f"new template name {new!r} must be a lower-case identifier")
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise BadInput(f"cannot duplicate: syntax error at line {exc.lineno}") from None
    fn_names = [
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef)
        and any(
            isinstance(d, ast.Call)
            and any(
                k.arg == "name" and isinstance(k.value, ast.Constant) and k.value.value == old
                for k in d.keywords
            )
            for d in node.decorator_list
        )
    ]
    if not fn_names:
        raise BadInput(f"no @template(name={old!r}) in this source")
    out = re.sub(rf"""name\s*=\s*(["']){re.escape(old)}\1""", f'name="{new}"', source)
    for fn in fn_names:
        out = re.sub(rf"\b{re.escape(fn)}\b", new, out)
    return out


def unified_diff(before: str, after: str, name: str = "template.py") -> str:
    """A unified diff of two versions of a file ('' when equal)."""
    return "".join(
        difflib.unified_diff(
            before.splitlines(keepends=True),
            after.splitlines(keepends=True),
            fromfile=f"saved/{name}",
            tofile=f"edited/{name}",
        )
    )
