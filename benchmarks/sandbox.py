"""Latency of a sandboxed template preview vs the same preview in-process.

For each template given, previews 8 samples with their rule verdicts ``--runs``
times through :func:`cookbook_core.sandbox.runner.run_source` (static validation,
then the OS boundary: bubblewrap namespaces, uid drop, seccomp, limits; one run for
the samples and one for the verdicts) and in-process (the old path for trusted
templates: load the file, sample, check), and prints the medians and their ratio.
Target: sandboxed preview under 300 ms median on this 2-core machine.

Usage: ``python benchmarks/sandbox.py [--runs 20] [--templates document_qa ...]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--templates", nargs="*", default=["document_qa", "multiple_choice_qa"])
    args = ap.parse_args()
    os.environ.setdefault("COOKBOOK_HOME", tempfile.mkdtemp(prefix="cookbook_bench_home_"))

    from cookbook_core import discovery, tokens
    from cookbook_core.sandbox import runner as sandbox

    vocab = tokens.load().tokens
    from cookbook_core.sandbox import boundary

    boundary.ensure_available()  # fails closed, with the reason, when bwrap cannot run
    print(f"boundary: {boundary.bwrap_path()} + seccomp; uid {boundary.SANDBOX_UID}")
    print(f"{'template':<22}{'in-process ms':>15}{'sandbox ms':>12}{'ratio':>8}{'target':>16}")
    for name in args.templates:
        path = Path(discovery.get(name).source_file)
        source = path.read_text()
        local, boxed = [], []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            discovery._loaded.pop(path.resolve(), None)  # import the file each time
            tpl = discovery.load_file(path)[name]
            tpl.preview_records(vocab, 8, seed=0)
            local.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            res = sandbox.run_source(source, n=8, seed=0)
            boxed.append(time.perf_counter() - t0)
            assert res.ok, res.error
        lm, bm = statistics.median(local) * 1000, statistics.median(boxed) * 1000
        verdict = "met" if bm < 300 else "missed"
        print(f"{name:<22}{lm:>15.2f}{bm:>12.1f}{bm / lm:>7.0f}x{verdict + ' (<300 ms)':>16}")


if __name__ == "__main__":
    main()
