"""Build the policy a trainer starts from: a fresh `ActionScorerModel` on a BERT encoder, or a
saved checkpoint, with the processor settings of the run and optional frozen layers."""

from __future__ import annotations

from typing import Any

from torch import nn

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


def _encoder_layers(encoder: nn.Module) -> nn.ModuleList:
    for path in ("encoder.layer", "transformer.layer", "layers", "encoder.layers"):
        module: Any = encoder
        for part in path.split("."):
            module = getattr(module, part, None)
            if module is None:
                break
        if isinstance(module, nn.ModuleList):
            return module
    raise ValueError(f"cannot find the layers of {type(encoder).__name__} to freeze")


def freeze_encoder(model: ActionScorerModel, num_layers: int = 0, embeddings: bool = False) -> int:
    """Stop training the encoder's embeddings (if ``embeddings``) and its first ``num_layers``
    layers; returns the number of frozen parameters. With the embeddings frozen too, the backward
    pass stops at the first trained layer (with trainable embeddings it still runs through the
    frozen layers to reach them)."""
    encoder = model.text_encoder
    modules: list[nn.Module] = []
    if embeddings:
        modules.append(getattr(encoder, "embeddings", None) or encoder.get_input_embeddings())
    if num_layers:
        layers = _encoder_layers(encoder)
        if num_layers > len(layers):
            raise ValueError(f"freeze_encoder_layers={num_layers} but the encoder has {len(layers)} layers")
        modules.extend(layers[:num_layers])
    frozen = 0
    for module in modules:
        for p in module.parameters():
            if p.requires_grad:
                p.requires_grad_(False)
                frozen += p.numel()
    return frozen


__all__ = ["freeze_encoder", "load_policy"]
