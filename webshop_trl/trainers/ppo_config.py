"""Arguments of PPO for the WebShop action-scoring policy: `PPOConfig` and friends.

TRL 1.16 has no PPO (it went to trl/experimental in 1.12 and was removed in 1.13), so PPO is our
own loop on `accelerate` (`webshop_trl.trainers.ppo_trainer`). Three dataclasses, parsed together by
`TrlParser` (``--config recipe.yaml`` plus CLI overrides; unknown keys are an error):

* `PPOScriptArguments` -- the environment (observation mode, split, step limit, search engine, the
  search policy) and the demonstrations of the IL loss term.
* `PPOConfig` -- the loop: rollout sizes, GAE, the PPO objective and the loss weights, optimiser,
  logging and checkpoints. A plain dataclass (not `TrainingArguments`): the loop is ours.
* `PPOModelArguments` -- the DPO model arguments (the policy to start from, normally the IL
  checkpoint, and TRL's LoRA options) with the value head on.

Defaults follow WebShop's RL (WEBSHOP_SPEC §5.6: 4 environments, 8-step windows, gamma 0.9,
Adam lr 1e-5, gradient clip 10) where it has a setting, and CleanRL's PPO elsewhere.
Field names are unique across the three classes (`HfArgumentParser` needs that).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from webshop_trl.trainers.dpo_config import SCORE_HEAD_MODULES, DPOModelArguments

# With LoRA the value head is trained in full too (it is new: the IL checkpoint has none).
PPO_MODULES_TO_SAVE: tuple[str, ...] = SCORE_HEAD_MODULES + ("value_head",)


@dataclass
class PPOScriptArguments:
    """The environment the policy acts in and the demonstrations of the IL term."""

    data_dir: str | None = field(default=None, metadata={"help": "WebShop data folder (default: the fetched data folder)."})
    num_products: int | None = field(default=None, metadata={"help": "Keep only the first N products of the catalog."})
    observation_mode: str = field(
        default="text_rich",
        metadata={"help": "'text_rich' (WebShop's baseline [button] format, what the IL checkpoints are trained on) or 'text'."},
    )
    goal_split: str = field(default="train", metadata={"help": "Goal split the rollouts draw from (train, eval or test)."})
    goal_split_mode: str = field(
        default="index",
        metadata={"help": "'index' (WebShop's split) or 'product' (no product in two splits: test products unseen in training)."},
    )
    step_limit: int = field(default=100, metadata={"help": "Environment steps before an episode is truncated (WebShop: 100)."})
    search_engine: str = field(default="lucene", metadata={"help": "'lucene' (pyserini, WebShop's) or 'bm25s' (no Java)."})
    query_source: str = field(
        default="instruction",
        metadata={
            "help": "Search policy on search pages: 'instruction' (search the instruction text) or 'human' (the first "
            "human query of goal_query_map.json). Search steps are not trained: see the trainer's docstring."
        },
    )
    il_dataset_paths: list[str] | None = field(
        default=None,
        metadata={
            "help": "Demonstrations for the IL loss term (the paper's PPO + entropy + IL mix): trajectory JSON-lines "
            "files or saved decision-step datasets, as IL's dataset_paths. Unset: no IL term (il_coef must be 0)."
        },
    )
    il_max_samples: int | None = field(default=None, metadata={"help": "Use at most this many demonstration steps (drawn with seed)."})
    il_min_reward: float | None = field(
        default=None, metadata={"help": "Keep only demonstrations whose final reward is at least this (1.0: successes)."}
    )

    def __post_init__(self):
        if isinstance(self.il_dataset_paths, str):
            self.il_dataset_paths = [self.il_dataset_paths]
        if self.observation_mode not in ("text", "text_rich"):
            raise ValueError(f"observation_mode must be 'text' or 'text_rich', got {self.observation_mode!r}")
        if self.goal_split_mode not in ("index", "product"):
            raise ValueError(f"goal_split_mode must be 'index' or 'product', got {self.goal_split_mode!r}")
        if self.query_source not in ("instruction", "human"):
            raise ValueError(f"query_source must be 'instruction' or 'human', got {self.query_source!r}")
        if int(self.step_limit) < 2:
            raise ValueError(f"step_limit must be >= 2, got {self.step_limit}")


@dataclass
class PPOModelArguments(DPOModelArguments):
    """The policy to train (normally the IL checkpoint) with the value head (PPO's critic) and LoRA options."""

    use_value_head: bool = field(
        default=True,
        metadata={"help": "PPO needs the value head (the critic); a checkpoint without one gets a new, randomly initialised head."},
    )

    def __post_init__(self):
        super().__post_init__()
        if not self.use_value_head:
            raise ValueError("PPO needs the value head: use_value_head must be true")

    def peft_config(self):
        config = super().peft_config()
        if config is not None and self.lora_modules_to_save is None:
            config.modules_to_save = list(PPO_MODULES_TO_SAVE)
        return config


@dataclass
class PPOConfig:
    r"""The PPO loop (see `PPOTrainer`). One *update* = a rollout of ``num_steps`` environment steps
    in each of ``num_envs`` environments per process, then ``num_epochs`` passes over those
    transitions in ``num_minibatches`` minibatches.

    Loss per minibatch (means over decision steps; the value loss over all steps)::

        loss = pg_loss + vf_coef * v_loss - ent_coef * entropy + kl_coef * KL(pi || pi_ref) + il_coef * il_loss

    pg_loss is PPO's clipped surrogate -min(r A, clip(r, 1-eps, 1+eps) A) with r = pi(a|s)/pi_old(a|s);
    entropy and KL are exact sums over the page's candidate actions; il_loss is the cross-entropy of
    the demonstrated click on ``il_batch_size`` demonstration steps.
    """

    # ---- run
    output_dir: str = field(default="outputs/ppo", metadata={"help": "Where checkpoints, metrics.jsonl and the final policy go."})
    seed: int = field(default=42, metadata={"help": "Seed of torch/numpy/python RNGs (action sampling) and the environments' goal draws."})
    use_cpu: bool = field(default=False, metadata={"help": "Run on the CPU even when a GPU is there."})
    bf16: bool = field(default=False, metadata={"help": "bfloat16 autocast of the policy's forward passes (weights stay fp32)."})
    num_updates: int = field(default=1000, metadata={"help": "PPO updates (rollout + optimisation) to run in total."})

    # ---- rollouts
    num_envs: int = field(default=4, metadata={"help": "Environments per process (WebShop's RL: 4). Each process builds its own."})
    num_steps: int = field(default=8, metadata={"help": "Environment steps per environment per rollout (WebShop's 8-step bptt window)."})
    reward_scale: float = field(
        default=10.0,
        metadata={"help": "Multiplier of WebShop's reward (given at the purchase, 0 otherwise): 10 as WebShop's RL wrapper, 1 for raw."},
    )
    bootstrap_truncated: bool = field(
        default=False,
        metadata={
            "help": "At the step limit: false (default) treats the cut as the end of the episode with return 0, as WebShop's "
            "RL (returns masked by done) and as evaluation scores it; true adds gamma * V(last page) to the last reward."
        },
    )

    # ---- returns
    gamma: float = field(default=0.9, metadata={"help": "Discount per environment step (WebShop's RL: 0.9)."})
    gae_lambda: float = field(
        default=0.95, metadata={"help": "GAE lambda; 1.0 gives WebShop's bootstrapped n-step returns (advantage = return - V)."}
    )
    normalize_advantages: bool = field(default=True, metadata={"help": "Standardise advantages over a minibatch's decision steps."})

    # ---- PPO objective
    num_epochs: int = field(default=2, metadata={"help": "Passes over each rollout's transitions."})
    num_minibatches: int = field(default=2, metadata={"help": "Minibatches per pass (each process splits its own transitions)."})
    clip_coef: float = field(default=0.2, metadata={"help": "PPO's ratio clip epsilon."})
    clip_vloss: bool = field(default=False, metadata={"help": "Clip the value update around the rollout's values (CleanRL's option)."})
    vf_coef: float = field(default=0.5, metadata={"help": "Weight of the value loss 0.5 * (V - return)^2."})
    ent_coef: float = field(default=0.01, metadata={"help": "Weight of the entropy bonus (exact over the candidates)."})
    kl_coef: float = field(
        default=0.0, metadata={"help": "Weight of KL(pi || pi_ref) to the reference (the initial policy), exact over the candidates; 0 logs it only."}
    )
    il_coef: float = field(default=0.0, metadata={"help": "Weight of the IL loss on demonstrations (needs il_dataset_paths)."})
    il_batch_size: int = field(default=8, metadata={"help": "Demonstration pages per minibatch for the IL term."})
    target_kl: float | None = field(
        default=None, metadata={"help": "Stop an update's epochs early when the approximate KL to the rollout policy exceeds this."}
    )

    # ---- optimiser
    learning_rate: float = field(default=1e-5, metadata={"help": "Adam(W) learning rate (WebShop's RL: 1e-5)."})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay."})
    adam_epsilon: float = field(default=1e-8, metadata={"help": "Adam epsilon."})
    max_grad_norm: float = field(default=10.0, metadata={"help": "Gradient-norm clip (WebShop's RL: 10)."})
    anneal_lr: bool = field(default=False, metadata={"help": "Decay the learning rate linearly to 0 over num_updates."})

    # ---- processor lengths (unset: keep the checkpoint's saved processor settings)
    max_observation_length: int | None = field(default=None, metadata={"help": "Observation tokens, specials included (BERT: at most 512)."})
    max_instruction_length: int | None = field(default=None, metadata={"help": "Cap on the instruction segment of the observation."})
    max_action_length: int | None = field(default=None, metadata={"help": "Tokens per candidate action, specials included."})
    page_truncation_side: str | None = field(default=None, metadata={"help": "'right' keeps the start of a long page, 'left' its end."})

    # ---- logging and checkpoints
    logging_steps: int = field(default=1, metadata={"help": "Log metrics every this many updates (stdout, metrics.jsonl, trackers)."})
    report_to: list[str] | None = field(
        default=None, metadata={"help": "accelerate trackers (tensorboard, wandb, ...); unset or 'none': stdout and JSON lines only."}
    )
    save_steps: int = field(default=100, metadata={"help": "Save a checkpoint every this many updates (0: only the final policy)."})
    save_total_limit: int | None = field(default=2, metadata={"help": "Keep at most this many checkpoints (oldest deleted)."})
    push_to_hub: bool = field(
        default=False,
        metadata={"help": "At the end, push the final policy and its model card (README.md) to the Hub repo hub_model_id."},
    )
    hub_model_id: str | None = field(
        default=None, metadata={"help": "Hub repo (user/name, or name in your namespace) to push to; unset: output_dir's name."}
    )
    hub_private_repo: bool | None = field(default=None, metadata={"help": "Create the Hub repo private (if it does not exist yet)."})
    hub_revision: str | None = field(default=None, metadata={"help": "Branch of the Hub repo to push to (default: main)."})
    resume_from_checkpoint: str | None = field(
        default=None,
        metadata={"help": "A checkpoint folder to continue from (model, optimizer, update count, RNG states), or 'true' for the last in output_dir."},
    )

    def __post_init__(self):
        if isinstance(self.report_to, str):
            self.report_to = [self.report_to]
        if self.report_to and [r for r in self.report_to if r != "none"] == []:
            self.report_to = None
        for name in ("num_updates", "num_envs", "num_steps", "num_epochs", "num_minibatches", "il_batch_size", "logging_steps"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if (self.num_envs * self.num_steps) % self.num_minibatches:
            raise ValueError(f"num_envs * num_steps ({self.num_envs * self.num_steps}) must be divisible by num_minibatches ({self.num_minibatches})")
        if not 0.0 <= self.gamma <= 1.0 or not 0.0 <= self.gae_lambda <= 1.0:
            raise ValueError("gamma and gae_lambda must lie in [0, 1]")
        if self.clip_coef <= 0:
            raise ValueError(f"clip_coef must be > 0, got {self.clip_coef}")
        for name in ("vf_coef", "ent_coef", "kl_coef", "il_coef"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.save_steps < 0:
            raise ValueError(f"save_steps must be >= 0, got {self.save_steps}")
        if self.page_truncation_side not in (None, "left", "right"):
            raise ValueError(f"page_truncation_side must be 'left' or 'right', got {self.page_truncation_side!r}")

    @property
    def batch_size(self) -> int:
        """Transitions per process per update."""
        return self.num_envs * self.num_steps

    def processor_overrides(self) -> dict:
        from webshop_trl.trainers.dpo_config import processor_overrides

        return processor_overrides(self)


__all__ = ["PPOConfig", "PPOModelArguments", "PPOScriptArguments", "PPO_MODULES_TO_SAVE"]
