"""WebShop goals (WEBSHOP_SPEC §2): synthetic and human goals, price bounds, order and splits.

Two differences from WebShop, both for reproducibility:
- every random draw (a product's reward price inside a range, a goal's price upper bound) comes
  from a seed, so goal index i carries the same text on every run and machine;
- besides WebShop's split by goal index, a split by product keeps every product in one split,
  because synthetic goals of one product differ only in their options.
"""

from __future__ import annotations

import itertools
import operator
import random
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Literal, Sequence

from webshop_trl.data.catalog import Catalog, Product
from webshop_trl.errors import UnknownGoalError

GOAL_SHUFFLE_SEED = 233  # WebShop: random.seed(233); random.shuffle(goals)
PRICE_GRID = tuple(range(10, 1000, 10))
NO_PRICE_LIMIT = 1_000_000.0

# WebShop's hard-coded split by goal index (baseline_models/env.py)
INDEX_SPLITS: dict[str, tuple[int, int | None]] = {
    "test": (0, 500),
    "eval": (500, 1500),
    "train": (1500, None),
}
SPLIT_NAMES = ("test", "eval", "train")
GoalKind = Literal["synthetic", "human"]
SplitMode = Literal["index", "product"]


@dataclass(slots=True)
class Goal:
    """One shopping goal. ``goal_options`` is a name->value dict for synthetic goals (as in
    WebShop) and a list of value strings for human goals."""

    index: int
    kind: GoalKind
    asin: str
    instruction_text: str
    attributes: list[str]
    goal_options: dict[str, str] | list[str]
    price_upper: float
    query: str
    category: str
    product_category: str
    name: str
    weight: float = 1.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def option_values(self) -> list[str]:
        if isinstance(self.goal_options, dict):
            return list(self.goal_options.values())
        return list(self.goal_options)

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "kind": self.kind,
            "asin": self.asin,
            "instruction_text": self.instruction_text,
            "attributes": list(self.attributes),
            "goal_options": dict(self.goal_options) if isinstance(self.goal_options, dict) else list(self.goal_options),
            "price_upper": self.price_upper,
            "query": self.query,
            "category": self.category,
            "product_category": self.product_category,
            "name": self.name,
            "weight": self.weight,
        }


def price_upper_bound(price: float, rng: random.Random) -> float:
    """Pick the bound from the 2nd-4th grid step above the price (spec §2.3), from a seeded rng."""
    above = [g for g in PRICE_GRID if g > price][:4]
    if len(above) < 2:
        return NO_PRICE_LIMIT
    return float(max(rng.sample(above, 2)))


def price_clause(price_upper: float) -> str:
    if price_upper >= NO_PRICE_LIMIT:
        return ""
    return f", and price lower than {price_upper:.2f} dollars"


def _goal_rng(seed: int, kind: str, asin: str, k: int) -> random.Random:
    return random.Random(f"{seed}:{kind}:{asin}:{k}")


def _goal_fields(product: Product) -> dict[str, str]:
    return {
        "asin": product.asin,
        "query": product.query,
        "category": product.category,
        "product_category": product.product_category,
        "name": product.title,
    }


def synthetic_goals(catalog: Catalog, seed: int = 0) -> list[Goal]:
    """One goal per option combination of every product with a synthetic instruction."""
    goals: list[Goal] = []
    for product in catalog.products:
        if product.instruction_text is None:
            continue
        names = sorted(product.options)
        combos = itertools.product(*(product.options[n] for n in names))
        # One bound per product, as in WebShop: all option combinations of a product share the
        # price clause (the reference cases show one price_upper per ASIN).
        upper = price_upper_bound(product.reward_price, _goal_rng(seed, "synthetic", product.asin, 0))
        for combo in combos:
            options = dict(zip(names, combo))
            text = product.instruction_text
            if options:
                text += " with " + ", and ".join(f"{n}: {v}" for n, v in options.items())
            goals.append(
                Goal(
                    index=-1,
                    kind="synthetic",
                    instruction_text=text + price_clause(upper),
                    attributes=list(product.instruction_attributes or []),
                    goal_options=options,
                    price_upper=upper,
                    **_goal_fields(product),
                )
            )
    _set_weights(goals)
    return goals


def _set_weights(goals: Sequence[Goal]) -> None:
    """weight = mean over the goal's attributes of 1/(number of goals using that attribute)."""
    counts: dict[str, int] = defaultdict(int)
    for g in goals:
        for a in g.attributes:
            counts[a] += 1
    for g in goals:
        g.weight = sum(1.0 / counts[a] for a in g.attributes) / len(g.attributes) if g.attributes else 0.0


def human_goals(catalog: Catalog, seed: int = 0) -> tuple[list[Goal], int]:
    """One goal per human-instruction record; records with no attributes are skipped (counted)."""
    goals: list[Goal] = []
    skipped = 0
    for product in catalog.products:
        for k, record in enumerate(product.human_instructions or []):
            if not record.get("instruction_attributes"):
                skipped += 1
                continue
            upper = price_upper_bound(product.reward_price, _goal_rng(seed, "human", product.asin, k))
            text = str(record.get("instruction", "")).strip(".")
            goals.append(
                Goal(
                    index=-1,
                    kind="human",
                    instruction_text=text + price_clause(upper),
                    attributes=list(record["instruction_attributes"]),
                    goal_options=list(record.get("instruction_options") or []),
                    price_upper=upper,
                    weight=1.0,
                    **_goal_fields(product),
                )
            )
    return goals, skipped


class GoalSet:
    """The shuffled goal list with WebShop's index split and a leak-free product split."""

    def __init__(self, goals: list[Goal], kind: GoalKind, seed: int, skipped: int = 0):
        random.Random(GOAL_SHUFFLE_SEED).shuffle(goals)
        for i, g in enumerate(goals):
            g.index = i
        self.goals = goals
        self.kind = kind
        self.seed = seed
        self.skipped = skipped
        self._product_split: dict[str, list[int]] | None = None

    def __len__(self) -> int:
        return len(self.goals)

    def __iter__(self):
        return iter(self.goals)

    def __getitem__(self, index: int) -> Goal:
        # operator.index accepts numpy integers (goal indices often come from a sampler or a
        # dataset column) but not bools, floats or strings like "3".
        try:
            position = operator.index(index) if not isinstance(index, bool) else None
        except TypeError:
            position = None
        if position is None or not 0 <= position < len(self.goals):
            raise UnknownGoalError(
                f"unknown goal index {index!r}: this {self.kind} goal set has indices 0..{len(self.goals) - 1}"
            )
        return self.goals[position]

    def split(self, name: str, mode: SplitMode = "index") -> list[int]:
        """Goal indices of a split. ``mode='index'`` is WebShop's test 0-499 / eval 500-1499 /
        train 1500+; ``mode='product'`` puts no product in two splits (see `product_split`)."""
        if name not in SPLIT_NAMES:
            raise UnknownGoalError(f"unknown split {name!r}: choose one of {', '.join(SPLIT_NAMES)}")
        if mode == "index":
            lo, hi = INDEX_SPLITS[name]
            hi = len(self.goals) if hi is None else min(hi, len(self.goals))
            return list(range(min(lo, len(self.goals)), hi))
        if mode == "product":
            return list(self.product_split()[name])
        raise ValueError(f"unknown split mode {mode!r}: 'index' or 'product'")

    def product_split(self) -> dict[str, list[int]]:
        """Products are shuffled (seed 233) and dealt to test until it holds >= 500 goals, then to
        eval until >= 1000, the rest to train, so sizes are close to WebShop's index split."""
        if self._product_split is None:
            by_asin: dict[str, list[int]] = defaultdict(list)
            for g in self.goals:
                by_asin[g.asin].append(g.index)
            asins = sorted(by_asin)
            random.Random(GOAL_SHUFFLE_SEED).shuffle(asins)
            targets = {"test": 500, "eval": 1000}
            out: dict[str, list[int]] = {n: [] for n in SPLIT_NAMES}
            current = "test"
            for asin in asins:
                if current != "train" and len(out[current]) >= targets[current]:
                    current = "eval" if current == "test" else "train"
                    if current == "eval" and len(out["eval"]) >= targets["eval"]:
                        current = "train"
                out[current].extend(by_asin[asin])
            self._product_split = {n: sorted(v) for n, v in out.items()}
        return self._product_split

    def sample_index(self, rng: random.Random, candidates: Sequence[int] | None = None) -> int:
        """Draw a goal index with probability proportional to its weight (WebShop's default)."""
        pool = list(candidates) if candidates is not None else range(len(self.goals))
        weights = [self.goals[i].weight for i in pool]
        if sum(weights) <= 0:
            return pool[rng.randrange(len(pool))]
        return rng.choices(pool, weights=weights, k=1)[0]


def build_goals(catalog: Catalog, kind: GoalKind = "synthetic", seed: int = 0) -> GoalSet:
    """Build, shuffle and index the goals of a catalog (``kind`` 'synthetic' or 'human')."""
    if kind == "synthetic":
        return GoalSet(synthetic_goals(catalog, seed), "synthetic", seed)
    if kind == "human":
        goals, skipped = human_goals(catalog, seed)
        return GoalSet(goals, "human", seed, skipped)
    raise ValueError(f"unknown goal kind {kind!r}: 'synthetic' or 'human'")
