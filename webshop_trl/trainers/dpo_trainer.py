"""`ActionDPOTrainer`: TRL 1.16's `DPOTrainer` for the WebShop action-scoring policy.

TRL's DPO scores a completion by summing the token log-probs of a causal LM. Here the policy
(`ActionScorerModel`) gives log pi(a|s) directly: the log-softmax over the page's candidate
actions. A pair (page, chosen, rejected) therefore needs one forward pass of its page, and chosen
and rejected are two entries of the same softmax.

Everything else is TRL's own machinery, reached by overriding the four hooks that kept their
signatures from TRL 1.0 to 1.16 (see shared/docs/TRL_NOTES.md):

* `_prepare_dataset` -- check the preference columns; no LM tokenisation (the collator tokenises).
* `_set_signature_columns_if_needed` -- keep our columns when ``remove_unused_columns`` is on.
* `compute_ref_log_probs(model, inputs)` -- reference log-probs of chosen/rejected for one batch;
  TRL's ``precompute_ref_log_probs`` path calls it over the whole dataset before training.
* `compute_loss` -- policy log-probs, the reference (precomputed, the frozen reference model, or
  the PEFT base with the adapter disabled, as TRL does), the loss of each ``loss_type``, and the
  DPO metrics appended to ``self._metrics[mode]`` (TRL's `log` averages and reports them).

Plus `prediction_step` (evaluation is loss + metrics only; TRL's would gather the observation
ids as "labels").

The reference, as TRL chooses it: an explicit ``ref_model``; with PEFT the base model with the
adapter disabled; with ``precompute_ref_log_probs`` none is kept (log-probs of the initial policy
are stored as dataset columns); otherwise TRL would reload ``config._name_or_path`` with
``AutoModelForCausalLM``, which cannot build this policy, so the trainer passes TRL a frozen copy
of the initial policy instead.

Before all of these: pairs from ``webshop-trl build-preferences`` with a reference policy already
carry that reference's log-probs (``ref_chosen_logps`` / ``ref_rejected_logps``). When the DPO
reference is that checkpoint (weights fingerprint, processor settings and precision recorded in
the dataset's build_info.json match; `webshop_trl.preferences.reference`), the trainer uses them as
TRL's precomputed log-probs: TRL's precompute pass (`_precompute_ref_logps`) returns the dataset
as it is, and no reference model is kept. ``reference_log_probs_from_dataset`` ("auto", "true",
"false") chooses; ``trainer.reference_log_probs_source`` says what was used ("dataset",
"precompute", "peft-base", "model").
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
from typing import Any

import torch
from accelerate.utils import is_peft_model
from transformers import PreTrainedTokenizerBase
from trl import DPOConfig, DPOTrainer
from trl.models.utils import disable_gradient_checkpointing
from trl.trainer.utils import use_adapter

from webshop_trl.policy import ActionScorerModel, ActionScoringProcessor
from webshop_trl.preferences.reference import has_reference_columns, precision_name, reference_mismatches
from webshop_trl.trainers.dpo_config import ActionDPOConfig, check_dpo_options
from webshop_trl.trainers.dpo_data import COLLATOR_COLUMNS, INDEX_COLUMNS, REF_COLUMNS, ActionDPODataCollator, check_preference_dataset
from webshop_trl.trainers.dpo_loss import dpo_loss

logger = logging.getLogger("webshop_trl.dpo.reference")

# Batch keys that are not `ActionScorerModel.forward` arguments.
_NON_MODEL_KEYS = frozenset(INDEX_COLUMNS + REF_COLUMNS + ("labels",))


class ActionDPOTrainer(DPOTrainer):
    """`trl.DPOTrainer` for an `ActionScorerModel` on (observation, chosen, rejected, candidates) pairs.

    Args:
        model: the policy (`ActionScorerModel`, normally the IL checkpoint) with its processor
            attached, a `peft.PeftModel` around one, or a saved policy's folder.
        ref_model: the reference policy; default: as TRL (see the module docstring).
        args: an `ActionDPOConfig` (or a `trl.DPOConfig` that sets only supported options).
        data_collator: defaults to `ActionDPODataCollator` on the policy's processor.
        train_dataset, eval_dataset: preference pairs (`webshop_trl.trainers.dpo_data`).
        processing_class: the policy's tokenizer (default: ``model.processor.tokenizer``); TRL
            requires a tokenizer here. An `ActionScoringProcessor` is accepted too.
        peft_config: a `peft.LoraConfig` (task type FEATURE_EXTRACTION or SEQ_CLS, the scoring
            head in ``modules_to_save``; see `DPOModelArguments.peft_config`).
        preference_build_info: the ``build_info.json`` of the pairs (says which reference scored
            their ``ref_*`` columns); default: found next to a dataset loaded with ``load_from_disk``
            from a build-preferences folder.
        Other arguments as `trl.DPOTrainer` (``compute_metrics`` and ``quantization_config`` are
        not supported).
    """

    _tag_names = ["trl", "dpo", "webshop-trl", "action-scoring"]

    def __init__(
        self,
        model,
        ref_model=None,
        args: DPOConfig | None = None,
        data_collator=None,
        train_dataset=None,
        eval_dataset=None,
        processing_class=None,
        compute_metrics=None,
        callbacks=None,
        optimizers=(None, None),
        quantization_config=None,
        peft_config=None,
        preference_build_info: dict | None = None,
    ):
        if args is None:
            args = ActionDPOConfig(output_dir="outputs/dpo/tmp")
        check_dpo_options(args)
        if compute_metrics is not None:
            raise ValueError("ActionDPOTrainer does not support compute_metrics: evaluation reports the loss and the DPO metrics")
        if quantization_config is not None:
            raise ValueError("ActionDPOTrainer does not support quantization_config (the policy is a small BERT)")
        if isinstance(model, (str, os.PathLike)):
            model = ActionScorerModel.from_pretrained(os.fspath(model), **dict(args.model_init_kwargs or {}))

        policy = model.get_base_model() if is_peft_model(model) else model
        processor = _find_processor(policy, processing_class)
        if processing_class is None or isinstance(processing_class, ActionScoringProcessor):
            processing_class = processor.tokenizer
        if not isinstance(processing_class, PreTrainedTokenizerBase):
            raise TypeError(f"processing_class must be the policy's tokenizer, got {type(processing_class).__name__}")
        if data_collator is None:
            if getattr(args, "pad_to_multiple_of", None) not in (None, "auto"):
                processor = copy.copy(processor)
                processor.pad_to_multiple_of = int(args.pad_to_multiple_of)
            data_collator = ActionDPODataCollator(processor)
        self.action_processor = processor
        uses_peft = peft_config is not None or is_peft_model(model)

        # The reference log-probs build-preferences stored with the pairs, when they are this run's reference's.
        use_stored = self._decide_stored_reference(
            args, model, ref_model, processor, train_dataset, preference_build_info, uses_peft, peft_config is not None
        )
        self._stored_reference = use_stored
        if use_stored:
            ref_model = None  # not needed: every reference log-prob the trainer reads comes from the dataset
        else:  # TRL's precompute would add the columns again; the frozen/PEFT reference must not read stale ones
            train_dataset = _without_reference_columns(train_dataset)
            eval_dataset = _without_reference_columns(eval_dataset)
        precompute = bool(args.precompute_ref_log_probs) or use_stored

        # TRL would reload `config._name_or_path` as a causal LM for the reference (and does so under
        # FSDP even with precomputed log-probs); hand it a frozen copy of the initial policy instead.
        if ref_model is None and not uses_peft and (not precompute or _fsdp_requested(args)):
            ref_model = unpatched_copy(model)
        if ref_model is not None:
            ref_model.requires_grad_(False)
            ref_model.eval()
        self.reference_log_probs_source = (
            "dataset" if use_stored else "precompute" if precompute else "peft-base" if ref_model is None else "model"
        )

        if precompute and args.world_size > 1:
            for name, ds in (("train_dataset", train_dataset), ("eval_dataset", eval_dataset)):
                for part in (ds.values() if isinstance(ds, dict) else [ds]):
                    if part is None or (use_stored and has_reference_columns(part)):
                        continue  # nothing for TRL to precompute there
                    if not getattr(part, "cache_files", None):
                        raise ValueError(
                            f"precompute_ref_log_probs with {args.world_size} processes needs the {name} on disk (TRL "
                            "caches the reference log-probs next to it, and every process must find the same file): "
                            "save it with save_to_disk and load it with load_from_disk"
                        )

        # With the stored log-probs TRL runs its precomputed-reference path (no reference model; the loss
        # reads them from the batch) while `_precompute_ref_logps` below keeps the dataset's columns.
        configured = args.precompute_ref_log_probs
        args.precompute_ref_log_probs = precompute
        try:
            super().__init__(
                model=model,
                ref_model=ref_model,
                args=args,
                data_collator=data_collator,
                train_dataset=train_dataset,
                eval_dataset=eval_dataset,
                processing_class=processing_class,
                callbacks=callbacks,
                optimizers=optimizers,
                peft_config=peft_config,
            )
        finally:
            args.precompute_ref_log_probs = configured

    # ------------------------------------------------------------------ stored reference log-probs
    def _decide_stored_reference(self, args, model, ref_model, processor, train_dataset, build_info, uses_peft,
                                 peft_from_config) -> bool:
        """Whether the dataset's stored reference log-probs are this run's (see the module docstring);
        logs the path taken, raises when ``reference_log_probs_from_dataset`` is "true" and they are not."""
        mode = _stored_mode(args)
        self.reference_log_probs_mismatches: list[str] = []
        if mode == "false":
            if has_reference_columns(train_dataset):
                logger.info("reference log-probs: the dataset's stored ones are ignored (reference_log_probs_from_dataset "
                            "false); %s", _fallback_path(args, ref_model, uses_peft))
            return False
        if not has_reference_columns(train_dataset):
            why = ["the train dataset has no ref_chosen_logps / ref_rejected_logps columns (build-preferences writes them "
                   "when it rejects with a reference policy)"]
        else:
            why = self._stored_reference_mismatches(args, model, ref_model, processor, train_dataset, build_info,
                                                    uses_peft, peft_from_config)
        self.reference_log_probs_mismatches = why
        if why and mode == "true":
            raise ValueError("reference_log_probs_from_dataset is true, but the dataset's stored reference log-probs are "
                             "not this run's reference's: " + "; ".join(why))
        if why:
            log = logger.warning if has_reference_columns(train_dataset) else logger.info
            log("reference log-probs: not the dataset's stored ones (%s); %s", "; ".join(why),
                _fallback_path(args, ref_model, uses_peft))
            return False
        logger.info(
            "reference log-probs: the ones stored with the pairs (%d train pairs; the same checkpoint, processor settings "
            "and precision scored them): no precompute pass and no reference model in memory", len(train_dataset)
            if hasattr(train_dataset, "__len__") else -1,
        )
        return True

    def _stored_reference_mismatches(self, args, model, ref_model, processor, train_dataset, build_info, uses_peft,
                                     peft_from_config) -> list[str]:
        if getattr(args, "sync_ref_model", False):
            return ["sync_ref_model moves the reference during training"]
        if _fsdp_requested(args):
            return ["FSDP is not supported with stored reference log-probs"]
        if uses_peft and not peft_from_config:
            return ["the policy is already a PeftModel: pass the plain policy and peft_config, so its initial weights "
                    "(the LoRA reference) can be compared"]
        if build_info is None:
            from webshop_trl.trainers.dpo_data import find_build_info

            build_info = find_build_info(train_dataset)
        if build_info is None:
            return ["no build_info.json of the pairs was found (it says which reference scored them); pass "
                    "preference_build_info or load the dataset from its build-preferences folder"]
        reference = ref_model if ref_model is not None else model
        precision = precision_name(
            bf16=bool(args.bf16) or bool(getattr(reference.config, "bf16", False)), fp16=bool(getattr(args, "fp16", False))
        )
        return reference_mismatches(build_info.get("reference_log_probs"), reference, processor, precision)

    def _precompute_ref_logps(self, dataset, name, batch_size):
        """TRL's precompute pass, skipped for a dataset that carries the stored log-probs this run uses."""
        if getattr(self, "_stored_reference", False) and has_reference_columns(dataset):
            return dataset
        return super()._precompute_ref_logps(dataset, name, batch_size)

    # ------------------------------------------------------------------ data
    def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
        """Check the preference columns (the collator tokenises each batch); nothing is written."""
        return check_preference_dataset(dataset, dataset_name)

    def _set_signature_columns_if_needed(self):
        if self._signature_columns is None:
            self._signature_columns = list(COLLATOR_COLUMNS)

    # ------------------------------------------------------------------ log-probs
    def _model_inputs(self, inputs: dict[str, Any]) -> dict[str, Any]:
        kwargs = {k: v for k, v in inputs.items() if k not in _NON_MODEL_KEYS}
        if self.args.bf16:
            kwargs["bf16"] = True  # the policy's own bf16 path (autocast + its CPU attention choice)
        return kwargs

    @staticmethod
    def _pair_log_probs(log_probs: torch.Tensor, inputs: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """log pi(chosen|s), log pi(rejected|s) [B] from the [B, Kmax] log-softmax over candidates."""
        log_probs = log_probs.float()
        chosen = log_probs.gather(1, inputs["chosen_index"].to(log_probs.device)[:, None]).squeeze(1)
        rejected = log_probs.gather(1, inputs["rejected_index"].to(log_probs.device)[:, None]).squeeze(1)
        return chosen, rejected

    def _no_checkpointing(self):
        """TRL's `disable_gradient_checkpointing` for the no-grad reference pass, when checkpointing is on."""
        if self.args.gradient_checkpointing:
            return disable_gradient_checkpointing(self.model, self.args.gradient_checkpointing_kwargs)
        return contextlib.nullcontext()

    def _reference_context(self):
        """With PEFT and no reference model: the adapter off (or TRL's frozen "ref" adapter on)."""
        if self.ref_model is None and is_peft_model(self.model):
            unwrapped = self.accelerator.unwrap_model(self.model)
            return use_adapter(unwrapped, adapter_name="ref" if "ref" in unwrapped.peft_config else None)
        return contextlib.nullcontext()

    def compute_ref_log_probs(self, model, inputs):
        """Reference log-probs (chosen, rejected) [B] of one batch under ``model`` (what TRL's
        precompute passes: the reference model, or the initial policy / its PEFT base)."""
        with (
            torch.no_grad(),
            self._no_checkpointing(),
            self._reference_context(),
            self.accelerator.autocast(),
        ):
            outputs = model(**self._model_inputs(inputs))
        return self._pair_log_probs(outputs.log_probs, inputs)

    def _reference_log_probs(self, inputs) -> tuple[torch.Tensor, torch.Tensor]:
        if self.precompute_ref_logps:
            missing = [k for k in REF_COLUMNS if k not in inputs]
            if missing:
                raise ValueError(f"precompute_ref_log_probs is on but the batch has no {missing}")
            return inputs["ref_chosen_logps"].float(), inputs["ref_rejected_logps"].float()
        with torch.no_grad(), self._no_checkpointing():
            if self.ref_model is None:  # PEFT: the base model, the adapter disabled
                with self._reference_context():
                    outputs = self.model(**self._model_inputs(inputs))
            else:
                outputs = self.ref_model(**self._model_inputs(inputs))
        return self._pair_log_probs(outputs.log_probs, inputs)

    # ------------------------------------------------------------------ loss
    def compute_loss(self, model, inputs, return_outputs: bool = False, num_items_in_batch=None):
        mode = "train" if self.model.training else "eval"
        outputs = model(**self._model_inputs(inputs))
        chosen_logps, rejected_logps = self._pair_log_probs(outputs.log_probs, inputs)
        ref_chosen_logps, ref_rejected_logps = self._reference_log_probs(inputs)
        ref_chosen_logps = ref_chosen_logps.to(chosen_logps.device)
        ref_rejected_logps = ref_rejected_logps.to(rejected_logps.device)
        chosen_logratios = chosen_logps - ref_chosen_logps
        rejected_logratios = rejected_logps - ref_rejected_logps
        loss = dpo_loss(
            chosen_logratios, rejected_logratios, self.loss_types, self.beta, self.label_smoothing, self.loss_weights,
            chosen_logps=chosen_logps,
        )
        self._record_metrics(mode, outputs, inputs, chosen_logps, rejected_logps, chosen_logratios, rejected_logratios)
        return (loss, outputs) if return_outputs else loss

    @torch.no_grad()
    def _record_metrics(self, mode, outputs, inputs, chosen_logps, rejected_logps, chosen_logratios, rejected_logratios):
        """TRL's DPO metrics (rewards/*, logps/*) plus choice accuracy, entropy and candidate count."""
        chosen_rewards = self.beta * chosen_logratios.detach()
        rejected_rewards = self.beta * rejected_logratios.detach()
        log_probs = outputs.log_probs.detach().float()
        mask = outputs.candidate_mask
        entropy = -torch.where(mask, log_probs.exp() * log_probs, torch.zeros_like(log_probs)).sum(-1)
        top1 = log_probs.argmax(-1) == inputs["chosen_index"].to(log_probs.device)
        per_pair = torch.stack(
            [
                chosen_rewards,
                rejected_rewards,
                (chosen_rewards > rejected_rewards).float(),
                chosen_rewards - rejected_rewards,
                chosen_logps.detach(),
                rejected_logps.detach(),
                top1.float(),
                entropy,
                mask.sum(-1).float(),
            ],
            dim=1,
        )  # [B, 9]
        # eval: gather_for_metrics drops the samples repeated to even out the last batch
        gathered = self.accelerator.gather_for_metrics(per_pair) if mode == "eval" else self.accelerator.gather(per_pair)
        names = (
            "rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins", "logps/chosen",
            "logps/rejected", "choice_accuracy", "entropy", "num_candidates",
        )
        for name, value in zip(names, gathered.mean(0).tolist()):
            self._metrics[mode][name].append(value)

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        """Loss only (the metrics go to ``self._metrics["eval"]``); there are no labels to predict."""
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad(), self.compute_loss_context_manager():
            loss = self.compute_loss(model, inputs)
        return loss.detach(), None, None

    # ------------------------------------------------------------------ model card
    # What the entry script knows (datasets and their sizes, base checkpoint, recipe, final
    # metrics) for the card; see webshop_trl.trainers.model_card.
    model_card_data: dict | None = None

    def create_model_card(self, model_name: str | None = None, **kwargs) -> None:
        """Write our model card (README.md) into ``output_dir``; Trainer.push_to_hub uploads it, and TRL's
        DPOTrainer calls this at every checkpoint too."""
        from webshop_trl.trainers.model_card import write_trainer_model_card

        write_trainer_model_card(self, "dpo", model_name)


def _find_processor(policy, processing_class) -> ActionScoringProcessor:
    if isinstance(processing_class, ActionScoringProcessor):
        return processing_class
    processor = getattr(policy, "processor", None)
    if processor is None:
        raise ValueError(
            "ActionDPOTrainer needs the policy's ActionScoringProcessor: load the policy with "
            "ActionScorerModel.from_pretrained (it attaches the saved one) or pass processing_class=processor"
        )
    if processing_class is not None and processing_class is not processor.tokenizer:
        raise ValueError("processing_class is not the tokenizer of the policy's processor; pass the processor itself")
    return processor


def unpatched_copy(model):
    """A deep copy of ``model`` without instance-level ``forward`` patches (TRL's `add_fused_lm_head`).

    TRL's patch keeps the original bound ``forward`` in a closure, so a plain deep copy of a model a
    trainer has seen would still run the *original* module's weights; dropping the instance
    attribute restores the class's forward on the copy.
    """
    clone = copy.deepcopy(model)
    for module in clone.modules():
        module.__dict__.pop("forward", None)
    return clone


def _stored_mode(args) -> str:
    value = getattr(args, "reference_log_probs_from_dataset", "auto")
    value = {True: "true", False: "false"}.get(value, value) if isinstance(value, bool) else str(value).lower()
    if value not in ("auto", "true", "false"):
        raise ValueError(f"reference_log_probs_from_dataset must be 'auto', 'true' or 'false', got {value!r}")
    return value


def _fallback_path(args, ref_model, uses_peft) -> str:
    if args.precompute_ref_log_probs:
        return "TRL's precompute pass computes them before training"
    if ref_model is not None:
        return "the given reference model computes them at each step"
    if uses_peft:
        return "the base model with the adapter off computes them at each step"
    return "a frozen copy of the initial policy computes them at each step"


def _without_reference_columns(dataset):
    """``dataset`` (or each dataset of a dict) without the ``ref_*`` columns."""
    if dataset is None:
        return None
    if isinstance(dataset, dict):
        return type(dataset)({k: _without_reference_columns(v) for k, v in dataset.items()})
    names = getattr(dataset, "column_names", None) or []
    drop = [c for c in REF_COLUMNS if c in names]
    return dataset.remove_columns(drop) if drop else dataset


def _fsdp_requested(args) -> bool:
    return bool(getattr(args, "fsdp", None)) or os.environ.get("ACCELERATE_USE_FSDP", "false").lower() in ("1", "true")


__all__ = ["ActionDPOTrainer", "unpatched_copy"]
