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
