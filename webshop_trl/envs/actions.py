"""Parsing WebShop actions: ``search[query]`` and ``click[element]``."""

from __future__ import annotations

import re
from dataclasses import dataclass

# WebShop matches `name[arg]` greedily anywhere in the string; the argument is lowercased.
_ACTION = re.compile(r"(.+)\[(.+)\]", re.DOTALL)
MAX_ACTION_CHARS = 10_000


@dataclass(frozen=True, slots=True)
class ParsedAction:
    name: str
    arg: str


def parse_action(action: object) -> ParsedAction | None:
    """The (name, lowercased argument) of an action, or None when it has no `name[arg]` form."""
    if not isinstance(action, str):
        return None
    match = _ACTION.search(action[: MAX_ACTION_CHARS + 16])
    if match is None:
        return None
    return ParsedAction(match.group(1), match.group(2).lower())
