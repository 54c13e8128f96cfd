"""Regenerate the golden samples checked in under tests/golden/.

Run ``python tests/golden_samples.py`` after an intended change to a template's
output, and review the diff: the golden files pin what every shipped template
generates for seed 0 with default parameters in the default token space.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cookbook_core import discovery, tokens  # noqa: E402

GOLDEN = Path(__file__).resolve().parent / "golden"
N_GOLDEN = 3


def golden_for(name: str) -> list[dict]:
    tpl = discovery.get(name)
    space = tokens.load(tpl.token_space or tokens.DEFAULT_SPEC)
    return [asdict(e) for e in tpl.preview(space.tokens, N_GOLDEN, seed=0)]


def main() -> None:
    GOLDEN.mkdir(exist_ok=True)
    for name in discovery.names():
        path = GOLDEN / f"{name}.json"
        path.write_text(json.dumps(golden_for(name), indent=1, ensure_ascii=False) + "\n")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
