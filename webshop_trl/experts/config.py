"""Settings of the scripted expert: how it searches, what it buys, and how it wanders.

The expert knows the goal. Without noise it searches, pages straight to the product it chose,
clicks the options and buys. With noise it also does what people do in WebShop's human
demonstrations: a vaguer search first, a look at a wrong product, a glance at the description,
a page too far, a misclicked option. Every random draw of an episode comes from
``random.Random(f"{seed}:{goal_index}")``, so a (seed, goal) pair always gives the same demo.
Noise is budgeted: it is only added while the essential actions still fit in the step limit.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

# Query kinds the planner knows (see oracle.candidate_queries).
QUERY_KINDS = ("human", "instruction", "keywords", "core", "category", "title")

# The probabilities `ExpertConfig.noisy()` sets; `quiet()` sets them all to 0.
NOISE_FIELDS = ("p_bad_search", "p_detour", "p_detour_subpage", "p_subpage", "p_extra_page", "p_reopen", "p_wrong_option")
DEFAULT_NOISE = {
    "p_bad_search": 0.3,
    "p_detour": 0.25,
    "p_detour_subpage": 0.3,
    "p_subpage": 0.35,
    "p_extra_page": 0.15,
    "p_reopen": 0.1,
    "p_wrong_option": 0.15,
}


@dataclass(frozen=True)
class ExpertConfig:
    """How the oracle shops. The defaults are noiseless; ``ExpertConfig.noisy()`` turns on the
    human-like detours (``DEFAULT_NOISE``)."""

    seed: int = field(default=0, metadata={"help": "Seed of the noise; episode rng = Random(f'{seed}:{goal_index}')."})
    queries: tuple[str, ...] = field(
        default=("human", "instruction", "keywords", "core"),
        metadata={"help": "Query kinds tried, in order of preference: 'human' (WebShop's human query for this "
                  "instruction, goal_query_map.json; human goals only), 'instruction' (the whole instruction), "
                  "'keywords' (product words + attributes + option values), 'core' (the instruction without "
                  "options and price), 'category' (the product's search category), 'title' (the target's title)."},
    )
    fallback_queries: tuple[str, ...] = field(
        default=("title",),
        metadata={"help": "Query kinds tried only when none of `queries` reaches the best product a search "
                  "can find (the target's title knows more than the instruction says, so it is a last resort)."},
    )
    query_choice: str = field(
        default="best_page",
        metadata={"help": "'best_page': of the queries that reach the best product, the one showing it on the "
                  "earliest results page (ties: the earlier kind); 'first': the first query that reaches it."},
    )
    prefer_target: bool = field(
        default=True,
        metadata={"help": "Buy the goal's own product when it scores as well as any product in reach; "
                  "False buys the best-ranked product with the best reward."},
    )
    max_pages: int = field(default=5, metadata={"help": "Results pages the expert looks through (WebShop shows 50 hits, 10 a page)."})
    # ---- noise ---------------------------------------------------------------------------------
    p_bad_search: float = field(default=0.0, metadata={"help": "Probability of a vaguer search first (a few instruction words or the category), a look at its results, then 'back to search'."})
    p_detour: float = field(default=0.0, metadata={"help": "Per results page passed, probability of opening a wrong product and going back with '< prev'."})
    p_detour_subpage: float = field(default=0.0, metadata={"help": "On a wrong product, probability of reading one of its sub-pages first."})
    p_subpage: float = field(default=0.0, metadata={"help": "On the chosen product, probability of each look at a sub-page (description, features, reviews); up to two looks."})
    p_extra_page: float = field(default=0.0, metadata={"help": "Probability of paging one page past the chosen product's page and coming back."})
    p_reopen: float = field(default=0.0, metadata={"help": "Probability of going back from the chosen product to the results and opening it again."})
    p_wrong_option: float = field(default=0.0, metadata={"help": "Per option to select, probability of clicking a wrong value of that option first."})
    max_noise_steps: int = field(default=30, metadata={"help": "At most this many noise steps per episode (besides the step limit)."})
    max_detours: int = field(default=2, metadata={"help": "At most this many wrong products opened per episode."})

    def __post_init__(self) -> None:
        for name in NOISE_FIELDS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise ValueError(f"ExpertConfig.{name} must be a probability in [0, 1], got {value!r}")
        unknown = [q for q in (*self.queries, *self.fallback_queries) if q not in QUERY_KINDS]
        if unknown:
            raise ValueError(f"unknown query kinds {unknown}: choose from {', '.join(QUERY_KINDS)}")
        if not self.queries and not self.fallback_queries:
            raise ValueError("ExpertConfig needs at least one query kind")
        if self.query_choice not in ("best_page", "first"):
            raise ValueError(f"query_choice must be 'best_page' or 'first', got {self.query_choice!r}")
        if self.max_pages < 1 or self.max_noise_steps < 0 or self.max_detours < 0:
            raise ValueError("max_pages must be >= 1, max_noise_steps and max_detours >= 0")
        # tuples from JSON/argparse arrive as lists
        object.__setattr__(self, "queries", tuple(self.queries))
        object.__setattr__(self, "fallback_queries", tuple(self.fallback_queries))

    @property
    def has_noise(self) -> bool:
        return any(getattr(self, name) > 0 for name in NOISE_FIELDS)

    def noisy(self, **overrides: Any) -> "ExpertConfig":
        """This config with the default noise probabilities (``DEFAULT_NOISE``), then ``overrides``."""
        return dataclasses.replace(self, **{**DEFAULT_NOISE, **overrides})

    def quiet(self) -> "ExpertConfig":
        """This config with every noise probability 0."""
        return dataclasses.replace(self, **{name: 0.0 for name in NOISE_FIELDS})

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["queries"], data["fallback_queries"] = list(self.queries), list(self.fallback_queries)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ExpertConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown ExpertConfig fields {sorted(unknown)}")
        return cls(**data)
