"""The BERT action-scoring policy: `ActionScorerModel`, its config and its processor.

Importing this package registers the model with the transformers Auto classes, so a saved folder
loads with ``AutoConfig.from_pretrained`` / ``AutoModel.from_pretrained``.
"""

from transformers import AutoConfig, AutoModel

from webshop_trl.policy.configuration_action_scorer import MINILM_L6_ENCODER_CONFIG, ActionScorerConfig
from webshop_trl.policy.encoding_cache import CacheStats, EncodingCache
from webshop_trl.policy.hub import DEFAULT_ENCODER, resolve_encoder_name_or_path
from webshop_trl.policy.modeling_action_scorer import (
    ActionObservationAttention,
    ActionScorerModel,
    ActionScorerOutput,
    ActionScorerPreTrainedModel,
    ActOutput,
)
from webshop_trl.policy.processing_action_scorer import (
    IGNORE_INDEX,
    WEBSHOP_SPECIAL_TOKENS,
    ActionScoringProcessor,
    preprocess_text,
    split_instruction,
)

AutoConfig.register(ActionScorerConfig.model_type, ActionScorerConfig, exist_ok=True)
AutoModel.register(ActionScorerConfig, ActionScorerModel, exist_ok=True)

__all__ = [
    "ActionObservationAttention",
    "ActionScorerConfig",
    "ActionScorerModel",
    "ActionScorerOutput",
    "ActionScorerPreTrainedModel",
    "ActionScoringProcessor",
    "ActOutput",
    "CacheStats",
    "DEFAULT_ENCODER",
    "EncodingCache",
    "IGNORE_INDEX",
    "MINILM_L6_ENCODER_CONFIG",
    "WEBSHOP_SPECIAL_TOKENS",
    "preprocess_text",
    "resolve_encoder_name_or_path",
    "split_instruction",
]
