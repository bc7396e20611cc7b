"""WebShop's baseline agents (WEBSHOP_SPEC §5.2): the rule agent and a random agent."""

from __future__ import annotations

import random
from typing import Any, Sequence


def _clicks(info: dict[str, Any]) -> list[str]:
    return [a for a in info["available_actions"] if a.startswith("click[")]


def _first_product(info: dict[str, Any]) -> str | None:
    """The first product link of a results page (links are ASINs: 10 chars, B0...)."""
    buttons = {"click[back to search]", "click[< prev]", "click[next >]"}
    for action in _clicks(info):
        if action not in buttons:
            return action
    return None


class RuleAgent:
    """Search the whole instruction, click the first result, buy without choosing options.

    Deterministic. On an empty result list it goes to the next page (WebShop's agent would be
    stuck there too), so such an episode ends at the step limit with reward 0.
    """

    name = "rule"

    def act(self, observations: Sequence[str], infos: Sequence[dict[str, Any]]) -> list[str]:
        return [self._act_one(info) for info in infos]

    @staticmethod
    def _act_one(info: dict[str, Any]) -> str:
        page = info["page_type"]
        if page == "search":
            return f"search[{info['instruction'].lower()}]"
        if page == "results":
            return _first_product(info) or "click[next >]"
        if page == "item":
            return "click[buy now]"
        return "click[< prev]"


class RandomAgent:
    """Uniform over the clickables of each page; searches the instruction on the search page and
    buys as soon as it can after ``max_steps`` steps."""

    name = "random"

    def __init__(self, seed: int = 0, max_steps: int = 15):
        self.rng = random.Random(seed)
        self.max_steps = max_steps

    def act(self, observations: Sequence[str], infos: Sequence[dict[str, Any]]) -> list[str]:
        return [self._act_one(info) for info in infos]

    def _act_one(self, info: dict[str, Any]) -> str:
        if info["page_type"] == "search":
            return f"search[{info['instruction'].lower()}]"
        clicks = _clicks(info)
        if info["step"] >= self.max_steps and "click[buy now]" in clicks:
            return "click[buy now]"
        return self.rng.choice(clicks) if clicks else "click[back to search]"
