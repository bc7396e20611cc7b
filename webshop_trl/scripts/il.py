"""Imitation learning (behaviour cloning) of the WebShop choice policy, from a YAML recipe.

    python -m webshop_trl.scripts.il --config recipes/minilm/il/config_full.yaml
    accelerate launch --config_file recipes/accelerate_configs/cpu.yaml \\
        -m webshop_trl.scripts.il --config recipes/minilm/il/config_full.yaml
    # any recipe key can be overridden on the command line:
    python -m webshop_trl.scripts.il --config recipes/minilm/il/config_smoke.yaml --max_steps 2

The recipe's keys are the fields of `ILScriptArguments` (data), `ILConfig` (training; any
`transformers.TrainingArguments` key) and `ILModelArguments` (model); unknown keys are an error.
The trained policy is saved with ``save_pretrained`` (config, safetensors weights, tokenizer and
processor settings) in ``output_dir``, so ``ActionScorerModel.from_pretrained(output_dir)`` loads
it.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from transformers import set_seed
from trl import TrlParser

from webshop_trl.scripts.common import recipe_sections, resume_checkpoint, setup_logging
from webshop_trl.trainers.il_config import ILConfig, ILModelArguments, ILScriptArguments

logger = logging.getLogger("webshop_trl.il")

DATACLASS_TYPES = (ILScriptArguments, ILConfig, ILModelArguments)


def make_parser(prog: str | None = None) -> TrlParser:
    """`TrlParser` over the three argument classes: ``--config recipe.yaml`` plus CLI overrides."""
    return TrlParser(DATACLASS_TYPES, prog=prog, description=__doc__.splitlines()[0])


def main(script_args: ILScriptArguments, training_args: ILConfig, model_args: ILModelArguments):
    """Train, save (and evaluate) an IL policy; returns the `ILTrainer`."""
    from webshop_trl.trainers.il_data import build_il_datasets
    from webshop_trl.trainers.il_trainer import ILTrainer
    from webshop_trl.trainers.policy_init import load_policy

    setup_logging(logger, training_args)
    resume = resume_checkpoint(training_args, logger)  # fails at once when there is nothing to resume

    with training_args.main_process_first(desc="building the IL decision steps"):
        started = time.perf_counter()
        train_dataset, eval_dataset = build_il_datasets(script_args, training_args)
    set_seed(training_args.seed)
    model = load_policy(model_args, training_args.processor_overrides())
    logger.info(
        "IL data: %d training steps, %s evaluation steps (%.1f s); processor %s",
        len(train_dataset), "no" if eval_dataset is None else len(eval_dataset), time.perf_counter() - started,
        model.processor,
    )

    trainer = ILTrainer(model=model, args=training_args, train_dataset=train_dataset, eval_dataset=eval_dataset)
    trainer.model_card_data = {
        "datasets": il_card_datasets(script_args, train_dataset, eval_dataset),
        "base_model": model_args.model_name_or_path or model_args.encoder_name_or_path,
        "hyperparameters": recipe_sections(script_args, training_args, model_args),
    }
    train_result = trainer.train(resume_from_checkpoint=resume)
    metrics = dict(train_result.metrics)
    metrics["train_samples"] = len(train_dataset)
    trainer.log_metrics("train", metrics)
    trainer.save_metrics("train", metrics)
    trainer.save_state()

    trainer.save_model(training_args.output_dir)  # config + weights + processor (save_pretrained)
    logger.info("saved the IL policy to %s", training_args.output_dir)

    if eval_dataset is not None:
        eval_metrics = trainer.evaluate()
        eval_metrics["eval_samples"] = len(eval_dataset)
        trainer.log_metrics("eval", eval_metrics)
        trainer.save_metrics("eval", eval_metrics)

    if trainer.is_world_process_zero():
        from webshop_trl.trainers.curves import CURVES_FILENAME, plot_training_curves

        curves = plot_training_curves(trainer.state.log_history, Path(training_args.output_dir) / CURVES_FILENAME,
                                      title=f"IL: {training_args.output_dir} (seed {training_args.seed})")
        if curves is not None:
            logger.info("training curves: %s", curves)
    trainer.model_card_data["metrics"] = {"train": metrics, **({"eval": eval_metrics} if eval_dataset is not None else {})}
    trainer.create_model_card()  # README.md in output_dir (push_to_hub uploads it with the policy)
    if training_args.push_to_hub:
        trainer.push_to_hub(tags=ILTrainer._tag_names)
    return trainer


def il_card_datasets(script_args: ILScriptArguments, train_dataset, eval_dataset) -> list[dict]:
    """The model card's data: each file or folder (trajectories per file, its build_info.json) and
    the decision steps (pages) and goals actually used."""
    from webshop_trl.trainers.model_card import count_lines, dataset_entry

    def entries(paths, role):
        out = []
        for path in paths or []:
            lines = count_lines([path]) if str(path).endswith((".jsonl", ".json")) else None
            out.append(dataset_entry(path, role=role, trajectories=lines))
        return out

    def goals(ds):
        column = "group" if "group" in ds.column_names else "goal_index" if "goal_index" in ds.column_names else None
        return len(set(ds[column])) if column else None

    used = {"name": "decision steps used", "source": "built by webshop_trl.trainers.il_data",
            "train_pages": len(train_dataset), "train_trajectories": goals(train_dataset)}
    if eval_dataset is not None:
        used.update(eval_pages=len(eval_dataset), eval_trajectories=goals(eval_dataset))
    used = {k: v for k, v in used.items() if v is not None}
    return entries(script_args.dataset_paths, "train") + entries(script_args.eval_dataset_paths, "eval") + [used]


if __name__ == "__main__":
    parser = make_parser()
    script_args, training_args, model_args = parser.parse_args_and_config()
    main(script_args, training_args, model_args)
