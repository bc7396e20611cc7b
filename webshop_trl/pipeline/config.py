"""The pipeline's settings: one `PipelineConfig` (every field has help text) and the named budgets.

A budget is a set of field values plus the minutes each stage is expected to take with them;
``PipelineConfig.from_budget("small", base_model=...)`` applies one, and ``--set key=value``
(`apply_overrides`) changes single fields after it. ``None`` in a recipe-size field means "what
the recipe says" (recipes/minilm/<method>/config_full.yaml).
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from typing import Any

from webshop_trl.errors import WebShopTrlError

DEFAULT_BASE_MODEL = "sentence-transformers/all-MiniLM-L6-v2"


class PipelineConfigError(WebShopTrlError):
    """A bad budget name, override or setting."""


def _f(default: Any, help: str, stages: str = "") -> Any:
    return field(default=default, metadata={"help": help, "stages": stages})


@dataclass
class PipelineConfig:
    """Everything that decides what the pipeline's stages produce (the stage markers hash it)."""

    budget: str = _f("small", "the named budget these values started from (small, paper, tiny)")
    # ------------------------------------------------------------------ models and recipes
    base_model: str = _f(
        DEFAULT_BASE_MODEL,
        "IL's starting point: a BERT encoder (hub id or folder; the recipes' MiniLM by default) or an "
        "ActionScorerModel checkpoint folder (one with action_scoring_processor.json)", "il",
    )
    il_recipe: str = _f("recipes/minilm/il/config_full.yaml", "IL recipe (relative to the repository)", "il")
    dpo_recipe: str = _f("recipes/minilm/dpo/config_full.yaml", "DPO recipe (relative to the repository)", "dpo-expert dpo-self")
    ppo_recipe: str = _f("recipes/minilm/ppo/config_full.yaml", "PPO recipe (relative to the repository)", "ppo")
    device: str = _f("cpu", "cpu or cuda: where the policies train and run", "all")
    bf16: bool | None = _f(None, "bf16 autocast in IL/DPO/PPO and the preference scoring (None: the recipes' choice)", "il dpo ppo prefs")
    max_observation_length: int | None = _f(None, "policy page length in tokens (None: the recipes' / checkpoint's)", "il ppo")
    max_action_length: int | None = _f(None, "policy action length in tokens (None: the recipes' / checkpoint's)", "il ppo")
    # ------------------------------------------------------------------ environment
    data_dir: str | None = _f(None, "WebShop data folder (default: the fetched data folder)", "all")
    engine: str = _f("lucene", "search engine: lucene (WebShop's) or bm25s (no Java)", "all")
    step_limit: int = _f(100, "environment steps before an episode is cut", "all")
    split_mode: str = _f(
        "product",
        "how goals are split into train and test: product (no product of a test goal is seen in training; the "
        "headline, unseen products) or index (WebShop's split by goal index: test goals are other option combinations "
        "of products seen in training)", "all",
    )
    seed: int = _f(0, "seed of the expert's noise, the self-generated rollouts, the pairs and Thompson sampling", "all")
    # ------------------------------------------------------------------ expert demonstrations
    il_demo_goals: int | None = _f(None, "train goals the noise-free expert demonstrates for IL (None: all 5,410)", "demos-il")
    expert_trajectories: int = _f(300, "expert trajectories standing in for the paper's 1,200 human ones (DPO a)", "demos-expert")
    expert_noise: str = _f(
        "off",
        "the (a) expert's noise: off (the straight path) or on (human-like detours). 'on' collapsed DPO here: the "
        "noisy expert's sub-page look followed by '< prev' makes click[buy now] the rejected action on many pages and "
        "the DPO policy stops buying (docs/REPRODUCTION.md)", "demos-expert",
    )
    # ------------------------------------------------------------------ IL
    il_steps: int | None = _f(
        None,
        "IL updates (one pass over il_steps x batch pages; None: the recipe's 4,000 pages in one pass, 500 updates). "
        "The recipe reached held-out choice accuracy 0.92-0.96 at 500 updates on three seeds, 0.73-0.80 at 200 "
        "(recipes/minilm/README.md)", "il",
    )
    il_eval_samples: int | None = _f(128, "held-out IL pages scored at the end (None: the recipe's 256)", "il")
    # ------------------------------------------------------------------ self-generated trajectories
    self_trajectories: int = _f(100, "reward-1 self-generated trajectories to keep (the paper's 100; DPO b)", "demos-self")
    self_max_episodes: int | None = _f(600, "stop self-generation after this many episodes (None: every train goal once)", "demos-self")
    self_temperature: float = _f(1.0, "sampling temperature of the self-generating IL policy", "demos-self")
    self_threshold: float = _f(1.0, "keep self-generated episodes with reward >= this (the paper: 1.0)", "demos-self")
    # ------------------------------------------------------------------ preferences and DPO
    dpo_steps: int | None = _f(200, "DPO steps for each of (a) and (b) (None: the recipe's 3,000)", "dpo-expert dpo-self")
    dpo_eval_samples: int | None = _f(128, "held-out pairs DPO scores at the end (None: the recipe's 256)", "dpo-expert dpo-self")
    dpo_freeze_encoder_layers: int | None = _f(None, "encoder layers DPO keeps frozen (None: the recipe's 3)", "dpo-expert dpo-self")
    dpo_sft_weight: float = _f(
        0.0,
        "weight of the chosen action's NLL added to the recipe's DPO loss (RPO: TRL's loss_type 'sft'); 0: plain DPO, "
        "as the paper. At 1.0, 500 steps of DPO (a) stayed within a point of the IL policy's score where plain DPO lost 4 "
        "(docs/REPRODUCTION.md)", "dpo-expert dpo-self",
    )
    # ------------------------------------------------------------------ PPO
    ppo_updates: int | None = _f(3, "PPO updates (None: the recipe's 3,000)", "ppo")
    ppo_num_envs: int | None = _f(None, "PPO environments per update (None: the recipe's 4)", "ppo")
    ppo_num_steps: int | None = _f(None, "PPO steps per environment per update (None: the recipe's 8)", "ppo")
    ppo_il_samples: int | None = _f(None, "demonstration pages PPO's IL term draws from (None: all)", "ppo")
    # ------------------------------------------------------------------ evaluation
    compare_goals: int | None = _f(
        200, "test goals of each split view the compare stage plays, the first N (None: all; product split 664, index 500)",
        "compare",
    )
    compare_index: bool = _f(True, "compare on the other split mode too (index beside product), as a second view", "compare")
    compare_human: bool = _f(True, "compare on the 13 human-written goals too (distribution shift)", "compare")
    thompson_runs: int = _f(2, "independent Thompson-sampling runs", "thompson")
    thompson_rollouts: int = _f(100, "rollouts per Thompson-sampling run (shared by all agents)", "thompson")
    thompson_rollouts_per_round: int = _f(8, "rollouts per posterior update", "thompson")
    thompson_split: str = _f("test", "goal split the agents are evaluated on", "thompson")
    thompson_workers: int | None = _f(None, "Thompson worker processes (0: in one process; None: the command's default, 2)", "thompson")

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        if self.device not in ("cpu", "cuda"):
            raise PipelineConfigError(f"device must be cpu or cuda, got {self.device!r}")
        if self.expert_noise not in ("off", "on"):
            raise PipelineConfigError(f"expert_noise must be off or on, got {self.expert_noise!r}")
        if self.engine not in ("lucene", "bm25s"):
            raise PipelineConfigError(f"engine must be lucene or bm25s, got {self.engine!r}")
        if self.split_mode not in ("product", "index"):
            raise PipelineConfigError(f"split_mode must be product or index, got {self.split_mode!r}")
        if self.thompson_split not in ("test", "eval", "train"):
            raise PipelineConfigError(f"thompson_split must be test, eval or train, got {self.thompson_split!r}")
        positive = ("expert_trajectories", "self_trajectories", "thompson_runs", "thompson_rollouts", "thompson_rollouts_per_round",
                    "il_steps", "il_eval_samples", "dpo_steps", "dpo_eval_samples", "ppo_updates", "ppo_num_envs",
                    "ppo_num_steps", "self_max_episodes", "il_demo_goals", "ppo_il_samples",
                    "max_observation_length", "max_action_length", "compare_goals")
        for name in positive:
            value = getattr(self, name)
            if value is not None and int(value) < 1:
                raise PipelineConfigError(f"{name} must be >= 1, got {value}")
        if self.thompson_workers is not None and self.thompson_workers < 0:
            raise PipelineConfigError(f"thompson_workers must be >= 0, got {self.thompson_workers}")
        if self.step_limit < 2:
            raise PipelineConfigError(f"step_limit must be >= 2, got {self.step_limit}")
        if self.self_temperature <= 0:
            raise PipelineConfigError(f"self_temperature must be > 0, got {self.self_temperature}")
        if self.dpo_sft_weight < 0:
            raise PipelineConfigError(f"dpo_sft_weight must be >= 0, got {self.dpo_sft_weight}")
        if self.dpo_freeze_encoder_layers is not None and self.dpo_freeze_encoder_layers < 0:
            raise PipelineConfigError(f"dpo_freeze_encoder_layers must be >= 0, got {self.dpo_freeze_encoder_layers}")

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_budget(cls, budget: str = "small", **overrides: Any) -> "PipelineConfig":
        if budget not in BUDGETS:
            raise PipelineConfigError(f"unknown budget {budget!r}; choose from {', '.join(BUDGETS)}")
        values = dict(BUDGETS[budget].values)
        values.update({k: v for k, v in overrides.items()})
        values["budget"] = budget
        unknown = set(values) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise PipelineConfigError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def expected_minutes(self) -> dict[str, float]:
        """Minutes each stage is expected to take: the budget's figures (a guide, not a limit)."""
        return dict(BUDGETS[self.budget].minutes)


def field_help() -> dict[str, str]:
    return {f.name: f.metadata.get("help", "") for f in dataclasses.fields(PipelineConfig)}


def _field_type(name: str) -> tuple[type, bool]:
    """The field's base type and whether it may be None."""
    hints = typing.get_type_hints(PipelineConfig)
    hint = hints[name]
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in args:
        base = next(a for a in args if a is not type(None))
        return base, True
    return hint, False


def parse_value(name: str, text: str) -> Any:
    """``text`` as the value of field ``name`` (``none``/``null`` for None where allowed)."""
    base, optional = _field_type(name)
    lowered = text.strip().lower()
    if optional and lowered in ("none", "null", ""):
        return None
    try:
        if base is bool:
            if lowered in ("true", "1", "yes", "on"):
                return True
            if lowered in ("false", "0", "no", "off"):
                return False
            raise ValueError(text)
        if base is int:
            return int(text)
        if base is float:
            return float(text)
        return text
    except ValueError:
        raise PipelineConfigError(f"--set {name}={text}: not a valid {base.__name__}{' (or none)' if optional else ''}") from None


def apply_overrides(config: PipelineConfig, assignments: list[str]) -> PipelineConfig:
    """``["dpo_steps=2", "bf16=false"]`` applied to ``config`` (a new, validated config)."""
    names = {f.name for f in dataclasses.fields(PipelineConfig)} - {"budget"}
    changes: dict[str, Any] = {}
    for item in assignments:
        key, sep, text = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep:
            raise PipelineConfigError(f"--set expects KEY=VALUE, got {item!r}")
        if key not in names:
            raise PipelineConfigError(f"--set {key}: unknown setting; known: {', '.join(sorted(names))}")
        changes[key] = parse_value(key, text)
    return dataclasses.replace(config, **changes)


@dataclass(frozen=True)
class Budget:
    name: str
    description: str
    values: dict[str, Any]
    minutes: dict[str, float]

    @property
    def total_minutes(self) -> float:
        return sum(self.minutes.values())


# Minutes per stage on the project's 2-core CPU (no GPU). The small budget's are one idle-machine
# run of `make main` on the product split (2026-12-06: 31:29 in all; demos-il 0:49, demos-expert
# 0:11, il 15:15, demos-self 0:47, prefs 0:43 + 0:18, DPO 1:54 + 1:53, PPO 2:45, compare 6:04,
# Thompson 0:48), rounded up, with room where a weaker IL policy costs more: demos-self and thompson
# depend most on it (a weak one keeps fewer of its episodes and wanders towards the 100-step cap:
# 10 and 15 minutes before issue 10's IL recipe). The paper budget's are extrapolated (IL ~1.8 s/update,
# DPO ~0.5 s/step with stored reference log-probs, PPO ~120-180 s/update).
BUDGETS: dict[str, Budget] = {
    "small": Budget(
        "small",
        "the paper's pipeline at a small budget for a 2-core CPU: IL 500 updates of 8 pages, 300 expert "
        "trajectories (a) and 100 self-generated ones (b), DPO 200 steps each, PPO 3 updates, Thompson 2 runs x 100 rollouts",
        values={},  # the field defaults are the small budget
        minutes={
            "demos-il": 1.0, "demos-expert": 0.5, "il": 16.0, "demos-self": 3.0, "prefs-expert": 1.0, "prefs-self": 0.5,
            "dpo-expert": 2.0, "dpo-self": 2.0, "ppo": 3.0, "compare": 7.0, "thompson": 5.0, "report": 0.5,
        },
    ),
    "paper": Budget(
        "paper",
        "the paper's sizes: IL as the full recipe, 1,200 expert trajectories (a), 100 self-generated (b), DPO 3,000 "
        "steps each, PPO as the recipe (3,000 updates), Thompson 4 runs x 1,000 rollouts; days on a CPU (PPO alone), "
        "meant for a GPU (--set device=cuda)",
        values=dict(
            expert_trajectories=1200, il_steps=None, il_eval_samples=None, self_max_episodes=None, dpo_steps=None,
            dpo_eval_samples=None, ppo_updates=None, compare_goals=None, thompson_runs=4, thompson_rollouts=1000,
        ),
        # 2-core CPU figures (a GPU takes a small fraction): IL 500 updates, DPO 3,000 steps (+12,000
        # precomputed pairs), PPO 3,000 updates of ~3 minutes.
        minutes={
            "demos-il": 1.5, "demos-expert": 1.0, "il": 20.0, "demos-self": 3.0, "prefs-expert": 10.0, "prefs-self": 1.5,
            "dpo-expert": 75.0, "dpo-self": 60.0, "ppo": 9000.0, "compare": 60.0, "thompson": 60.0, "report": 0.5,
        },
    ),
    "tiny": Budget(
        "tiny",
        "a smoke test of every stage (a few goals, 1-2 steps each); with --base-model set to a tiny policy, seconds "
        "per stage",
        values=dict(
            il_demo_goals=8, expert_trajectories=4, il_steps=2, il_eval_samples=4, self_trajectories=2,
            self_max_episodes=4, self_threshold=0.0, step_limit=15, dpo_steps=2, dpo_eval_samples=4,
            dpo_freeze_encoder_layers=0, ppo_updates=1, ppo_num_envs=2, ppo_num_steps=2, ppo_il_samples=16,
            compare_goals=3, thompson_runs=1, thompson_rollouts=4, thompson_rollouts_per_round=2, thompson_workers=0,
        ),
        minutes={
            "demos-il": 0.2, "demos-expert": 0.2, "il": 0.3, "demos-self": 0.2, "prefs-expert": 0.2, "prefs-self": 0.2,
            "dpo-expert": 0.3, "dpo-self": 0.3, "ppo": 0.3, "compare": 0.3, "thompson": 0.3, "report": 0.1,
        },
    ),
}


def describe(config: PipelineConfig) -> str:
    """One line per setting that differs from the budget's values (for the start banner)."""
    base = PipelineConfig.from_budget(config.budget)
    changed = {k: v for k, v in config.to_dict().items() if getattr(base, k) != v}
    return json.dumps(changed) if changed else "(none)"
