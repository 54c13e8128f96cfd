"""The generation engine: exact counts, determinism across workers, formats,
atomic output, and fault handling."""

from __future__ import annotations

import collections
import json
import random
import threading
from pathlib import Path

import pytest

from cookbook_core import dataset_io, discovery, tokens
from cookbook_core.errors import BadInput
from cookbook_core.generate import (
    DATA_FILES,
    LAYOUTS,
    GenerateConfig,
    GenerationError,
    Source,
    block_members,
    block_plan,
    generate,
    plan_counts,
    template_range,
)
from cookbook_core.templates import STREAM

FAULTY = '''
"""Test template that raises on a share of its samples."""
import random
from collections.abc import Sequence
from typing import Annotated
from cookbook_core.templates import Example, Range, template


@template(name="flaky", family="search", task="squad")
def flaky(
    rng: random.Random,
    vocab: Sequence[str],
    *,
    fail_rate: Annotated[float, Range(0.0, 1.0), "Share of attempts that raise."] = 0.5,
) -> Example:
    """A test template that raises ValueError on a share of its attempts."""
    if rng.random() < fail_rate:
        raise ValueError("planted failure")
    tok = rng.choice(vocab)
    return Example(f"Say {tok}", tok, {"parent": {"tok": tok}, "child": {}})


@flaky.checker
def _check(inputs, answer, params):
    return answer == inputs["tok"]
'''


def test_plan_counts_exact_and_close_to_quota() -> None:
    assert plan_counts([1, 1, 1], 10) == [4, 3, 3]
    assert plan_counts([0.5, 0.3, 0.2], 7) == [4, 2, 1]
    rng = random.Random(0)
    for _ in range(300):
        w = [rng.random() + 1e-3 for _ in range(rng.randint(1, 6))]
        n = rng.randint(0, 10_000)
        counts = plan_counts(w, n)
        assert sum(counts) == n
        for c, wi in zip(counts, w, strict=True):
            assert abs(c - n * wi / sum(w)) < 1


@pytest.mark.parametrize("bad", [[], [0, 0], [1, -1], [float("nan")]])
def test_plan_counts_rejects_bad_weights(bad: list[float]) -> None:
    with pytest.raises(ValueError):
        plan_counts(bad, 10)


def test_blocks_partition_every_index_once() -> None:
    counts = [1234, 567, 1]
    nb = block_plan(counts, 100)
    seen: dict[int, list[int]] = collections.defaultdict(list)
    for b in range(nb):
        for t, k in block_members(counts, nb, b):
            seen[t].append(k)
    for t, c in enumerate(counts):
        assert seen[t] == list(range(c))


def test_mixture_counts_exact_and_samples_match_templates(tmp_path: Path) -> None:
    cfg = GenerateConfig(
        [Source("document_qa", 0.5), Source("multiple_choice_qa", 0.3), Source("last_word", 0.2)],
        n=1001,
        seed=5,
        block_size=128,
    )
    m = generate(cfg, tmp_path / "mix")
    rows = list(dataset_io.iter_rows(tmp_path / "mix"))
    assert len(rows) == 1001
    got = collections.Counter(r["meta"]["template"] for r in rows)
    assert got == {"document_qa": 501, "multiple_choice_qa": 300, "last_word": 200}
    assert [t["count"] for t in m["templates"]] == [501, 300, 200]
    vocab = tokens.load().tokens
    for r in rows[::97]:
        tpl = discovery.get(r["meta"]["template"])
        ex = tpl.sample(vocab, seed=5, index=r["meta"]["index"])
        assert (ex.prompt, ex.completion) == (r["prompt"], r["completion"])
        assert r["messages"][0] == {"role": "user", "content": r["prompt"]}
        assert r["messages"][1] == {"role": "assistant", "content": r["completion"]}
        assert tpl.check(r["meta"], r["completion"])


def test_output_identical_for_one_and_two_workers(tmp_path: Path) -> None:
    def run(workers: int) -> bytes:
        cfg = GenerateConfig(
            [Source("document_qa", 2), Source("entity_matching", 1)],
            n=3000,
            seed=11,
            workers=workers,
            block_size=256,
        )
        generate(cfg, tmp_path / f"w{workers}")
        return (tmp_path / f"w{workers}" / "data.jsonl").read_bytes()

    one, two = run(1), run(2)
    assert one == two
    assert one.count(b"\n") == 3000


def test_manifest_records_provenance(tmp_path: Path) -> None:
    cfg = GenerateConfig([Source("document_qa", params={"k": "2"})], n=50, seed=3)
    m = generate(cfg, tmp_path / "d")
    on_disk = json.loads((tmp_path / "d" / "manifest.json").read_text())
    assert on_disk == m
    t = m["templates"][0]
    assert t["params"]["k"] == 2 and t["params"]["doc_len"] == 100
    assert len(t["source_sha256"]) == 64
    assert t["token_space"]["n_tokens"] > 10_000 and len(t["token_space"]["sha256"]) == 64
    assert m["seed"] == 3 and m["n"] == 50 and m["version"]
    rows = list(dataset_io.iter_rows(tmp_path / "d"))
    assert all(len(r["completion"].split()) == 2 for r in rows)


@pytest.mark.parametrize("fmt", ["parquet", "hf"])
def test_other_formats_hold_the_same_rows(tmp_path: Path, fmt: str) -> None:
    base = GenerateConfig([Source("yes_no_qa"), Source("retrieval")], n=300, seed=2)
    generate(base, tmp_path / "jsonl")
    other = GenerateConfig([Source("yes_no_qa"), Source("retrieval")], n=300, seed=2, format=fmt)
    m = generate(other, tmp_path / fmt)
    assert m["format"] == fmt
    a = list(dataset_io.iter_rows(tmp_path / "jsonl"))
    b = list(dataset_io.iter_rows(tmp_path / fmt))
    assert a == b


def test_word_list_token_space(tmp_path: Path) -> None:
    cfg = GenerateConfig([Source("document_qa")], n=20, token_space="words", token_space_size=500)
    m = generate(cfg, tmp_path / "w")
    space = m["templates"][0]["token_space"]
    assert space["spec"] == "words" and space["n_tokens"] == 500
    words = set(tokens.load("words", 500, 0).tokens)
    for r in dataset_io.iter_rows(tmp_path / "w"):
        assert set(r["meta"]["parent"]["document"].split()) <= words


def test_existing_output_needs_overwrite(tmp_path: Path) -> None:
    cfg = GenerateConfig([Source("last_word")], n=10)
    generate(cfg, tmp_path / "o")
    with pytest.raises(BadInput, match="already exists"):
        generate(cfg, tmp_path / "o")
    cfg.seed = 1
    generate(cfg, tmp_path / "o", overwrite=True)
    assert dataset_io.read_manifest(tmp_path / "o")["seed"] == 1


@pytest.mark.parametrize(
    "change, message",
    [
        ({"n": 0}, "-n must be at least 1"),
        ({"seed": -1}, "seed must be >= 0"),
        ({"format": "csv"}, "unknown format"),
        ({"workers": 0}, "workers must be at least 1"),
    ],
)
def test_bad_config(tmp_path: Path, change: dict, message: str) -> None:
    cfg = GenerateConfig([Source("last_word")], n=10)
    for k, v in change.items():
        setattr(cfg, k, v)
    with pytest.raises(BadInput, match=message):
        generate(cfg, tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


@pytest.mark.parametrize("workers", [1, 2])
def test_faulty_template_stops_and_leaves_nothing(
    tmp_path: Path, extra_templates: Path, workers: int
) -> None:
    (extra_templates / "flaky.py").write_text(FAULTY)
    out = tmp_path / "ds"
    cfg = GenerateConfig([Source("flaky")], n=20_000, block_size=256, workers=workers)
    with pytest.raises(GenerationError) as info:
        generate(cfg, out)
    msg = str(info.value)
    assert "flaky" in msg and "planted failure" in msg and "Traceback" in msg
    assert not out.exists()
    assert not list(tmp_path.glob(".ds*")), "temporary folder left behind"


def test_rare_faults_are_counted_not_fatal(tmp_path: Path, extra_templates: Path) -> None:
    (extra_templates / "flaky.py").write_text(FAULTY)
    cfg = GenerateConfig(
        [Source("flaky", params={"fail_rate": 0.004})],
        n=3000,
        max_fault_rate=0.02,
        workers=2,
        block_size=500,
    )
    m = generate(cfg, tmp_path / "ok")
    t = m["templates"][0]
    assert t["count"] == 3000
    assert 0 < t["faults"] < 60
    assert t["attempts"] == 3000 + t["faults"]
    assert "planted failure" in t["first_fault"]
    assert dataset_io.count_rows(tmp_path / "ok") == 3000


def test_wrong_return_type_is_a_fault(tmp_path: Path, extra_templates: Path) -> None:
    bad = FAULTY.replace('return Example(f"Say {tok}", tok,', 'return (f"Say {tok}", tok,')
    (extra_templates / "flaky.py").write_text(bad.replace("0.5,", "0.0,"))
    with pytest.raises(GenerationError, match="flaky"):
        generate(GenerateConfig([Source("flaky")], n=10), tmp_path / "x")
    assert not (tmp_path / "x").exists()


def _run(tmp_path: Path, name: str, **kw: object) -> bytes:
    cfg = GenerateConfig(**{"sources": [Source("document_qa")], "n": 1000, "seed": 4, **kw})
    generate(cfg, tmp_path / name)
    return (tmp_path / name / DATA_FILES[cfg.format]).read_bytes()


@pytest.mark.parametrize("layout", LAYOUTS)
def test_bytes_identical_for_one_two_and_three_workers(tmp_path: Path, layout: str) -> None:
    """Forked workers write block files that the parent splices; the bytes match one
    process writing everything itself, whatever the worker count."""
    base = {
        "sources": [Source("document_qa", 3), Source("retrieval", 1), Source("last_word", 1)],
        "n": 2500,
        "block_size": 300,
        "layout": layout,
    }
    one = _run(tmp_path, "w1", **base, workers=1)
    assert _run(tmp_path, "w2", **base, workers=2) == one
    assert _run(tmp_path, "w3", **base, workers=3) == one
    assert one.count(b"\n") == 2500
    assert not list((tmp_path / "w2").glob(".blocks*")), "block files left in the dataset"
    assert sorted(p.name for p in (tmp_path / "w3").iterdir()) == ["data.jsonl", "manifest.json"]


def test_spawned_workers_write_the_same_bytes(tmp_path: Path) -> None:
    """A process with threads (the studio, a server) spawns workers instead of forking."""
    stop = threading.Event()
    helper = threading.Thread(target=stop.wait)
    helper.start()
    try:
        spawned = _run(tmp_path, "spawned", workers=2, block_size=256)
    finally:
        stop.set()
        helper.join()
    assert dataset_io.read_manifest(tmp_path / "spawned")["start_method"] == "spawn"
    assert spawned == _run(tmp_path, "alone", workers=1, block_size=256)
    assert dataset_io.read_manifest(tmp_path / "alone")["start_method"] is None


def test_sample_depends_only_on_template_params_seed_and_index(tmp_path: Path) -> None:
    """The rule with random streams: dataset size, block size, mixture and workers do
    not change what sample k of a template is."""
    generate(GenerateConfig([Source("document_qa")], n=700, seed=9), tmp_path / "alone")
    mix = GenerateConfig(
        [Source("last_word", 2), Source("document_qa", 1)], n=2100, seed=9, block_size=100
    )
    generate(mix, tmp_path / "mix")
    alone = {r["meta"]["index"]: r for r in dataset_io.iter_rows(tmp_path / "alone")}
    mixed = [r for r in dataset_io.iter_rows(tmp_path / "mix")]
    in_mix = {r["meta"]["index"]: r for r in mixed if r["meta"]["template"] == "document_qa"}
    assert len(in_mix) == 700 and in_mix.keys() == alone.keys()
    assert all(in_mix[k] == alone[k] for k in alone)
    tpl, vocab = discovery.get("document_qa"), tokens.load().tokens
    for k in (0, 63, 64, 65, 127, 128, 699):  # both sides of stream boundaries
        ex = tpl.sample(vocab, seed=9, index=k)
        assert (ex.prompt, ex.completion) == (alone[k]["prompt"], alone[k]["completion"])
    # every template appears throughout the mixed file, not only at its end
    first_half = [r["meta"]["template"] for r in mixed[: len(mixed) // 2]]
    assert 300 <= first_half.count("document_qa") <= 400


def test_template_ranges_hold_whole_streams() -> None:
    for counts, block_size in (([10_000], 2048), ([5000, 40, 1], 512), ([3, 7], 1), ([64], 64)):
        n_blocks = block_plan(counts, block_size)
        for c in counts:
            ranges = [template_range(c, n_blocks, b) for b in range(n_blocks)]
            assert ranges[0][0] == 0 and ranges[-1][1] == c
            for (lo, hi), (lo2, _) in zip(ranges, ranges[1:], strict=False):
                assert lo <= hi == lo2
            assert all(lo % STREAM == 0 for lo, hi in ranges if hi > lo)
        members = [m for b in range(n_blocks) for m in block_members(counts, n_blocks, b)]
        assert sorted(members) == [(t, k) for t, c in enumerate(counts) for k in range(c)]


def test_compact_layout_writes_the_document_once(tmp_path: Path) -> None:
    compact = _run(tmp_path, "compact", n=200)
    full = _run(tmp_path, "full", n=200, layout="full")
    first = json.loads(compact.splitlines()[0])
    document = first["prompt"].split("Document: ", 1)[1].split("\n\n", 1)[0]
    assert compact.splitlines()[0].count(document.encode()) == 1
    assert full.splitlines()[0].count(document.encode()) == 3  # prompt, messages, meta
    assert set(first) == {"prompt", "completion", "meta"}
    assert first["meta"]["in_prompt"] == {"parent": {"document": [10, 10 + len(document)]}}
    assert "document" not in first["meta"]["parent"]
    assert len(compact) < 0.45 * len(full)
    # read back, both layouts give the same whole rows (meta in full, messages)
    rows_c = list(dataset_io.iter_rows(tmp_path / "compact"))
    rows_f = list(dataset_io.iter_rows(tmp_path / "full"))
    assert rows_c == rows_f
    assert rows_c[0]["meta"]["parent"]["document"] == document
    assert dataset_io.read_manifest(tmp_path / "compact")["layout"] == "compact"
    tpl = discovery.get("document_qa")
    assert all(tpl.check(r["meta"], r["completion"]) for r in rows_c)


def test_compact_parquet_reads_back_like_jsonl(tmp_path: Path) -> None:
    _run(tmp_path, "j", n=300)
    _run(tmp_path, "p", n=300, format="parquet", workers=2, block_size=128)
    assert list(dataset_io.iter_rows(tmp_path / "j")) == list(dataset_io.iter_rows(tmp_path / "p"))


def test_bad_layout_and_reserved_meta_key(tmp_path: Path, extra_templates: Path) -> None:
    with pytest.raises(BadInput, match="unknown layout"):
        _run(tmp_path, "x", layout="wide")
    reserved = FAULTY.replace('"child": {}}', '"child": {}, "in_prompt": 1}').replace(
        "0.5,", "0.0,"
    )
    (extra_templates / "flaky.py").write_text(reserved)
    for layout in LAYOUTS:
        with pytest.raises(BadInput, match="reserved"):
            generate(GenerateConfig([Source("flaky")], n=10, layout=layout), tmp_path / "r")
        assert not (tmp_path / "r").exists()


def test_reader_rejects_a_span_outside_the_prompt(tmp_path: Path) -> None:
    row = {"prompt": "short", "completion": "c", "meta": {"in_prompt": {"parent": {"d": [2, 99]}}}}
    (tmp_path / "bad.jsonl").write_text(json.dumps(row) + "\n")
    with pytest.raises(dataset_io.DatasetError, match="outside the prompt"):
        list(dataset_io.iter_rows(tmp_path / "bad.jsonl"))


def test_every_template_reads_back_the_same_in_both_layouts(tmp_path: Path) -> None:
    for name in discovery.names():
        compact = _run(tmp_path, f"{name}-c", sources=[Source(name)], n=40)
        full = _run(tmp_path, f"{name}-f", sources=[Source(name)], n=40, layout="full")
        assert len(compact) < len(full), name
        rows = list(dataset_io.iter_rows(tmp_path / f"{name}-c"))
        assert rows == list(dataset_io.iter_rows(tmp_path / f"{name}-f")), name
    # lists of strings held by the prompt (retrieval's passages) are spans too
    first = json.loads((tmp_path / "retrieval-c" / "data.jsonl").read_text().splitlines()[0])
    spans = first["meta"]["in_prompt"]["parent"]["passages"]
    passages = [first["prompt"][a:b] for a, b in spans]
    assert len(passages) == 4 and all(len(p) > 20 for p in passages)


def test_cancelling_mid_run_leaves_nothing(tmp_path: Path) -> None:
    """A progress callback that raises (how a job is cancelled) stops the workers and
    removes the half-written folder with its block files."""
    seen: list[int] = []

    def cancel(done: int, total: int) -> None:
        seen.append(done)
        raise KeyboardInterrupt

    cfg = GenerateConfig([Source("document_qa")], n=40_000, workers=2, block_size=512)
    with pytest.raises(KeyboardInterrupt):
        generate(cfg, tmp_path / "c", progress=cancel)
    assert len(seen) == 1 and 0 < seen[0] < 40_000
    assert list(tmp_path.iterdir()) == []
