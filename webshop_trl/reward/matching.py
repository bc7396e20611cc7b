"""The four matches behind the WebShop reward: attributes, options, price and type (WEBSHOP_SPEC §4.2-4.5).

Each function takes plain, already checked values (see `inputs`) and returns counts or flags;
`reward.get_reward` combines them. They are public so an environment or an analysis can ask
"why did this purchase lose reward?" one part at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from webshop_trl.reward.fuzzy import is_fuzzy_match
from webshop_trl.reward.normalize import normalize_color, normalize_color_pair

CATEGORY_SEPARATOR = "›"  # WebShop's breadcrumb separator in product_category
MIN_SHARED_CATEGORIES = 2
NO_GOAL_NOUNS_TITLE_SCORE = 0.2  # title_score when the goal title has no nouns
# r_type rules, applied in this order (each later rule overrides the earlier ones)
WEAK_TYPE_TITLE_SCORE = 0.2  # no query/category match and title_score <= this -> 0.5
WEAK_TYPE_REWARD = 0.5
POOR_TITLE_SCORE = 0.1  # title_score < this -> 0.1
POOR_TITLE_REWARD = 0.1
NO_TITLE_REWARD = 0.0  # title_score == 0 -> 0


# ---- attributes (§4.2) -----------------------------------------------------------------------


def count_attribute_matches(
    goal_attributes: Sequence[str],
    product_attributes: Sequence[str],
    title: str,
    bullet_points: Sequence[str],
    description: str,
) -> int:
    """How many goal attributes the product has; each goal attribute counts at most once.

    A goal attribute matches a hidden product attribute with a fuzzy score > 85, or, failing
    that, if it occurs verbatim (substring, goal attribute not lowercased) in the lowercased
    title, the lowercased space-joined bullet points or the lowercased description.
    """
    texts: tuple[str, str, str] | None = None  # lowercased lazily: most attributes match fuzzily
    matches = 0
    for wanted in goal_attributes:
        if any(is_fuzzy_match(have, wanted) for have in product_attributes):
            matches += 1
            continue
        if texts is None:
            texts = (title.lower(), " ".join(bullet_points).lower(), description.lower())
        if any(wanted in text for text in texts):
            matches += 1
    return matches


# ---- options (§4.3) --------------------------------------------------------------------------


def goal_option_targets(goal_options: Mapping[str, str] | Sequence[str], faithful_quirks: bool = True) -> list[str]:
    """The strings the purchased options are matched against, one per goal option.

    * Human goals (a list of values): each value, colour-normalised (substring test).
    * Synthetic goals (a name -> value dict):
      - ``faithful_quirks=True`` (WebShop): each option is the pair ``(name, value)``. The pair
        becomes a colour word only if a colour word *equals* its name or value; otherwise the
        matcher scores the pair's printed form, e.g. "('size', 'x-large')", so the option name's
        tokens take part in the fuzzy score.
      - ``faithful_quirks=False`` (corrected): each value, colour-normalised exactly like a
        purchased value, so "peppermint cookie" vs "peppermint cookie" compare as "mint" vs
        "mint" and match (WebShop compares "mint" with "('flavor name', 'peppermint cookie')"
        and misses). The substring normalisation itself is kept, so "bright aqua blue" still
        becomes "aqua"; on the 1,000 synthetic reference cases 97 totals change.

    The shape decides, not ``Goal.kind``: a dict gets the synthetic-goal treatment.
    """
    if isinstance(goal_options, Mapping):
        if faithful_quirks:
            return [str(normalize_color_pair(name, value)) for name, value in goal_options.items()]
        return [normalize_color(value) for value in goal_options.values()]
    return [normalize_color(value) for value in goal_options]


def count_option_matches(targets: Iterable[str], purchased_values: Sequence[str]) -> int:
    """How many goal options (as `goal_option_targets`) a purchased value matches (score > 85).

    Purchased values are colour-normalised first; each goal option counts at most once, and
    one purchased value may satisfy several goal options (WebShop does not consume it).
    """
    purchased = [normalize_color(value) for value in purchased_values]
    return sum(1 for target in targets if any(is_fuzzy_match(have, target) for have in purchased))


# ---- price (§4.4) ----------------------------------------------------------------------------


def price_match(price: float, price_upper: float) -> bool:
    """The purchase is within budget: price <= the goal's upper bound (equality passes)."""
    return price <= price_upper


# ---- type (§4.5) -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TypeMatch:
    """The three signals of "is this the right kind of product" and the r_type they give."""

    query_match: bool
    category_match: bool
    title_score: float
    r_type: float


def category_path(product_category: str) -> set[str]:
    """The breadcrumb's levels as a set of stripped names ("A › B › C" -> {"A", "B", "C"})."""
    return {level.strip() for level in product_category.split(CATEGORY_SEPARATOR)}


def categories_match(purchased_category: str, goal_category: str) -> bool:
    """At least two breadcrumb levels in common, in any order (an empty breadcrumb is one level "")."""
    return len(category_path(purchased_category) & category_path(goal_category)) >= MIN_SHARED_CATEGORIES


def title_score(purchased_nouns: Sequence[str], goal_nouns: Sequence[str]) -> float:
    """Distinct shared nouns / goal noun tokens (duplicates counted); 0.2 if the goal has none."""
    if not goal_nouns:
        return NO_GOAL_NOUNS_TITLE_SCORE
    return len(set(purchased_nouns) & set(goal_nouns)) / len(goal_nouns)


def type_reward(query_match: bool, category_match: bool, score: float) -> float:
    """r_type from WebShop's rules, in order; the title rules override query/category matches."""
    r_type = 1.0
    if not query_match and not category_match and score <= WEAK_TYPE_TITLE_SCORE:
        r_type = WEAK_TYPE_REWARD
    if score < POOR_TITLE_SCORE:
        r_type = POOR_TITLE_REWARD
    if score == 0.0:
        r_type = NO_TITLE_REWARD
    return r_type


def match_type(
    purchased_query: str,
    goal_query: str,
    purchased_category: str,
    goal_category: str,
    purchased_name: str,
    goal_name: str,
    nouns: Callable[[str], Sequence[str]],
) -> TypeMatch:
    """All type signals for one purchase; ``nouns`` maps a title to its noun tokens."""
    query_ok = purchased_query == goal_query
    category_ok = categories_match(purchased_category, goal_category)
    score = title_score(nouns(purchased_name), nouns(goal_name))
    return TypeMatch(query_ok, category_ok, score, type_reward(query_ok, category_ok, score))
