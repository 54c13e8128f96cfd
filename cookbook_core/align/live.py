"""Live alignment: ask the base model and fine-tuned adapters about one example now.

For the example in view on the Alignment page, each chosen model (the base model,
any adapter from :func:`cookbook_core.train.adapters.list_adapters`) answers through
the served backend (a running ``cookbook serve`` server; adapters are loaded into it
by name), with the same prompt and scoring an evaluation run uses
(:func:`cookbook_core.eval.evaluation.records_for_rows`).  Each answer is then
checked against the template's rule (:func:`cookbook_core.align.alignment.follows`)
and scored against the gold answer.  Nothing is written; no model is loaded in this
process.  For trying a template's own generated prompt, see :func:`try_prompt`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from cookbook_core.align import alignment
from cookbook_core.align.runs import model_answer, primary
from cookbook_core.eval import evaluation, inference


def answer_row(
    template: str,
    task_name: str,
    row: Mapping[str, Any],
    verdict: alignment.Verdict,
    adapters: Sequence[Path | None],
    *,
    model: str = "default",
    server_name: str | None = None,
    max_new_tokens: int | None = None,
) -> list[dict[str, Any]]:
    """One answer per model (``None`` in ``adapters`` = the base model), in that order.

    Each item: ``adapter`` (path or None), ``answer`` (the model's answer as the rule
    sees it: text, chosen index or label), ``output`` (generated text, or the chosen
    continuation), ``follows_rule``, ``correct`` (the task's main score), ``served_model``.
    Raises ``BadInput`` when no server runs for ``model``.
    """
    out = []
    for adapter in adapters:
        backend = inference.load_backend(
            model, adapter=adapter, backend="served", server_name=server_name
        )
        rec = evaluation.records_for_rows(
            task_name, [dict(row)], backend, max_new_tokens=max_new_tokens
        )[0]
        answer = model_answer(rec, row["task"])
        if "generation" in rec:
            output = rec["generation"]
        elif "greedy_continuation" in rec:
            output = rec["greedy_continuation"]
        else:
            output = str(
                rec["continuations"][
                    int(
                        max(
                            range(len(rec["loglikelihoods"])), key=rec["loglikelihoods"].__getitem__
                        )
                    )
                ]
            )
        out.append(
            {
                "adapter": adapter,
                "answer": answer,
                "output": output,
                "follows_rule": alignment.follows(template, row["task"], verdict, answer),
                "correct": primary(rec["scores"]),
                "served_model": inference.describe(backend).get("served_model"),
            }
        )
    return out


def answers_frame(
    labels: Sequence[str],
    answers: Sequence[Mapping[str, Any]],
    stored: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """The side-by-side table: one row per live model, then the stored run answers."""
    rows = [
        {
            "model": label,
            "source": "live",
            "output": a["output"],
            "follows rule": bool(a["follows_rule"]),
            "correct": float(a["correct"]),
        }
        for label, a in zip(labels, answers, strict=True)
    ]
    for run_id, answer in (stored or {}).items():
        rows.append({"model": run_id, "source": "stored run", "output": str(answer)})
    return pd.DataFrame(rows)


def prompt_answers_frame(
    labels: Sequence[str], outputs: Sequence[str], completion: str
) -> pd.DataFrame:
    """Models' answers to a template sample next to the template's own completion."""
    return pd.DataFrame(
        {
            "model": list(labels),
            "answer": list(outputs),
            "equals the template's answer": [o.strip() == completion.strip() for o in outputs],
        }
    )


def try_prompt(
    prompt: str,
    adapters: Sequence[Path | None],
    *,
    model: str = "default",
    server_name: str | None = None,
    max_new_tokens: int = 48,
    chat: bool = True,
) -> list[str]:
    """Greedy answers of each model to a free prompt (a template's generated sample).

    ``chat``: format the prompt with the model's chat template, as training does.
    """
    from cookbook_core.train import training

    texts = []
    for adapter in adapters:
        backend = inference.load_backend(
            model, adapter=adapter, backend="served", server_name=server_name
        )
        text = training.format_prompt(backend.tokenizer, prompt) if chat else prompt
        texts.append(backend.generate([text], max_new_tokens=max_new_tokens)[0].text)
    return texts
