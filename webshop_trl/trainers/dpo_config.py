"""Arguments of DPO for the WebShop action-scoring policy: `ActionDPOConfig` and friends.

Three dataclasses, parsed together by `TrlParser` (``--config recipe.yaml`` plus CLI overrides;
unknown keys are an error):

* `DPOScriptArguments` -- which preference data: a folder saved by ``webshop-trl build-preferences``
  (a `datasets.DatasetDict` with train/eval splits) or a Hub dataset id, the splits, subsampling.
* `ActionDPOConfig` -- TRL's `DPOConfig` (so every `DPOConfig` / `TrainingArguments` key), with the
  processor lengths of the policy, and defaults for this small BERT policy instead of TRL's
  LLM defaults (TRL: lr 1e-6, gradient checkpointing on, bf16 on; here: lr 1e-5, both off).
  Options the action-scoring trainer does not implement raise at parse time (`check_dpo_options`).
* `DPOModelArguments` -- the IL model arguments (the policy to start from: the IL checkpoint) plus
  TRL's LoRA options (``use_peft``, ``lora_r``, ...; same names as `trl.ModelConfig`).

Field names are unique across the three classes (`HfArgumentParser` needs that).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trl import DPOConfig

from webshop_trl.trainers.dpo_loss import SUPPORTED_LOSS_TYPES
from webshop_trl.trainers.il_config import ILModelArguments

# The policy's scoring head (`ActionScorerModel`): trained in full next to a LoRA adapter on the
# encoder. PEFT wraps them (ModulesToSaveWrapper); with the adapter disabled the originals are used,
# so the reference is the initial model.
SCORE_HEAD_MODULES: tuple[str, ...] = ("interaction", "token_proj", "score_out")
# Every linear layer of a BERT encoder (attention q/k/v and output, feed-forward in and out).
ENCODER_LORA_TARGETS: tuple[str, ...] = ("query", "key", "value", "dense")
PEFT_TASK_TYPES: tuple[str, ...] = ("FEATURE_EXTRACTION", "SEQ_CLS")


@dataclass
class DPOScriptArguments:
    """Which preference pairs to train and evaluate on."""

    dataset_name: str | None = field(
        default=None,
        metadata={
            "help": "Preference data: a folder written by `webshop-trl build-preferences` (a DatasetDict saved with "
            "save_to_disk; a saved single Dataset works too) or a Hugging Face Hub dataset id (datasets.load_dataset). "
            "Columns: prompt (the observation), chosen, rejected, available_actions (the page's candidates); "
            "chosen_index / rejected_index are used when present."
        },
    )
    dataset_config: str | None = field(default=None, metadata={"help": "Configuration name of a Hub dataset."})
    dataset_revision: str | None = field(default=None, metadata={"help": "Revision (branch, tag, commit) of a Hub dataset."})
    dataset_train_split: str = field(default="train", metadata={"help": "Split to train on."})
    dataset_test_split: str | None = field(
        default="eval", metadata={"help": "Split to evaluate on ('eval' in build-preferences output); unset: no evaluation."}
    )
    max_train_samples: int | None = field(
        default=None, metadata={"help": "Train on at most this many pairs, drawn at random (seed)."}
    )
    max_eval_samples: int | None = field(
        default=None, metadata={"help": "Evaluate on at most this many pairs, drawn at random (seed)."}
    )
    min_reward: float | None = field(
        default=None,
        metadata={"help": "Keep only pairs from trajectories whose final reward is at least this (needs a 'reward' column)."},
    )

    def __post_init__(self):
        for name in ("max_train_samples", "max_eval_samples"):
            value = getattr(self, name)
            if value is not None and int(value) < 1:
                raise ValueError(f"{name} must be >= 1 or unset, got {value}")


@dataclass
class DPOModelArguments(ILModelArguments):
    """The policy to train (normally the IL checkpoint: ``model_name_or_path``) and the LoRA options."""

    use_peft: bool = field(
        default=False,
        metadata={
            "help": "Train a LoRA adapter on the encoder (and the scoring head in full) instead of the whole model. "
            "The DPO reference is then the model with the adapter disabled: no second copy in memory."
        },
    )
    lora_r: int = field(default=16, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha (scaling = alpha / r)."})
    lora_dropout: float = field(default=0.05, metadata={"help": "Dropout on the LoRA branch."})
    lora_target_modules: list[str] | None = field(
        default=None,
        metadata={"help": f"Encoder modules (name suffixes) that get an adapter; default {list(ENCODER_LORA_TARGETS)}."},
    )
    lora_modules_to_save: list[str] | None = field(
        default=None,
        metadata={"help": f"Modules trained in full next to the adapter; default the scoring head {list(SCORE_HEAD_MODULES)}."},
    )
    lora_task_type: str = field(
        default="FEATURE_EXTRACTION",
        metadata={"help": "PEFT task type: FEATURE_EXTRACTION (default) or SEQ_CLS. CAUSAL_LM does not fit this model."},
    )
    use_rslora: bool = field(default=False, metadata={"help": "Rank-stabilised LoRA (scaling alpha / sqrt(r))."})
    use_dora: bool = field(default=False, metadata={"help": "Weight-decomposed LoRA (DoRA)."})

    def __post_init__(self):
        super().__post_init__()
        if str(self.lora_task_type).upper() not in PEFT_TASK_TYPES:
            raise ValueError(
                f"lora_task_type={self.lora_task_type!r} does not fit the action-scoring policy; use one of {list(PEFT_TASK_TYPES)}"
            )
        self.lora_task_type = str(self.lora_task_type).upper()

    def peft_config(self):
        """A `peft.LoraConfig` for these options, or None without ``use_peft``."""
        if not self.use_peft:
            return None
        from peft import LoraConfig

        return LoraConfig(
            task_type=self.lora_task_type,
            r=int(self.lora_r),
            lora_alpha=int(self.lora_alpha),
            lora_dropout=float(self.lora_dropout),
            target_modules=list(self.lora_target_modules or ENCODER_LORA_TARGETS),
            modules_to_save=list(self.lora_modules_to_save or SCORE_HEAD_MODULES),
            bias="none",
            use_rslora=bool(self.use_rslora),
            use_dora=bool(self.use_dora),
        )


@dataclass
class ActionDPOConfig(DPOConfig):
    r"""TRL's `DPOConfig` for `ActionDPOTrainer` (DPO on the WebShop action-scoring policy).

    log pi(a|s) is the log-softmax over the page's candidate actions, so a pair needs one forward
    pass of its page (not one per completion), and there are no completion tokens: TRL's token-level
    options (``max_length``, ``truncation_mode``, ``padding_free``, ``ld_alpha``, ``use_weighting``,
    Liger kernels) do not apply and raise if set. Lengths are the processor's
    (``max_observation_length``, ``max_action_length``, ...). Loss types: sigmoid, hinge, ipo,
    robust (``label_smoothing`` only in robust, as in TRL 1.16) and sft (the chosen action's NLL;
    ``[sigmoid, sft]`` is RPO), combined with ``loss_weights``.

    Defaults that differ from TRL's `DPOConfig`: learning_rate 1e-5 (TRL 1e-6),
    activation/gradient checkpointing off (TRL on), bf16 False (TRL True), max_length None (TRL 1024),
    per_device_train_batch_size 8, ddp_find_unused_parameters False (transformers: on unless
    checkpointing). Recipes set them all explicitly anyway. Activation checkpointing is
    ``activation_checkpointing`` (transformers 5.23's name; ``gradient_checkpointing`` is its
    deprecated alias).

    ``reference_log_probs_from_dataset`` ("auto", "true", "false"): use the reference log-probs that
    ``build-preferences`` stored with the pairs when the DPO reference is the checkpoint that scored
    them (see `webshop_trl.preferences.reference`); then there is no precompute pass and no
    reference model in memory.
    """

    # ---- processor lengths (unset: keep the checkpoint's saved processor settings)
    max_observation_length: int | None = field(
        default=None, metadata={"help": "Observation tokens, specials included (BERT: at most 512; WebShop: 512)."}
    )
    max_instruction_length: int | None = field(
        default=None, metadata={"help": "Cap on the instruction segment of the observation (processor default: 128 or half)."}
    )
    max_action_length: int | None = field(
        default=None, metadata={"help": "Tokens per candidate action, specials included."}
    )
    page_truncation_side: str | None = field(
        default=None,
        metadata={"help": "'right' keeps the start of a long page (buttons, options, first results), 'left' its end."},
    )

    # ---- reference log-probs stored with the pairs by build-preferences
    reference_log_probs_from_dataset: str = field(
        default="auto",
        metadata={
            "help": "Use the reference log-probs that `webshop-trl build-preferences` stored with the pairs "
            "(columns ref_chosen_logps / ref_rejected_logps, written when it rejects with a reference policy) as the "
            "precomputed reference: no precompute pass and no reference model in memory. They apply when the DPO "
            "reference is the checkpoint that scored the pairs: the weights fingerprint in the dataset's "
            "build_info.json equals the initial policy's (with LoRA: its base), and the processor settings and "
            "precision (bf16 or not) are the same. 'auto': use them when they apply, otherwise fall back to "
            "precompute_ref_log_probs / the frozen reference (the log says which path and why); 'true': require "
            "them (an error names what does not match); 'false': ignore them.",
            "choices": ["auto", "true", "false"],
        },
    )

    # ---- DPOConfig overrides
    learning_rate: float = field(default=1e-5, metadata={"help": "AdamW learning rate (TRL's DPO default, 1e-6, is for LLMs)."})
    per_device_train_batch_size: int = field(default=8, metadata={"help": "Preference pairs (pages) per device per forward pass."})
    per_device_eval_batch_size: int = field(default=8, metadata={"help": "Pairs per device per evaluation forward pass."})
    gradient_checkpointing: bool | None = field(
        default=None,
        metadata={
            "help": "Deprecated alias of activation_checkpointing (transformers 5.23). TRL's DPOConfig turns it on; "
            "unset here, so both stay off unless activation_checkpointing is set."
        },
    )
    bf16: bool | None = field(
        default=False,
        metadata={
            "help": "bfloat16 autocast (weights stay fp32): mixed precision on GPUs, the policy's CPU bf16 path on CPUs "
            "(fast with AVX512-BF16/AMX, slow without)."
        },
    )
    ddp_find_unused_parameters: bool | None = field(
        default=False,
        metadata={
            "help": "DDP's search for parameters without gradients. Off: every trained parameter of the policy gets one "
            "(DPO computes no state values), so the search would only cost time."
        },
    )
    max_length: int | None = field(
        default=None,
        metadata={"help": "Not used (TRL's token cap on prompt + completion); must stay unset. Use max_observation_length."},
    )

    def __post_init__(self):
        super().__post_init__()
        check_dpo_options(self)
        value = self.reference_log_probs_from_dataset
        value = {True: "true", False: "false"}.get(value, value) if isinstance(value, bool) else str(value).lower()
        if value not in ("auto", "true", "false"):
            raise ValueError(f"reference_log_probs_from_dataset must be 'auto', 'true' or 'false', got {value!r}")
        self.reference_log_probs_from_dataset = value
        if self.page_truncation_side not in (None, "left", "right"):
            raise ValueError(f"page_truncation_side must be 'left' or 'right', got {self.page_truncation_side!r}")

    def processor_overrides(self) -> dict:
        """The processor settings this config sets (unset ones keep the checkpoint's)."""
        return processor_overrides(self)


def processor_overrides(args) -> dict:
    """Processor settings named by ``args`` (any config; fields it lacks or leaves unset are skipped)."""
    names = ("max_observation_length", "max_instruction_length", "max_action_length", "page_truncation_side")
    return {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}


def check_dpo_options(args) -> None:
    """Raise a `ValueError` naming the first `DPOConfig` option that `ActionDPOTrainer` does not implement.

    Called by `ActionDPOConfig` (so a recipe fails when parsed) and by the trainer (for a plain
    `trl.DPOConfig`).
    """
    loss_types = [args.loss_type] if isinstance(args.loss_type, str) else list(args.loss_type)
    unknown = [t for t in loss_types if t not in SUPPORTED_LOSS_TYPES]
    if not loss_types or unknown:
        raise ValueError(
            f"loss_type={loss_types} is not supported for the action-scoring policy: {unknown or 'empty'}; "
            f"supported: {list(SUPPORTED_LOSS_TYPES)}"
        )
    if args.beta is None or float(args.beta) <= 0:
        raise ValueError(f"beta must be > 0, got {args.beta}")
    eps = float(args.label_smoothing or 0.0)
    if "robust" in loss_types and not 0.0 <= eps < 0.5:
        raise ValueError(f"label_smoothing={eps} is out of range for loss_type 'robust': it must lie in [0, 0.5)")
    if eps and "robust" not in loss_types:
        raise ValueError(
            f"label_smoothing={eps} has no effect with loss_type={loss_types}: in TRL 1.16 only 'robust' uses it "
            "(the 'sigmoid' loss ignores it); use loss_type 'robust' or set label_smoothing 0"
        )
    not_applicable = {
        "max_length": (args.max_length is not None, "TRL's token cap on prompt + completion; the policy's lengths are "
                       "max_observation_length / max_action_length. Set max_length to None (null in YAML)"),
        "truncation_mode": (args.truncation_mode != "keep_start", "there is no prompt + completion sequence to truncate"),
        "padding_free": (bool(args.padding_free), "pages and their candidates are padded by the processor"),
        "ld_alpha": (args.ld_alpha is not None, "an action is scored as a whole; there are no verbose completion tokens"),
        "use_weighting": (bool(args.use_weighting), "WPO weights need per-token probabilities of a language model"),
        "f_divergence_type": (args.f_divergence_type != "reverse_kl", "only standard DPO (reverse_kl) is implemented"),
        "use_liger_kernel": (bool(args.use_liger_kernel), "Liger kernels patch LLM layers and the LM head; the policy has neither"),
        "pad_token": (getattr(args, "pad_token", None) is not None, "the processor's tokenizer pads"),
        "activation_offloading": (bool(args.activation_offloading), "not implemented for the action-scoring policy"),
    }
    for name, (is_set, reason) in not_applicable.items():
        if is_set:
            raise ValueError(f"ActionDPOTrainer does not support {name}={getattr(args, name, None)!r}: {reason}")


__all__ = [
    "ActionDPOConfig",
    "DPOModelArguments",
    "DPOScriptArguments",
    "ENCODER_LORA_TARGETS",
    "PEFT_TASK_TYPES",
    "SCORE_HEAD_MODULES",
    "check_dpo_options",
    "processor_overrides",
]
