"""Build the policy a trainer starts from: a fresh `ActionScorerModel` on a BERT encoder, or a
saved checkpoint, with the processor settings of the run and optional frozen layers."""

from __future__ import annotations

from typing import Any


from webshop_trl.policy import ActionScorerModel, ActionScoringProcessor


def load_policy(model_args, processor_overrides: dict[str, Any] | None = None) -> ActionScorerModel:
    """The policy described by ``model_args`` (an `ILModelArguments`), in train-ready form.

    ``processor_overrides`` (e.g. ``ILConfig.processor_overrides()``) replace the processor's
    max lengths / truncation side; unset ones keep the checkpoint's (or the processor defaults).
    """
    overrides = dict(processor_overrides or {})
    encoder_kwargs: dict[str, Any] = {}
    if model_args.model_revision:
        encoder_kwargs["revision"] = model_args.model_revision
    if model_args.attn_implementation:
        encoder_kwargs["attn_implementation"] = model_args.attn_implementation
    config_kwargs: dict[str, Any] = {"use_value_head": bool(model_args.use_value_head)}
    if model_args.encoder_dropout is not None:
        config_kwargs["encoder_dropout"] = float(model_args.encoder_dropout)
    if model_args.head_dropout is not None:
        config_kwargs["head_dropout"] = float(model_args.head_dropout)

    if model_args.model_name_or_path:
        model = ActionScorerModel.from_pretrained(model_args.model_name_or_path, **encoder_kwargs, **config_kwargs)
        processor = model.processor
        if processor is None:
            raise ValueError(f"{model_args.model_name_or_path} has no saved processor (tokenizer files)")
        if overrides:
            processor = ActionScoringProcessor.from_pretrained(model_args.model_name_or_path, **overrides)
        model.attach_processor(processor)
    else:
        model = ActionScorerModel.from_bert(
            model_args.encoder_name_or_path,
            add_webshop_tokens=bool(model_args.add_webshop_tokens),
            processor_kwargs=overrides,
            encoder_kwargs=encoder_kwargs,
            **config_kwargs,
        )
    freeze_encoder(model, int(model_args.freeze_encoder_layers), bool(model_args.freeze_embeddings))
    return model.train()


def freeze_encoder(model: ActionScorerModel, num_layers: int = 0, embeddings: bool = False) -> int:
    """Stop training the encoder's embeddings (if ``embeddings``) and its first ``num_layers``
    layers; returns the number of frozen parameters. With the embeddings frozen too, the backward
    pass stops at the first trained layer (with trainable embeddings it still runs through the
    frozen layers to reach them)."""
    return model.freeze_encoder_layers(num_layers, embeddings=embeddings)


__all__ = ["freeze_encoder", "load_policy"]
