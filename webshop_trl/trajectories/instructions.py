"""Finding the WebShop goal index of a human instruction, as WebShop's IL scripts do.

WebShop ships ``human_goals.json``: the human instructions in goal-index order, normalised
(lowercased, quotes removed, price clause removed). Its IL scripts find a demonstration's goal by
normalising the first observation the same way and taking the *first* index of that string
(the list holds duplicates); the index then decides the split (test 0-499, eval 500-1499, train
1500+). We must do exactly the same, or a demonstration could land in the wrong split and leak
test goals into training.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from webshop_trl.data.goals import INDEX_SPLITS
from webshop_trl.errors import DataFileError

# The search page's header: "WebShop" now, "Amazon Shopping Game" in the older human demonstrations.
SEARCH_PAGE_HEADERS = ("WebShop", "Amazon Shopping Game")
PRICE_CLAUSE = ", and price lower than"
_PRICE_UPPER = re.compile(r", and price lower than ([0-9]+(?:\.[0-9]+)?) dollars")
_SEARCH_BUTTON = "\n[button] search [button_]"


def is_search_page_state(state: str) -> bool:
    """Whether a text_rich observation is the search page (header line, then 'Instruction:')."""
    return any(state.startswith(f"{h}\nInstruction:") for h in SEARCH_PAGE_HEADERS)


def normalize_instruction(text: str) -> str:
    """WebShop's normalisation of an instruction (or of a whole search-page state).

    Order matters and follows WebShop: lowercase, drop quotes, drop the header and
    'Instruction:' prefix and the search button, strip, and only then cut at the price clause.
    Stripping before the cut keeps the space that some instructions have before their price
    clause ("... others , and price ..."), as the strings in human_goals.json do.
    """
    s = text.lower().replace('"', "").replace("'", "")
    for header in SEARCH_PAGE_HEADERS:
        s = s.replace(f"{header.lower()}\ninstruction:", "")
    s = s.replace(_SEARCH_BUTTON, "").strip()
    if PRICE_CLAUSE in s:
        s = s.split(PRICE_CLAUSE)[0]
    return s


def instruction_from_state(state: str) -> str:
    """The instruction as displayed on a text_rich search page (original case, price clause kept)."""
    lines = [line.strip() for line in state.split("\n")]
    body = [line for line in lines[1:] if line and line != "Instruction:" and line.lower() != "[button] search [button_]"]
    return " ".join(body)


def price_upper_from_instruction(text: str) -> float | None:
    """The price bound stated in an instruction's price clause, or None when it has none."""
    match = _PRICE_UPPER.search(text)
    return float(match.group(1)) if match else None


def split_of_index(index: int) -> str:
    """WebShop's split of a human goal index: test 0-499, eval 500-1499, train 1500+."""
    for name, (lo, hi) in INDEX_SPLITS.items():
        if index >= lo and (hi is None or index < hi):
            return name
    raise ValueError(f"goal index {index} is negative")


@dataclass
class HumanGoalIndex:
    """``human_goals.json`` as a lookup from normalised instruction to its first goal index."""

    goals: list[str]
    path: Path | None = None

    def __post_init__(self) -> None:
        self._first: dict[str, int] = {}
        for i, s in enumerate(self.goals):
            self._first.setdefault(s, i)

    @classmethod
    def load(cls, path: str | Path) -> "HumanGoalIndex":
        path = Path(path)
        if not path.is_file():
            raise DataFileError(f"human goals file not found: {path}")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise DataFileError(f"{path}: not valid JSON: {exc}") from exc
        if not isinstance(data, list) or not all(isinstance(s, str) for s in data):
            raise DataFileError(f"{path}: expected a JSON list of instruction strings (human_goals.json)")
        return cls(data, path)

    def __len__(self) -> int:
        return len(self.goals)

    def index_of(self, instruction_or_state: str) -> int | None:
        """The first goal index whose string equals the normalised text, or None."""
        return self._first.get(normalize_instruction(instruction_or_state))
