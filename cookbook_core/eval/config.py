"""The evaluation config: :class:`EvalConfig`, declared once with each option's help and range.

``cookbook eval``'s flags, the Evaluation page's widgets and the job validator all read
this declaration (:mod:`cookbook_core.configs` derives them); a run saves it in
``summary.json``.  :data:`BACKENDS` and :data:`PROMPT_FORMATS` are the choices.

What it does not do: resolve tasks, data, models or adapters (``evaluation.validate``
does, after :meth:`EvalConfig.check`), or evaluate.  It imports nothing heavy, so the
``cookbook`` command can build its parser from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from cookbook_core import configs
from cookbook_core.configs import option
from cookbook_core.errors import BadInput

PROMPT_FORMATS = ("auto", "plain", "chat")
BACKENDS = ("auto", "transformers", "served")
BOOTSTRAP_RESAMPLES = 1000


class EvalConfigError(BadInput):
    """An evaluation request that cannot run."""


@dataclass
class EvalConfig(configs.Config):
    """Everything that determines an evaluation run (saved in ``summary.json``)."""

    what: ClassVar[str] = "evaluation"
    error: ClassVar[type[BadInput]] = EvalConfigError

    tasks: list[str] = option(help="task or group names (repeatable)", cli=False)
    model: str = option("default", help="model name or folder ('default': the embedded model)")
    adapter: str | None = option(
        None, help="LoRA adapter: a training run id, run folder or adapter folder"
    )
    limit: int | None = option(
        None,
        help="first N examples of each task (default: all)",
        min=1,
        ui_none=0,
        ui_max=10**7,
        ui_default=50,  # the studio starts with a quick run
    )
    data_dir: str | None = option(
        None,
        help="data folder with one subfolder per set (like ../shared/data), or 'hub' "
        "(default: $COOKBOOK_EVAL_DATA, else the Hugging Face hub when online)",
    )
    data_files: dict[str, str] = option(
        factory=dict,
        help="a JSONL/Parquet/CSV file for one task (repeatable; overrides the data folder)",
        cli=False,
    )
    fields: dict[str, str] = option(
        factory=dict,
        help="read schema FIELD from COLUMN of the task files (repeatable)",
        cli=False,
    )
    num_fewshot: int = option(0, help="k-shot examples", min=0)
    prompt_format: str = option(
        "auto",
        help="auto: plain text for log-likelihood tasks (lm-eval parity), the chat template "
        "(as in training) for generation tasks",
        choices=PROMPT_FORMATS,
        label="prompt format",
    )
    backend: str = option(
        "auto",
        help="transformers: the model in this process; served: a vLLM server started with "
        "`cookbook serve start` (adapters are loaded into it by name) or --base-url; "
        "auto: served when a server for the model is running, else transformers",
        choices=BACKENDS,
    )
    server: str | None = option(
        None, help="name of the managed server to use (default: any for the model)"
    )
    base_url: str | None = option(
        None,
        help="any OpenAI-compatible endpoint (e.g. http://127.0.0.1:8000/v1) for --backend served",
    )
    batch_tokens: int | None = option(
        None,
        help="padded tokens per forward pass (default on CPU: 2048 for log-likelihood, "
        "4096 for generation; 16384 on CUDA)",
        min=1,
    )
    max_new_tokens: int | None = option(
        None, help="generation limit (default: per task)", min=1, ui_none=0, ui_max=4096
    )
    seed: int = option(0, help="few-shot sampling and bootstrap seed", min=0)
    bootstrap: int = option(BOOTSTRAP_RESAMPLES, help="bootstrap resamples (0: none)", min=0)
    threads: int | None = option(
        None,
        help="torch CPU threads (default: torch's choice; 1 can be faster on a busy machine)",
        min=1,
    )
