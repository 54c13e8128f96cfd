"""Finding the code in a model's answer: markdown fences, chatter around them, cut-offs.

Models answer with prose around a fenced block, several blocks, a block whose closing
fence was cut off by the token limit, or bare code.  :func:`extract_code` returns the
one block that most looks like a template file, in this order of preference:

1. among complete fenced blocks (```` ```python ```` or a bare ```` ``` ````), the
   longest one that mentions ``@template``; else the longest one;
2. an opening fence whose closing fence never came (the answer ran out of tokens):
   everything after it;
3. no fence: from the first line that starts like Python (``import``, ``from``,
   ``@``, ``def``, a docstring) to the end.

It returns ``None`` when nothing looks like code.  What it does not do: judge whether
the code is valid (:mod:`.checks` does, statically and in the sandbox).
"""

from __future__ import annotations

import re

_FENCE = re.compile(r"^[ \t]*```[ \t]*([A-Za-z0-9_+-]*)[ \t]*$", re.MULTILINE)
_CODE_START = re.compile(r'^(?:from |import |@|def |class |"""|\'\'\'|#!)', re.MULTILINE)
_NOT_CODE_LANGS = frozenset({"text", "txt", "markdown", "md", "json", "bash", "sh", "console"})


def _blocks(answer: str) -> tuple[list[str], str | None]:
    """Complete fenced blocks, and the text after an unclosed last fence (or None)."""
    fences = list(_FENCE.finditer(answer))
    blocks: list[str] = []
    tail: str | None = None
    i = 0
    while i < len(fences):
        opening = fences[i]
        if i + 1 < len(fences):
            closing = fences[i + 1]
            if opening.group(1).lower() not in _NOT_CODE_LANGS:
                blocks.append(answer[opening.end() + 1 : closing.start()])
            i += 2
        else:
            if opening.group(1).lower() not in _NOT_CODE_LANGS:
                tail = answer[opening.end() + 1 :]
            i += 1
    return blocks, tail


def extract_code(answer: str) -> str | None:
    """The template code in ``answer`` (see the module docstring), or None."""
    if not answer or not answer.strip():
        return None
    blocks, tail = _blocks(answer)
    blocks = [b for b in blocks if b.strip()]
    if blocks:
        with_template = [b for b in blocks if "@template" in b]
        best = max(with_template or blocks, key=len)
        if tail is not None and "@template" in tail and not with_template:
            best = tail
        return _clean(best)
    if tail is not None and tail.strip():
        return _clean(tail)
    start = _CODE_START.search(answer)
    if start is None:
        return None
    return _clean(answer[start.start() :])


def _clean(code: str) -> str:
    lines = code.replace("\r\n", "\n").strip("\n").split("\n")
    return "\n".join(line.rstrip() for line in lines).strip("\n") + "\n"
