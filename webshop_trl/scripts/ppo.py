"""PPO of the WebShop action-scoring policy on the live environment, from a YAML recipe (our own loop on accelerate).

    python -m webshop_trl.scripts.ppo --config recipes/minilm/ppo/config_smoke.yaml
    accelerate launch --config_file recipes/accelerate_configs/cpu.yaml \\
        -m webshop_trl.scripts.ppo --config recipes/minilm/ppo/config_full.yaml
    # any recipe key can be overridden on the command line:
    python -m webshop_trl.scripts.ppo --config recipes/minilm/ppo/config_smoke.yaml --num_updates 2 --kl_coef 0.05
    # continue from the last checkpoint of output_dir:
    python -m webshop_trl.scripts.ppo --config recipes/minilm/ppo/config_full.yaml --resume_from_checkpoint true

The recipe's keys are the fields of `PPOScriptArguments` (environment, demonstrations),
`PPOConfig` (the loop) and `PPOModelArguments` (the policy to start from, normally the IL
checkpoint, and the LoRA options); unknown keys are an error.

Output (``output_dir``): metrics.jsonl (one line per logged update), checkpoint-<n>/ folders
(policy + processor, accelerate state, trainer_state.json) and the final policy, loadable with
``ActionScorerModel.from_pretrained`` (with ``use_peft``: the adapter in ``output_dir/adapter`` and
the merged policy in ``output_dir``).
"""

from __future__ import annotations

import logging

from transformers import set_seed
from trl import TrlParser

from webshop_trl.scripts.common import setup_logging
from webshop_trl.trainers.model_card import recipe_values
from webshop_trl.trainers.ppo_config import PPOConfig, PPOModelArguments, PPOScriptArguments

logger = logging.getLogger("webshop_trl.ppo")

DATACLASS_TYPES = (PPOScriptArguments, PPOConfig, PPOModelArguments)


def make_parser(prog: str | None = None) -> TrlParser:
    """`TrlParser` over the three argument classes: ``--config recipe.yaml`` plus CLI overrides."""
    return TrlParser(DATACLASS_TYPES, prog=prog, description=__doc__.splitlines()[0])


def build_policy(model_args: PPOModelArguments, config: PPOConfig):
    """The policy to train (IL policy-init code, value head on; LoRA through PEFT when asked)."""
    from webshop_trl.trainers.policy_init import load_policy

    model = load_policy(model_args, config.processor_overrides())
    peft_config = model_args.peft_config()
    if peft_config is None:
        return model
    from peft import get_peft_model

    processor = model.processor
    model = get_peft_model(model, peft_config)
    model.processor = processor
    return model


def load_il_dataset(script_args: PPOScriptArguments, config: PPOConfig):
    """Demonstration decision steps for the IL term (None without il_dataset_paths or with il_coef 0)."""
    if not script_args.il_dataset_paths or config.il_coef <= 0:
        return None
    from webshop_trl.trainers.il_data import load_decision_steps, subsample

    dataset = load_decision_steps(script_args.il_dataset_paths, seed=config.seed, min_reward=script_args.il_min_reward)
    return subsample(dataset, script_args.il_max_samples, config.seed)


def main(script_args: PPOScriptArguments, config: PPOConfig, model_args: PPOModelArguments):
    """Train and save a PPO policy; returns the `PPOTrainer`."""
    from webshop_trl.trainers.ppo_trainer import PPOTrainer

    setup_logging(logger)
    set_seed(config.seed)  # the same initial policy (and new value head) in every process
    if not model_args.model_name_or_path:
        logger.warning(
            "model_name_or_path is unset: PPO starts from a fresh policy on %s (random scoring head), not from the IL "
            "checkpoint; the reference is that untrained policy", model_args.encoder_name_or_path,
        )
    model = build_policy(model_args, config)
    il_dataset = load_il_dataset(script_args, config)
    if config.il_coef > 0 and il_dataset is None:
        raise ValueError("il_coef > 0 needs il_dataset_paths (demonstrations for the IL loss term)")
    trainer = PPOTrainer(model, config, script_args, il_dataset=il_dataset)
    trainer.model_card_data = {
        "datasets": ppo_card_datasets(script_args, il_dataset),
        "base_model": model_args.model_name_or_path or model_args.encoder_name_or_path,
        "hyperparameters": {
            "environment": recipe_values(script_args, ("goal_split", "goal_split_mode", "observation_mode", "query_source")),
            "model": {k: v for k, v in recipe_values(model_args, ("model_name_or_path", "encoder_name_or_path")).items()
                      if not (k == "encoder_name_or_path" and model_args.model_name_or_path)},
            "training": recipe_values(config, ("seed", "num_updates", "num_envs", "num_steps", "learning_rate", "gamma",
                                               "gae_lambda", "clip_coef", "ent_coef", "kl_coef", "il_coef", "reward_scale")),
        },
    }
    trainer.train(resume_from_checkpoint=config.resume_from_checkpoint)
    trainer.save_final()
    trainer.create_model_card()  # README.md in output_dir: data, base checkpoint, recipe, last metrics
    if trainer.accelerator.is_main_process:
        logger.info("saved the PPO policy and its model card to %s", config.output_dir)
    if config.push_to_hub:
        trainer.push_to_hub()
    return trainer


def ppo_card_datasets(script_args: PPOScriptArguments, il_dataset) -> list[dict]:
    """The model card's data: the environment's goals (the trainer adds steps and episodes) and the
    IL term's demonstrations (files, trajectories, pages used, build_info.json)."""
    from webshop_trl.trainers.model_card import count_lines, dataset_entry

    env = {"name": f"WebShop {script_args.goal_split} goals", "source": "environment", "role": "rollouts",
           "data_dir": script_args.data_dir or "default", "num_products": script_args.num_products or "all",
           "observation_mode": script_args.observation_mode, "search_engine": script_args.search_engine}
    out = [env]
    for path in (script_args.il_dataset_paths or []) if il_dataset is not None else []:
        lines = count_lines([path]) if str(path).endswith((".jsonl", ".json")) else None
        out.append(dataset_entry(path, role="IL term demonstrations", trajectories=lines))
    if il_dataset is not None:
        out.append({"name": "IL decision steps used", "source": "built by webshop_trl.trainers.il_data", "pages": len(il_dataset)})
    return out


if __name__ == "__main__":
    parser = make_parser()
    script_args, config, model_args = parser.parse_args_and_config()
    main(script_args, config, model_args)
