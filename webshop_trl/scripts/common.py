"""What every training entry script sets up the same way."""

from __future__ import annotations

import logging
import sys

import transformers

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(logger: logging.Logger, training_args=None) -> None:
    """Log to stdout; with TrainingArguments, use its per-process level (the main process logs,
    replicas stay quiet) for our logger and for transformers."""
    logging.basicConfig(format=LOG_FORMAT, level=logging.INFO, handlers=[logging.StreamHandler(sys.stdout)])
    if training_args is not None:
        log_level = training_args.get_process_log_level()
        transformers.utils.logging.set_verbosity(log_level)
        if training_args.log_level == "passive" and training_args.should_log:
            log_level = logging.INFO  # 'passive' keeps transformers' default (warnings); our own info still shows
        logger.setLevel(log_level)


def resume_checkpoint(training_args, logger: logging.Logger) -> str | None:
    """The checkpoint ``resume_from_checkpoint`` names: ``true`` is the last complete
    ``checkpoint-<n>`` of ``output_dir`` (an error if there is none), a folder is that checkpoint
    (an error if incomplete), unset or ``false`` starts afresh (see `webshop_trl.trainers.checkpoints`)."""
    from webshop_trl.trainers.checkpoints import resolve_resume_from_checkpoint

    path = resolve_resume_from_checkpoint(training_args.resume_from_checkpoint, training_args.output_dir)
    if path is not None:
        logger.info("resuming from %s", path)
    return path


def recipe_sections(script_args, training_args, model_args) -> dict:
    """The recipe for the model card: each argument group's non-default values (plus key ones)."""
    from webshop_trl.trainers.model_card import TRAINING_ALWAYS, recipe_values

    model = recipe_values(model_args, ("model_name_or_path", "encoder_name_or_path"))
    if model.get("model_name_or_path"):  # the encoder is the checkpoint's own
        model.pop("encoder_name_or_path", None)
    return {
        "data": recipe_values(script_args),
        "model": model,
        "training": recipe_values(training_args, TRAINING_ALWAYS),
    }
