"""Backends: packed, shared-prefix log-likelihood equals a plain forward pass; generation limits."""

from __future__ import annotations

import pytest

from cookbook_core.eval import inference


def _naive(backend: inference.TransformersBackend, ctx: str, cont: str) -> tuple[float, bool]:
    import torch

    c, t = inference.encode_pair(backend.tokenizer, ctx, cont)
    with torch.inference_mode():
        logits = backend.model(torch.tensor([c + t])).logits[0, len(c) - 1 : -1].float()
    lp = torch.log_softmax(logits, -1)
    target = torch.tensor(t)
    return float(lp.gather(1, target[:, None]).sum()), bool((lp.argmax(-1) == target).all())


def test_encode_pair_moves_trailing_space(eval_backend: inference.TransformersBackend) -> None:
    tok = eval_backend.tokenizer
    a = inference.encode_pair(tok, "Question: why?\nAnswer: ", "because")
    b = inference.encode_pair(tok, "Question: why?\nAnswer:", " because")
    assert a == b
    ctx, cont = inference.encode_pair(tok, "", "hello")
    assert ctx == [inference.prefix_token_id(tok)] and cont


def test_shared_prefix_loglik_matches_plain_forward(
    eval_backend: inference.TransformersBackend,
) -> None:
    groups = [
        [
            ("Question: What is red?\nAnswer:", " a colour"),
            ("Question: What is red?\nAnswer:", " a dog"),
        ],
        [("They ruined the bed", " was't ruined."), ("They ruined the blanket", " was't ruined.")],
        [("Sky is blue.\nQuestion: is it blue?\nAnswer:", " no")] * 1
        + [("Sky is blue.\nQuestion: is it blue?\nAnswer:", " yes")],
        [("He sat down next to the", " Queen")],
        [("abc", " x"), ("xyz", " y")],  # no shared prefix at all
        # one choice is a single token (its input is the prefix), the other goes past it
        [("The capital of France is", " Paris"), ("The capital of France is", " a big city")],
    ]
    assert eval_backend._tree_masks_work()  # the embedded model honours packed masks
    calls = []
    decoder = eval_backend.model.get_decoder()
    hook = decoder.register_forward_hook(lambda *_: calls.append(1))
    try:
        fast = eval_backend.loglikelihood(groups)
    finally:
        hook.remove()
    assert len(calls) == 1  # all six examples packed into one forward pass
    small = inference.TransformersBackend(
        eval_backend.model, eval_backend.tokenizer, batch_tokens=64, max_batch=2
    )
    plain = inference.TransformersBackend(eval_backend.model, eval_backend.tokenizer)
    plain._tree_ok = False  # as for a model that ignores custom masks: a request per row
    runs = [fast, small.loglikelihood(groups), plain.loglikelihood(groups)]
    for k, g in enumerate(groups):
        for i, (ctx, cont) in enumerate(g):
            ref, greedy = _naive(eval_backend, ctx, cont)
            for res in runs:
                r = res[k][i]
                assert r.logprob == pytest.approx(ref, abs=2e-4)
                assert r.is_greedy == greedy and r.n_tokens >= 1 and not r.truncated


def test_generation_stops_and_records_the_limit(
    eval_backend: inference.TransformersBackend,
) -> None:
    from cookbook_core.train import training

    tok = eval_backend.tokenizer
    prompts = [
        training.format_prompt(tok, "Count from one to fifty in words, separated by spaces."),
        training.format_prompt(tok, "Say hello."),
    ]
    gens = eval_backend.generate(prompts, max_new_tokens=6)
    assert gens[0].finish == "length" and gens[0].n_tokens == 6 and gens[0].text
    again = eval_backend.generate(prompts, max_new_tokens=6)
    assert [g.text for g in again] == [g.text for g in gens]  # greedy: deterministic
    cut = eval_backend.generate(prompts[:1], max_new_tokens=6, stop=[" "])
    assert cut[0].finish == "stop" and " " not in cut[0].text


def test_generation_batches_squad_rows_with_the_same_answers_as_one_at_a_time(
    eval_backend: inference.TransformersBackend, shared_data, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CPU generation decodes SQuAD rows together (one or two per batch was 2.5-2.8x
    slower on 100 rows); left padding must not change a greedy answer."""
    import json

    from cookbook_core.eval import tasks
    from cookbook_core.train import training

    task = tasks.get("squad")
    lines = (shared_data / "squad_v1_1_dev" / "public_500.jsonl").read_text().splitlines()
    rows = [json.loads(x) for x in lines[:6]]
    tok = eval_backend.tokenizer
    prompts = [training.format_prompt(tok, task.prompt(r, [])) for r in rows]
    assert len({len(tok(p)["input_ids"]) for p in prompts}) > 1  # padding is exercised
    model = eval_backend.model
    sizes: list[int] = []
    real = model.generate

    def counting(*args, **kwargs):
        sizes.append(int(kwargs["input_ids"].shape[0]))
        return real(*args, **kwargs)

    monkeypatch.setattr(model, "generate", counting)
    batched = eval_backend.generate(prompts, max_new_tokens=12, stop=task.stop)
    assert sizes == [len(prompts)], sizes  # one batch: all six decode together
    sizes.clear()
    single = inference.TransformersBackend(model, tok, max_batch=1)
    alone = single.generate(prompts, max_new_tokens=12, stop=task.stop)
    assert sizes == [1] * len(prompts)
    assert [g.text for g in batched] == [g.text for g in alone]
    assert [(g.finish, g.n_tokens) for g in batched] == [(g.finish, g.n_tokens) for g in alone]


def test_long_prompt_is_truncated_not_crashed(eval_backend: inference.TransformersBackend) -> None:
    small = inference.TransformersBackend(eval_backend.model, eval_backend.tokenizer, max_length=24)
    gens = small.generate(["word " * 100], max_new_tokens=4)
    assert gens[0].prompt_truncated and gens[0].n_tokens <= 4
    res = small.loglikelihood([[("word " * 100, "end")]])
    assert res[0][0].truncated and res[0][0].logprob < 0


def test_backend_choice(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COOKBOOK_HOME", str(tmp_path))  # no managed server in this workspace
    assert inference.choose_backend("auto", "default") == "transformers"
    assert inference.choose_backend("auto", "default", "http://127.0.0.1:9/v1") == "served"
    assert inference.choose_backend("served") == "served"
    assert inference.choose_backend("transformers", "default", "http://x/v1") == "transformers"
    with pytest.raises(inference.BadInput, match="unknown backend"):
        inference.choose_backend("vllm")
