"""The SELF-GUIDE config: :class:`SelfGuideConfig`, declared once with each option's help and range.

``cookbook selfguide run``'s flags, the SELF-GUIDE page's widgets and the job validator
all read this declaration (:mod:`cookbook_core.configs` derives them); a run saves it as
``config.json``.  :data:`FAMILY_DEFAULTS` fills the options left ``None`` per task
family (the authors' public code).

What it does not do: load the task or check the model (``pipeline.validate`` does, after
:meth:`SelfGuideConfig.check`), or run anything.  It imports nothing heavy, so the
``cookbook`` command can build its parser from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from cookbook_core import configs
from cookbook_core.configs import option
from cookbook_core.errors import BadInput
from cookbook_core.eval.config import BACKENDS
from cookbook_core.selfguide import filters as sf
from cookbook_core.train import models
from cookbook_core.train.config import MAX_LORA_RANK

if TYPE_CHECKING:
    from cookbook_core.selfguide.tasks import NITask

EVAL_SPLITS = ("test", "validation")
FAMILY_DEFAULTS = {
    # the authors' public code: classification 0.7 with the input length filter,
    # generation 0.9 with the output length filter
    "classification": {"input_temperature": 0.7, "input_length_filter": True},
    "generation": {"input_temperature": 0.9, "output_length_filter": True},
}
FALLBACK_INPUT_TEMPERATURE = 0.8  # a family that names none


class SelfGuideConfigError(BadInput):
    """A SELF-GUIDE request that cannot run."""


_LENGTH_FILTER = "drop {} outside mean ± 2 std of the demonstration {}' lengths"


@dataclass
class SelfGuideConfig(configs.Config):
    """Everything that determines a SELF-GUIDE run (saved as ``config.json``).

    ``None`` for ``input_temperature``, ``input_length_filter`` and
    ``output_length_filter`` means the task family's default (:data:`FAMILY_DEFAULTS`).
    """

    what: ClassVar[str] = "SELF-GUIDE"
    error: ClassVar[type[BadInput]] = SelfGuideConfigError

    task: str = option(
        help="task id, e.g. task1345 (see: cookbook selfguide tasks)", flags=("--task", "-t")
    )
    data_dir: str | None = option(
        None, help="folder holding natural_instructions/ (default: shared data)"
    )
    model: str = option(models.DEFAULT_MODEL, help="model name or folder ('default': embedded)")
    backend: str = option(
        "auto",
        help="served: a running `cookbook serve` server (auto: served when one runs)",
        choices=BACKENDS,
    )
    # input generation
    n_inputs: int = option(24, help="raw inputs to generate in all", min=1, ui_max=2000)
    round_size: int = option(8, help="prompts per round (paper: 10)", min=1)
    max_low_quality: int = option(
        10, help="at most this many kept inputs shown as low-quality examples", min=0
    )
    input_temperature: float | None = option(
        None,
        help="input sampling temperature (default: 0.7 classification, 0.9 generation; "
        "paper range 0.6-1.0)",
        above=0,
    )
    input_top_k: int = option(40, help="input sampling top-k (0: off)", min=0)
    input_length_filter: bool | None = option(
        None,
        help=_LENGTH_FILTER.format("inputs", "inputs") + " (default: on for classification)",
    )
    input_max_new_tokens: int | None = option(
        None, help="input length limit (default: from the demonstrations' lengths)", min=1
    )
    # output generation and vote
    n_outputs: int = option(3, help="samples per input (paper: 10)", min=1, ui_max=20)
    output_temperature: float = option(0.2, help="output sampling temperature", above=0)
    output_top_k: int = option(10, help="output sampling top-k (0: off)", min=0)
    output_length_filter: bool | None = option(
        None,
        help=_LENGTH_FILTER.format("samples", "outputs") + " (default: on for generation)",
    )
    output_max_new_tokens: int | None = option(
        None, help="output length limit (default: from the demonstrations' lengths)", min=1
    )
    min_share: float = option(
        sf.MIN_SHARE,
        help="the voted answer's minimum share of the surviving samples",
        min=0,
        max=1,
    )
    # fine-tuning
    steps: int = option(8, help="LoRA steps", min=1, ui_max=5000)
    batch_size: int = option(4, help="rows per LoRA step", min=1)
    lr: float = option(3e-4, help="learning rate", above=0, label="learning rate")
    lora_r: int = option(16, help="LoRA rank", min=1, max=MAX_LORA_RANK)
    lora_alpha: int = option(32, help="LoRA scaling alpha", above=0)
    max_length: int = option(1024, help="tokens per training example (cut beyond)", min=1)
    # evaluation
    eval_split: str = option("test", help="the rows scored", choices=EVAL_SPLITS)
    eval_limit: int | None = option(20, help="rows of the split scored", min=1, ui_max=200)
    eval_max_new_tokens: int | None = option(
        None, help="answer length limit (default: from the demonstrations' lengths)", min=1
    )
    seed: int = option(0, help="sampling, balancing and training seed", min=0)

    def resolved(self, task: NITask) -> SelfGuideConfig:
        """A copy with the family defaults filled in."""
        out = SelfGuideConfig(**self.to_dict())
        d = FAMILY_DEFAULTS[task.family]
        if out.input_temperature is None:
            out.input_temperature = d.get("input_temperature", FALLBACK_INPUT_TEMPERATURE)
        if out.input_length_filter is None:
            out.input_length_filter = bool(d.get("input_length_filter", False))
        if out.output_length_filter is None:
            out.output_length_filter = bool(d.get("output_length_filter", False))
        return out
