"""The tiny random policy the tests share: a BERT `ActionScorerModel` (hidden 32) on a small vocabulary.

One vocabulary (the union of the words the policy, agent, PPO, DPO, preference and self-generated
tests feed it) and one builder; the tests pass what differs (layers, dropout, value head, lengths).
"""

from __future__ import annotations

import torch
from transformers import BertTokenizer

from webshop_trl.policy import ActionScorerConfig, ActionScorerModel, ActionScoringProcessor

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = (
    "webshop instruction search back to next prev page results total item click buy now description features "
    "reviews button clicked price size color find me i a need want looking for with and lower than dollars "
    "shirt shirts men mens women womens shoes dress red blue green black white small large medium pack of "
    "running cotton leather 50 00"
).split()
CHARACTERS = list("[]<>:$.,_-()0123456789")


def tiny_tokenizer() -> BertTokenizer:
    # transformers 5: BertTokenizer(vocab_file=...) silently built a 5-token vocab; vocab=dict works
    return BertTokenizer(vocab={tok: i for i, tok in enumerate(dict.fromkeys(SPECIALS + WORDS + CHARACTERS))})


def tiny_encoder_config(vocab_size: int, num_hidden_layers: int = 1, dropout: float = 0.0) -> dict:
    return dict(
        model_type="bert", vocab_size=vocab_size, hidden_size=32, num_hidden_layers=num_hidden_layers,
        num_attention_heads=2, intermediate_size=64, max_position_embeddings=128,
        hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout,
    )


def tiny_policy(
    seed: int = 0,
    *,
    num_hidden_layers: int = 1,
    dropout: float = 0.0,
    max_observation_length: int = 96,
    max_instruction_length: int = 24,
    max_action_length: int = 16,
    train: bool = False,
    **config_overrides,
) -> ActionScorerModel:
    """A seeded random policy with its processor attached; config_overrides go to ActionScorerConfig."""
    torch.manual_seed(seed)
    tokenizer = tiny_tokenizer()
    encoder = tiny_encoder_config(len(tokenizer), num_hidden_layers=num_hidden_layers, dropout=dropout)
    config = ActionScorerConfig(encoder_name_or_path="tiny-random", text_encoder=encoder, **config_overrides)
    model = ActionScorerModel(config)
    model.attach_processor(
        ActionScoringProcessor(
            tokenizer, max_observation_length=max_observation_length,
            max_instruction_length=max_instruction_length, max_action_length=max_action_length,
        )
    )
    return model.train(train)


def save_tiny_policy(path, seed: int = 0, **kwargs):
    tiny_policy(seed, **kwargs).save_pretrained(path)
    return path
