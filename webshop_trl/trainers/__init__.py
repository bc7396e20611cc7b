"""Trainers of the WebShop policy built on `transformers.Trainer` (IL now; DPO and PPO build on it).

* `ILConfig` / `ILScriptArguments` / `ILModelArguments` -- the arguments of a recipe.
* `ILTrainer` -- behaviour cloning: cross-entropy of the demonstrated click over the candidates.
* `ILDataCollator`, `build_il_datasets` -- decision steps from trajectories, batched.
* `load_policy` -- a fresh policy on a BERT encoder, or a saved checkpoint.

Run a recipe with ``python -m webshop_trl.scripts.il --config recipes/minilm/il/config_full.yaml``
(or under ``accelerate launch``); see recipes/minilm/README.md.
"""

from webshop_trl.trainers.il_config import ILConfig, ILModelArguments, ILScriptArguments
from webshop_trl.trainers.il_data import ILDataCollator, build_il_datasets, load_decision_steps
from webshop_trl.trainers.il_trainer import ILTrainer
from webshop_trl.trainers.policy_init import freeze_encoder, load_policy

__all__ = [
    "ILConfig",
    "ILDataCollator",
    "ILModelArguments",
    "ILScriptArguments",
    "ILTrainer",
    "build_il_datasets",
    "freeze_encoder",
    "load_decision_steps",
    "load_policy",
]

# DPO: TRL's DPOTrainer subclassed for the action-scoring policy (recipes/minilm/dpo/README.md).
from webshop_trl.trainers.dpo_config import ActionDPOConfig, DPOModelArguments, DPOScriptArguments  # noqa: E402
from webshop_trl.trainers.dpo_data import ActionDPODataCollator, load_preference_datasets  # noqa: E402
from webshop_trl.trainers.dpo_loss import SUPPORTED_LOSS_TYPES, dpo_loss  # noqa: E402
from webshop_trl.trainers.dpo_trainer import ActionDPOTrainer  # noqa: E402

__all__ += [
    "ActionDPOConfig",
    "ActionDPODataCollator",
    "ActionDPOTrainer",
    "DPOModelArguments",
    "DPOScriptArguments",
    "SUPPORTED_LOSS_TYPES",
    "dpo_loss",
    "load_preference_datasets",
]

# PPO: our own loop on accelerate (TRL 1.16 has no PPO; recipes/minilm/ppo/README.md).
from webshop_trl.trainers.ppo_config import PPOConfig, PPOModelArguments, PPOScriptArguments  # noqa: E402
from webshop_trl.trainers.ppo_core import clipped_policy_loss, compute_gae, exact_entropy, exact_kl  # noqa: E402
from webshop_trl.trainers.ppo_trainer import PPOTrainer  # noqa: E402

__all__ += [
    "PPOConfig",
    "PPOModelArguments",
    "PPOScriptArguments",
    "PPOTrainer",
    "clipped_policy_loss",
    "compute_gae",
    "exact_entropy",
    "exact_kl",
]
