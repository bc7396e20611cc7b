"""The WebShop reward, computed exactly as WebShop computes it (WEBSHOP_SPEC §4).

    from webshop_trl.reward import get_reward
    breakdown = get_reward(product, goal, price, {"size": "x-large"})
    breakdown.total, breakdown.to_dict()
"""

from webshop_trl.reward.errors import RewardInputError, SpacyModelMissingError
from webshop_trl.reward.fuzzy import FUZZY_MATCH_THRESHOLD, is_fuzzy_match, token_set_score
from webshop_trl.reward.normalize import COLOR_WORDS, normalize_color, normalize_color_pair
from webshop_trl.reward.nouns import NounExtractor, get_noun_extractor, title_nouns
from webshop_trl.reward.reward import DEFAULT_REWARD_CONFIG, RewardBreakdown, RewardConfig, get_reward

__all__ = [
    "get_reward",
    "RewardBreakdown",
    "RewardConfig",
    "DEFAULT_REWARD_CONFIG",
    "RewardInputError",
    "SpacyModelMissingError",
    "normalize_color",
    "normalize_color_pair",
    "COLOR_WORDS",
    "token_set_score",
    "is_fuzzy_match",
    "FUZZY_MATCH_THRESHOLD",
    "NounExtractor",
    "get_noun_extractor",
    "title_nouns",
]
