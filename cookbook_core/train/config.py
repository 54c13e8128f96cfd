"""The fine-tuning config: :class:`TrainConfig`, declared once with each option's help and range.

``cookbook train``'s flags, the Training page's widgets, Cookbook-Mix cells' training
options and the experiments report's defaults are all read from this declaration
(:mod:`cookbook_core.configs` derives them); a run saves it as ``config.json``.

What it does not do: check the data or the model (``training.validate`` does, after
:meth:`TrainConfig.check`), or train.  It imports nothing heavy, so the ``cookbook``
command can build its parser from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from cookbook_core import configs
from cookbook_core.configs import option
from cookbook_core.errors import BadInput
from cookbook_core.train import models

METHODS = ("lora", "full")
PRECISIONS = ("auto", "fp32", "bf16")
DEFAULT_TARGET_MODULES = (
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
)
MAX_LORA_RANK = 64  # the largest LoRA rank offered; the vLLM server is started to accept it
DEFAULT_LORA_R = 16


def lora_alpha_for(rank: int) -> float:
    """The LoRA alpha used when none is given: twice the rank (the CLI and the studio)."""
    return 2 * rank


class TrainConfigError(BadInput):
    """A training config that cannot run (bad numbers, missing data, unknown model)."""


@dataclass
class TrainConfig(configs.Config):
    """Everything that determines a fine-tuning run (saved as ``config.json``)."""

    what: ClassVar[str] = "training"
    error: ClassVar[type[BadInput]] = TrainConfigError

    data: str = option(help="dataset folder (or a JSONL of prompt/completion rows)")
    model: str = option(
        models.DEFAULT_MODEL,
        help="'default' (embedded SmolLM2-135M-Instruct), a local folder, or a hub id",
    )
    method: str = option(
        "lora", help="lora (a low-rank adapter) or full fine-tuning", choices=METHODS, cli=False
    )
    steps: int = option(80, help="optimizer steps", min=1, ui_max=1_000_000)
    lr: float = option(
        3e-4, help="learning rate", above=0, label="learning rate", ui_min=1e-7, ui_max=1.0
    )
    batch_size: int = option(8, help="rows per optimizer step", min=1, ui_max=4096)
    grad_accum: int = option(1, help="gradient accumulation steps", min=1)
    max_length: int = option(
        512, help="tokens per example (cut beyond)", min=1, ui_min=16, ui_max=32768
    )
    lora_r: int = option(
        DEFAULT_LORA_R,
        help="LoRA rank (the served adapters' limit is the maximum)",
        min=1,
        max=MAX_LORA_RANK,
    )
    lora_alpha: float = option(
        lora_alpha_for(DEFAULT_LORA_R), help="LoRA scaling alpha", above=0, cli=False
    )
    lora_dropout: float = option(0.05, help="dropout on the LoRA layers", min=0, below=1)
    target_modules: list[str] = option(
        factory=lambda: list(DEFAULT_TARGET_MODULES),
        help="comma-separated module names that get adapters (attention + MLP projections)",
    )
    lr_scheduler: str = option("linear", help="learning-rate schedule (a transformers name)")
    warmup_steps: int = option(0, help="learning-rate warm-up steps", min=0)
    weight_decay: float = option(0.0, help="AdamW weight decay", min=0)
    seed: int = option(0, help="data order and initialisation seed", min=0, ui_max=2**31 - 1)
    save_every: int = option(20, help="checkpoint every N steps", min=1, ui_max=100_000)
    keep_checkpoints: int = option(2, help="checkpoints kept on disk", min=1)
    max_samples: int | None = option(
        None, help="use at most N dataset rows (default: all)", min=1, ui_none=0, ui_max=10**9
    )
    natural_data: str | None = option(
        None,
        help="JSONL or dataset of natural-language prompt/completion rows to mix in "
        "(the paper mixes 128 to keep general ability); sni: the SELF-GUIDE pack's "
        "held-in validation rows",
    )
    natural_n: int = option(128, help="natural rows to mix in", min=1, ui_max=10**6)
    group_by_length: bool = option(
        False,
        help="batch rows of similar length across the dataset (less padding, changes the order)",
    )
    micro_batches: int = option(
        1, help="run each batch as N length-sorted pieces (same gradient, less padding)", min=1
    )
    merge: bool = option(False, help="also save the LoRA merged into the base")
    gradient_checkpointing: bool = option(
        False, help="recompute activations in the backward pass: less memory, ~30% slower"
    )
    precision: str = option(
        "auto", help="auto (bf16 on CUDA when supported), fp32 or bf16", choices=PRECISIONS
    )
    nproc: int = option(
        1,
        help="processes to train with (DDP through torchrun: one per GPU, gloo on CPU); "
        "--batch-size stays the global batch, split evenly across them",
        min=1,
        ui_max=64,
    )
