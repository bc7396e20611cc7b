"""Read and check the fields the reward needs from a product and a goal.

The reward accepts our `Product` / `Goal` dataclasses, any object with the same attribute names,
or plain mappings: either our snake-case keys or WebShop's own product keys ("Title",
"BulletPoints", "Description", "Attributes"), so a WebShop product dict or a reference case's goal
dict can be scored as is. Checking here, once, lets the matchers assume clean types and lets a
caller see *which* field is wrong instead of a TypeError deep inside rapidfuzz or spaCy.

Defined results for gaps WebShop would crash on: a text field that is None reads as "", a list
field that is None reads as empty, a single bullet-point string is wrapped in a list (WebShop's
own load-time rule).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from webshop_trl.reward.errors import RewardInputError

_MISSING = object()


@dataclass(frozen=True, slots=True)
class PurchasedItem:
    """The purchased product's fields that the reward reads."""

    title: str
    name: str
    bullet_points: tuple[str, ...]
    description: str
    attributes: tuple[str, ...]
    query: str
    product_category: str


@dataclass(frozen=True, slots=True)
class GoalSpec:
    """The goal's fields that the reward reads. ``goal_options`` keeps its shape: a dict
    (synthetic goals, name -> value) or a tuple of values (human goals)."""

    attributes: tuple[str, ...]
    goal_options: dict[str, str] | tuple[str, ...]
    price_upper: float
    query: str
    product_category: str
    name: str


def _lookup(obj: Any, what: str, *keys: str, default: Any = _MISSING) -> Any:
    """The first of ``keys`` present on ``obj`` (as a mapping key or an attribute)."""
    for key in keys:
        if isinstance(obj, Mapping):
            if key in obj:
                return obj[key]
        else:
            value = getattr(obj, key, _MISSING)
            if value is not _MISSING:
                return value
    if default is not _MISSING:
        return default
    names = " / ".join(repr(k) for k in keys)
    raise RewardInputError(f"{what} has no field {names} ({type(obj).__name__}); the reward needs it")


def _text(value: Any, what: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise RewardInputError(f"{what} must be a str, got {type(value).__name__}: {value!r:.80}")
    return value


def _texts(value: Any, what: str, wrap_str: bool = False) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        if wrap_str:
            return (value,)
        raise RewardInputError(f"{what} must be a list of str, got the single str {value!r:.80}")
    if not isinstance(value, Sequence) and not isinstance(value, (set, frozenset)):
        raise RewardInputError(f"{what} must be a list of str, got {type(value).__name__}")
    items = tuple(value)
    for item in items:
        if not isinstance(item, str):
            raise RewardInputError(f"{what} must hold only str, found {type(item).__name__}: {item!r:.80}")
    return items


def read_product(product: Any) -> PurchasedItem:
    """Check and read the purchased product (a `Product`, a similar object, or a WebShop dict)."""
    if product is None:
        raise RewardInputError("no purchased product given (got None)")
    title = _text(_lookup(product, "product", "title", "Title"), "product title")
    name = _text(_lookup(product, "product", "name", default=title), "product name")
    return PurchasedItem(
        title=title,
        name=name,
        bullet_points=_texts(
            _lookup(product, "product", "bullet_points", "BulletPoints", default=None),
            "product bullet_points",
            wrap_str=True,
        ),
        description=_text(_lookup(product, "product", "description", "Description", default=None), "product description"),
        attributes=_texts(_lookup(product, "product", "attributes", "Attributes"), "product attributes"),
        query=_text(_lookup(product, "product", "query"), "product query"),
        product_category=_text(_lookup(product, "product", "product_category"), "product product_category"),
    )


def _goal_options(value: Any) -> dict[str, str] | tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, Mapping):
        for key, val in value.items():
            if not isinstance(key, str) or not isinstance(val, str):
                raise RewardInputError(
                    f"goal goal_options must map str option names to str values, got {key!r:.40}: {val!r:.40}"
                )
        return dict(value)
    return _texts(value, "goal goal_options")


def _price_upper(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RewardInputError(f"goal price_upper must be a number, got {type(value).__name__}: {value!r:.40}")
    value = float(value)
    if math.isnan(value) or value <= 0:
        # WebShop's r_price is None for price_upper <= 0 and its total then fails; we refuse early.
        raise RewardInputError(f"goal price_upper must be > 0, got {value!r}")
    return value


def read_goal(goal: Any) -> GoalSpec:
    """Check and read the goal (a `Goal`, a similar object, or a goal dict)."""
    if goal is None:
        raise RewardInputError("no goal given (got None)")
    return GoalSpec(
        attributes=_texts(_lookup(goal, "goal", "attributes"), "goal attributes"),
        goal_options=_goal_options(_lookup(goal, "goal", "goal_options", default=None)),
        price_upper=_price_upper(_lookup(goal, "goal", "price_upper")),
        query=_text(_lookup(goal, "goal", "query"), "goal query"),
        product_category=_text(_lookup(goal, "goal", "product_category"), "goal product_category"),
        name=_text(_lookup(goal, "goal", "name"), "goal name"),
    )


def read_price(price: Any) -> float:
    """The purchase price: a real number (NaN is refused: it would silently fail the price test)."""
    if isinstance(price, bool) or not isinstance(price, (int, float)) or math.isnan(price):
        raise RewardInputError(f"price must be a number, got {type(price).__name__}: {price!r:.40}")
    return float(price)


def read_selected_options(options: Any) -> tuple[str, ...]:
    """The purchased option values, in selection order (WebShop compares values, not names)."""
    if options is None:
        return ()
    if not isinstance(options, Mapping):
        raise RewardInputError(
            f"selected options must be a mapping of option name -> value, got {type(options).__name__}"
        )
    values = tuple(options.values())
    for name, value in options.items():
        if not isinstance(value, str):
            raise RewardInputError(
                f"selected option {name!r} must have a str value, got {type(value).__name__}: {value!r:.40}"
            )
    return values
