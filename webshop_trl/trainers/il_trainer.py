"""`ILTrainer`: behaviour cloning of WebShop click choices with `transformers.Trainer`.

The loss is the cross-entropy of the demonstrated click over each page's candidates,
-log pi(a*|s), summed over the pages of an optimizer update and divided by their number, so the
loss does not depend on how the pages are split into micro-batches or processes (the number comes
from Trainer's ``num_items_in_batch``, counted over gradient accumulation and gathered across
processes, as Trainer does for token losses).

Logged besides the loss (``eval_`` prefixed in evaluation): ``choice_accuracy`` (the policy's
argmax is the demonstrated click), ``entropy`` (of pi(.|s), nats) and ``num_candidates`` (mean
per page). They are per-page sums gathered from every process (duplicates that even batches add
dropped), so they are exact under DDP and DeepSpeed; so is ``eval_loss``, the mean -log pi(a*|s)
over the evaluation pages.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from typing import Any

import torch
from transformers import Trainer

from webshop_trl.policy.processing_action_scorer import IGNORE_INDEX
from webshop_trl.trainers.il_config import ILConfig
from webshop_trl.trainers.il_data import MODEL_COLUMNS, ILDataCollator

_STAT_NAMES = ("pages", "correct", "entropy", "num_candidates", "nll")


class ILTrainer(Trainer):
    """`Trainer` for an `ActionScorerModel` on decision-step datasets (see `il_data`).

    Args:
        model: the policy (`ActionScorerModel`) with its processor attached.
        args: an `ILConfig`.
        data_collator: defaults to `ILDataCollator` on the model's processor.
        processing_class: the `ActionScoringProcessor` (defaults to ``model.processor``); saved
            with checkpoints.
        Other arguments as `transformers.Trainer`.
    """

    _tag_names = ["webshop-trl", "il", "behaviour-cloning"]

    def __init__(
        self,
        model,
        args: ILConfig | None = None,
        data_collator=None,
        train_dataset=None,
        eval_dataset=None,
        processing_class=None,
        **kwargs: Any,
    ):
        if args is None:
            args = ILConfig(output_dir="outputs/il/tmp")
        if processing_class is None:
            processing_class = getattr(model, "processor", None)
        if processing_class is None:
            raise ValueError("ILTrainer needs the policy's ActionScoringProcessor: attach one or pass processing_class=")
        if data_collator is None:
            data_collator = ILDataCollator(processing_class)
        if kwargs.get("compute_loss_func") is not None:
            raise ValueError("ILTrainer computes its own cross-entropy over candidates; compute_loss_func is not supported")
        if getattr(args, "label_smoothing_factor", 0.0):
            raise ValueError("label_smoothing_factor is not supported by ILTrainer (the loss is over candidates, not a vocabulary)")
        super().__init__(
            model=model,
            args=args,
            data_collator=data_collator,
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            processing_class=processing_class,
            **kwargs,
        )
        if self.args.n_gpu > 1:
            raise ValueError(
                "ILTrainer does not support torch.nn.DataParallel (several GPUs in one process): launch one process "
                "per GPU with `accelerate launch` or `torchrun`"
            )
        # Our compute_loss normalises by Trainer's page count itself; this makes Trainer count the
        # labelled pages of each update (num_items_in_batch) and not divide the loss again.
        self.model_accepts_loss_kwargs = True
        self.loss_is_scaled_for_ga = None
        self._metrics: dict[str, dict[str, float]] = {"train": defaultdict(float), "eval": defaultdict(float)}

    # ------------------------------------------------------------------ columns
    def _set_signature_columns_if_needed(self) -> None:
        # The model takes tensors; the dataset holds text. Keep the columns the collator reads (and
        # the length column for group_by_length), so remove_unused_columns=True does not drop them.
        if self._signature_columns is None:
            self._signature_columns = list(MODEL_COLUMNS) + [self.args.length_column_name]

    def _get_train_sampler(self, train_dataset=None):
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        with self._lengths_from_column(dataset):
            return super()._get_train_sampler(train_dataset)

    def _get_eval_sampler(self, eval_dataset):
        with self._lengths_from_column(eval_dataset):
            return super()._get_eval_sampler(eval_dataset)

    @contextlib.contextmanager
    def _lengths_from_column(self, dataset):
        """Length-grouped sampling must read our length column: Trainer would otherwise ask the
        processing class for ``model_input_names`` (a tokenizer attribute our processor lacks)."""
        if self.args.train_sampling_strategy not in ("group_by_length", "batch_rebalance") or dataset is None:
            yield
            return
        column = self.args.length_column_name
        if column not in (getattr(dataset, "column_names", None) or []):
            raise ValueError(
                f"train_sampling_strategy={self.args.train_sampling_strategy!r} needs a {column!r} column of step lengths "
                "(datasets built by webshop_trl.trainers.il_data have one)"
            )
        processing_class, self.processing_class = self.processing_class, None
        try:
            yield
        finally:
            self.processing_class = processing_class

    # ------------------------------------------------------------------ optimizer
    def create_optimizer(self, model=None):
        """Trainer's optimizer, with the head's parameters in groups of their own at
        ``head_learning_rate`` (when set); the encoder's groups come first, so the logged
        ``learning_rate`` is the encoder's. The schedule scales every group alike."""
        optimizer = super().create_optimizer(model)
        head_lr = getattr(self.args, "head_learning_rate", None)
        if head_lr is None or float(head_lr) == float(self.args.learning_rate):
            return optimizer
        opt_model = self.model if model is None else model
        head = {id(p) for name, p in opt_model.named_parameters() if "text_encoder." not in name}
        encoder_groups, head_groups = [], []
        for group in optimizer.param_groups:
            options = {k: v for k, v in group.items() if k != "params"}
            enc = [p for p in group["params"] if id(p) not in head]
            hd = [p for p in group["params"] if id(p) in head]
            if enc:
                encoder_groups.append({**options, "params": enc})
            if hd:
                head_groups.append({**options, "params": hd, "lr": float(head_lr)})
        if not head_groups:
            raise ValueError("head_learning_rate is set but the model has no trainable parameters outside text_encoder")
        optimizer.param_groups.clear()  # nothing has stepped yet: no state to carry over
        for group in encoder_groups + head_groups:
            optimizer.add_param_group(group)
        return optimizer

    # ------------------------------------------------------------------ loss
    def compute_loss(self, model, inputs, return_outputs: bool = False, num_items_in_batch=None):
        mode = "train" if model.training else "eval"
        inputs = dict(inputs)
        labels = inputs.pop("labels")
        if self.args.bf16:
            inputs["bf16"] = True  # the policy's own bf16 path (autocast + its CPU attention choice)
        outputs = model(**inputs)
        log_probs = outputs.log_probs  # [B, Kmax], -inf in padding
        labels = labels.to(log_probs.device)
        valid = labels != IGNORE_INDEX
        chosen = log_probs.gather(1, labels.clamp(min=0)[:, None]).squeeze(1)
        nll = torch.where(valid, -chosen, torch.zeros_like(chosen))
        if num_items_in_batch is not None:
            loss = nll.sum() / num_items_in_batch
            if self.args.average_tokens_across_devices and self.accelerator.num_processes > 1:
                # DDP averages gradients over processes; num_items_in_batch already counts all of them
                loss = loss * self.accelerator.num_processes
        else:
            loss = nll.sum() / valid.sum().clamp(min=1)
        self._record_stats(mode, outputs, labels, valid, nll)
        return (loss, outputs) if return_outputs else loss

    @torch.no_grad()
    def _record_stats(self, mode: str, outputs, labels: torch.Tensor, valid: torch.Tensor, nll: torch.Tensor) -> None:
        log_probs = outputs.log_probs.detach().float()
        mask = outputs.candidate_mask
        probs = log_probs.exp()
        entropy = -torch.where(mask, probs * log_probs, torch.zeros_like(log_probs)).sum(-1)
        correct = (log_probs.argmax(-1) == labels) & valid
        v = valid.float()
        stats = torch.stack([v, correct.float(), entropy * v, mask.sum(-1).float() * v, nll.detach().float()], dim=1)
        if mode == "eval":
            stats = self.accelerator.gather_for_metrics(stats)  # drops the duplicates that even batches add
        else:
            stats = self.accelerator.gather(stats)
        for name, value in zip(_STAT_NAMES, stats.sum(0).tolist()):
            self._metrics[mode][name] += value

    def _pop_metrics(self, mode: str) -> dict[str, float]:
        stats = self._metrics[mode]
        pages = stats.get("pages", 0.0)
        out = {}
        if pages > 0:
            out = {
                "choice_accuracy": stats["correct"] / pages,
                "entropy": stats["entropy"] / pages,
                "num_candidates": stats["num_candidates"] / pages,
                "nll": stats["nll"] / pages,
            }
        self._metrics[mode] = defaultdict(float)
        return out

    # ------------------------------------------------------------------ model card
    # What the entry script knows (datasets and their sizes, base checkpoint, recipe, final
    # metrics) for the card; see webshop_trl.trainers.model_card.
    model_card_data: dict | None = None

    def create_model_card(self, model_name: str | None = None, **kwargs) -> None:
        """Write our model card (README.md) into ``output_dir`` (Trainer.push_to_hub uploads it)."""
        from webshop_trl.trainers.model_card import write_trainer_model_card

        write_trainer_model_card(self, "il", model_name)

    # ------------------------------------------------------------------ evaluation and logging
    def prediction_step(self, model, inputs, prediction_loss_only: bool, ignore_keys=None):
        """Loss, and (unless loss only) the [B, Kmax] candidate logits (-inf padding) and labels."""
        inputs = self._prepare_inputs(inputs)
        labels = inputs["labels"]
        with torch.no_grad(), self.compute_loss_context_manager():
            loss, outputs = self.compute_loss(model, inputs, return_outputs=True)
        loss = loss.detach().mean()
        if prediction_loss_only:
            return loss, None, None
        return loss, outputs.logits.detach(), labels

    def evaluation_loop(self, *args, **kwargs):
        metric_key_prefix = kwargs.get("metric_key_prefix", args[4] if len(args) > 4 else "eval")
        self._metrics["eval"] = defaultdict(float)
        output = super().evaluation_loop(*args, **kwargs)
        metrics = self._pop_metrics("eval")
        if "nll" in metrics:
            # the exact mean over pages (Trainer's loss averages batch means, which padding to even
            # batches across processes tilts a little)
            metrics["loss"] = metrics.pop("nll")
        for key, value in metrics.items():
            output.metrics[f"{metric_key_prefix}_{key}"] = value
        return output

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs:  # a training log: add the metrics gathered since the last one
            metrics = self._pop_metrics("train")
            metrics.pop("nll", None)  # the logged loss already is this mean
            logs = {**logs, **metrics}
        super().log(logs, start_time)


__all__ = ["ILTrainer"]
