"""DPO of the WebShop action-scoring policy on preference pairs, from a YAML recipe (TRL's DPOTrainer).

    python -m webshop_trl.scripts.dpo --config recipes/minilm/dpo/config_full.yaml
    accelerate launch --config_file recipes/accelerate_configs/cpu.yaml \\
        -m webshop_trl.scripts.dpo --config recipes/minilm/dpo/config_full.yaml
    # any recipe key can be overridden on the command line:
    python -m webshop_trl.scripts.dpo --config recipes/minilm/dpo/config_smoke.yaml --max_steps 2 --beta 0.2

The recipe's keys are the fields of `DPOScriptArguments` (data), `ActionDPOConfig` (training: any
`trl.DPOConfig` / `transformers.TrainingArguments` key) and `DPOModelArguments` (the policy to start
from, normally the IL checkpoint, and the LoRA options); unknown keys are an error, and so are
DPOConfig options the action-scoring trainer does not implement.

Reference log-probs: pairs built by ``webshop-trl build-preferences`` with a reference policy carry
that policy's log-probs; when the policy trained here starts from that same checkpoint (same
weights, processor settings and precision, as build_info.json records) they are used and TRL's
precompute pass is skipped (``reference_log_probs_from_dataset``: auto / true / false).

Output (``output_dir``): the trained policy, loadable with ``ActionScorerModel.from_pretrained``
(config, safetensors weights, tokenizer and processor settings). With ``use_peft`` the LoRA adapter
is saved in ``output_dir/adapter`` and the policy with the adapter merged in ``output_dir``.
"""

from __future__ import annotations

import logging
import os
import time

from transformers import set_seed
from trl import TrlParser

from webshop_trl.scripts.common import recipe_sections, resume_checkpoint, setup_logging
from webshop_trl.trainers.dpo_config import ActionDPOConfig, DPOModelArguments, DPOScriptArguments

logger = logging.getLogger("webshop_trl.dpo")

DATACLASS_TYPES = (DPOScriptArguments, ActionDPOConfig, DPOModelArguments)
ADAPTER_DIR = "adapter"


def make_parser(prog: str | None = None) -> TrlParser:
    """`TrlParser` over the three argument classes: ``--config recipe.yaml`` plus CLI overrides."""
    return TrlParser(DATACLASS_TYPES, prog=prog, description=__doc__.splitlines()[0])


def main(script_args: DPOScriptArguments, training_args: ActionDPOConfig, model_args: DPOModelArguments):
    """Train, save (and evaluate) a DPO policy; returns the `ActionDPOTrainer`."""
    from webshop_trl.preferences.reference import has_reference_columns
    from webshop_trl.trainers.dpo_data import load_build_info, load_preference_datasets
    from webshop_trl.trainers.dpo_trainer import ActionDPOTrainer
    from webshop_trl.trainers.policy_init import load_policy

    setup_logging(logger, training_args)
    resume = resume_checkpoint(training_args, logger)  # fails at once when there is nothing to resume

    set_seed(training_args.seed)
    if not model_args.model_name_or_path:
        logger.warning(
            "model_name_or_path is unset: DPO starts from a fresh policy on %s (random scoring head), not from an IL "
            "checkpoint; the reference is that untrained policy", model_args.encoder_name_or_path,
        )
    model = load_policy(model_args, training_args.processor_overrides())
    with training_args.main_process_first(desc="loading the preference pairs"):
        started = time.perf_counter()
        train_dataset, eval_dataset = load_preference_datasets(script_args, training_args)
    logger.info(
        "DPO data: %d training pairs, %s evaluation pairs (%.1f s); processor %s",
        len(train_dataset), "no" if eval_dataset is None else len(eval_dataset), time.perf_counter() - started,
        model.processor,
    )

    build_info = None
    if training_args.reference_log_probs_from_dataset != "false" and has_reference_columns(train_dataset):
        build_info = load_build_info(script_args)  # which reference scored the pairs' stored log-probs
    trainer = ActionDPOTrainer(
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        peft_config=model_args.peft_config(),
        preference_build_info=build_info,
    )
    logger.info("DPO reference log-probs: %s", {
        "dataset": "stored with the pairs by build-preferences", "precompute": "TRL's precompute pass",
        "peft-base": "the base with the adapter off, at each step", "model": "a frozen reference copy, at each step",
    }[trainer.reference_log_probs_source])
    trainer.model_card_data = {
        "datasets": [dpo_card_dataset(script_args, train_dataset, eval_dataset)],
        "base_model": model_args.model_name_or_path or model_args.encoder_name_or_path,
        "hyperparameters": recipe_sections(script_args, training_args, model_args),
    }
    train_result = trainer.train(resume_from_checkpoint=resume)
    metrics = dict(train_result.metrics)
    metrics["train_samples"] = len(train_dataset)
    trainer.log_metrics("train", metrics)
    trainer.save_metrics("train", metrics)
    trainer.save_state()

    save_policy(trainer, training_args.output_dir)

    if eval_dataset is not None:
        eval_metrics = trainer.evaluate()
        eval_metrics["eval_samples"] = len(eval_dataset)
        trainer.log_metrics("eval", eval_metrics)
        trainer.save_metrics("eval", eval_metrics)

    trainer.model_card_data["metrics"] = {"train": metrics, **({"eval": eval_metrics} if eval_dataset is not None else {})}
    trainer.create_model_card()  # README.md in output_dir (push_to_hub uploads it with the policy)
    if training_args.push_to_hub:
        trainer.push_to_hub(dataset_name=script_args.dataset_name)
    return trainer


def dpo_card_dataset(script_args: DPOScriptArguments, train_dataset, eval_dataset) -> dict:
    """The model card's data: the preference dataset, the pairs used and its build_info.json."""
    from webshop_trl.trainers.model_card import dataset_entry

    def goals(ds):
        return len(set(ds["goal_index"])) if ds is not None and "goal_index" in ds.column_names else None

    return dataset_entry(
        script_args.dataset_name, role="preference pairs", train_split=script_args.dataset_train_split,
        train_pairs=len(train_dataset), train_goals=goals(train_dataset),
        eval_split=script_args.dataset_test_split if eval_dataset is not None else None,
        eval_pairs=len(eval_dataset) if eval_dataset is not None else None, eval_goals=goals(eval_dataset),
    )


def save_policy(trainer, output_dir: str) -> None:
    """Save the trained policy so that ``ActionScorerModel.from_pretrained(output_dir)`` loads it.

    Full fine-tuning: config + weights + processor. PEFT: the adapter (plus the scoring head it
    trains in full) in ``output_dir/adapter``, then the merged policy in ``output_dir``.
    """
    from accelerate.utils import is_peft_model

    unwrapped = trainer.accelerator.unwrap_model(trainer.model)
    if not is_peft_model(unwrapped):
        trainer.save_model(output_dir)  # config + weights + processor (ActionScorerModel.save_pretrained)
        logger.info("saved the DPO policy to %s", output_dir)
        return
    adapter_dir = os.path.join(output_dir, ADAPTER_DIR)
    trainer.save_model(adapter_dir)
    if trainer.accelerator.is_main_process:
        processor = trainer.action_processor
        processor.save_pretrained(adapter_dir)
        # merge a copy: the trainer's model stays a PeftModel (evaluation after saving uses it)
        from webshop_trl.trainers.dpo_trainer import unpatched_copy

        merged = unpatched_copy(unwrapped).merge_and_unload()
        merged.processor = processor
        merged.save_pretrained(output_dir)
        logger.info("saved the LoRA adapter to %s and the merged DPO policy to %s", adapter_dir, output_dir)
    trainer.accelerator.wait_for_everyone()


if __name__ == "__main__":
    parser = make_parser()
    script_args, training_args, model_args = parser.parse_args_and_config()
    main(script_args, training_args, model_args)
