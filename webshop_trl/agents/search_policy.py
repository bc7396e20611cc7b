"""Search policies: what a learned agent types on the search page.

An agent is a search policy (the query) plus a choice policy (the clicks). WebShop's IL agent
searched with a BART model trained on human queries (WEBSHOP_SPEC §5.3); without it ("IL without
pretrained search model") it searched the instruction. Three sources are offered:

* `InstructionQuery` (``"instruction"``, the default): the whole instruction, lowercased, price
  clause included, exactly what the rule agent searches.
* `HumanQuery` (``"human"``): one of the queries people typed for the instruction, from WebShop's
  ``goal_query_map.json`` (keyed by the instruction lowercased, quotes and price clause removed);
  the instruction when the file has none. The map covers 1,506 human instructions, so on the 1k
  catalog only few goals hit (none of the synthetic goals, 1 of the 13 human goals): `hits` and
  `misses` count them.
* `Seq2SeqQuery` (``"seq2seq"``): a seq2seq model given by path (``AutoModelForSeq2SeqLM`` +
  ``generate``), fed the instruction as WebShop's BART was (lowercased, no quotes, no price
  clause). Beam search; the top beam (WebShop's ``test.py``) or, with ``pick="sample"``, one of
  the ``num_beams`` returned beams drawn uniformly (the paper's description).

Every policy answers a batch (``queries(instructions, rngs)``) in one call; ``rngs`` (one
`random.Random` per page) is where a sampled choice draws from, so the agent's per-episode seeds
decide the draw. Queries are cleaned so that the environment accepts them: lowercased, brackets
removed (they would end the ``search[...]`` action early), single spaces; an empty query falls back
to the instruction.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any, Mapping, Protocol, Sequence

from webshop_trl.errors import DataFileError, WebShopTrlError
from webshop_trl.experts.oracle import clean_query, instruction_key

QUERY_SOURCES = ("instruction", "human", "seq2seq")
PICKS = ("first", "sample")


class SearchPolicyError(WebShopTrlError):
    """A search policy cannot be built (unknown source, missing or unloadable model)."""


class SearchPolicy(Protocol):
    name: str

    def queries(self, instructions: Sequence[str], rngs: Sequence[random.Random] | None = None) -> list[str]:
        """One query per instruction (not wrapped in ``search[...]``)."""
        ...


def instruction_query(instruction: str) -> str:
    """The whole instruction as a query (lowercased, price clause kept), cleaned for the env."""
    return clean_query(instruction)


class InstructionQuery:
    """Search the whole instruction, lowercased (the rule agent's query)."""

    name = "instruction"

    def queries(self, instructions: Sequence[str], rngs: Sequence[random.Random] | None = None) -> list[str]:
        return [instruction_query(text) for text in instructions]


class HumanQuery:
    """A human query for the instruction from ``goal_query_map.json``, else the instruction.

    Args:
        mapping: instruction key -> queries; default: the file in ``data_dir`` (the fetched data
            folder when None). Keys of a given mapping are normalised with `instruction_key`.
        data_dir: folder holding ``goal_query_map.json``.
        pick: ``"first"`` (the first query listed, deterministic) or ``"sample"`` (one drawn
            uniformly with the page's rng).
    """

    name = "human"

    def __init__(self, mapping: Mapping[str, Sequence[str]] | None = None, data_dir: str | os.PathLike | None = None, pick: str = "first"):
        if pick not in PICKS:
            raise SearchPolicyError(f"pick must be one of {PICKS}, got {pick!r}")
        if mapping is None:
            mapping = load_goal_query_map(data_dir)
        self.mapping: dict[str, list[str]] = {}
        for key, queries in mapping.items():
            cleaned = [q for q in (clean_query(str(x)) for x in queries) if q]
            if cleaned:
                self.mapping.setdefault(instruction_key(key), []).extend(cleaned)
        self.pick = pick
        self.hits = 0
        self.misses = 0

    def lookup(self, instruction: str) -> list[str]:
        """The human queries recorded for ``instruction`` ([] when none)."""
        return list(self.mapping.get(instruction_key(instruction), []))

    def queries(self, instructions: Sequence[str], rngs: Sequence[random.Random] | None = None) -> list[str]:
        out = []
        for i, text in enumerate(instructions):
            found = self.mapping.get(instruction_key(text))
            if not found:
                self.misses += 1
                out.append(instruction_query(text))
                continue
            self.hits += 1
            if self.pick == "sample" and len(found) > 1:
                rng = rngs[i] if rngs is not None else random.Random(0)
                out.append(found[rng.randrange(len(found))])
            else:
                out.append(found[0])
        return out


def load_goal_query_map(data_dir: str | os.PathLike | None = None) -> dict[str, list[str]]:
    """WebShop's ``goal_query_map.json`` (instruction -> human queries); a clear error when absent."""
    from webshop_trl import paths

    folder = Path(data_dir) if data_dir else paths.webshop_data_dir()
    path = folder / "goal_query_map.json"
    if not path.is_file():
        raise DataFileError(f"{path} not found: the human query source needs WebShop's goal_query_map.json (`webshop-trl data fetch`)")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataFileError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise DataFileError(f"{path}: expected an object mapping instructions to lists of queries")
    return {str(k): [str(q) for q in v] for k, v in raw.items() if isinstance(v, list)}


class Seq2SeqQuery:
    """Queries generated by a seq2seq model (a folder with a tokenizer and an
    ``AutoModelForSeq2SeqLM`` checkpoint, e.g. a BART fine-tuned on goal_query_map.json).

    All search pages of a batch are generated in one ``generate`` call; beams are cached per
    instruction (generation is deterministic), so an episode that searches again costs nothing.

    Args:
        model_name_or_path: folder (or hub id where a hub is reachable).
        num_beams: beam width (WebShop's test.py: 5).
        pick: ``"first"``: the top beam; ``"sample"``: one of the ``num_beams`` beams, uniformly.
        max_input_length: input tokens kept (WebShop trained with 256).
        max_new_tokens: cap on the query's length in tokens.
        min_new_tokens: at least this many tokens (1: an end-of-sequence first is not an empty query).
        device: torch device (default: CPU).
    """

    def __init__(
        self,
        model_name_or_path: str | os.PathLike,
        num_beams: int = 5,
        pick: str = "first",
        max_input_length: int = 256,
        max_new_tokens: int = 32,
        min_new_tokens: int = 1,
        device: str | None = None,
        cache_size: int = 100_000,
    ):
        if pick not in PICKS:
            raise SearchPolicyError(f"pick must be one of {PICKS}, got {pick!r}")
        if num_beams < 1:
            raise SearchPolicyError(f"num_beams must be >= 1, got {num_beams}")
        path = os.path.expanduser(os.fspath(model_name_or_path))
        if not os.path.isdir(path) and not _looks_like_hub_id(path):
            raise SearchPolicyError(f"seq2seq query model not found: {path} is not a folder")
        from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path)
            self.model = AutoModelForSeq2SeqLM.from_pretrained(path)
        except (OSError, ValueError, KeyError) as exc:
            raise SearchPolicyError(f"cannot load a seq2seq query model from {path}: {exc}") from None
        self.model.eval()
        if device is not None:
            self.model.to(device)
        self.path = path
        self.name = f"seq2seq:{Path(path).name or path}"
        self.num_beams = num_beams
        self.pick = pick
        self.max_input_length = max_input_length
        self.max_new_tokens = max_new_tokens
        self.min_new_tokens = min_new_tokens
        self.cache_size = cache_size
        self._cache: dict[str, list[str]] = {}
        self.generate_calls = 0
        self.fallbacks = 0

    @staticmethod
    def model_input(instruction: str) -> str:
        """What the model reads: WebShop's BART input (lowercased, quotes and price clause removed)."""
        return instruction_key(instruction)

    def beams(self, instructions: Sequence[str]) -> list[list[str]]:
        """The cleaned beams of each instruction (one batched ``generate`` for the uncached ones)."""
        import torch

        inputs = [self.model_input(t) for t in instructions]
        todo = list(dict.fromkeys(x for x in inputs if x not in self._cache))
        if todo:
            n_return = self.num_beams if self.pick == "sample" else 1
            enc = self.tokenizer(todo, return_tensors="pt", padding=True, truncation=True, max_length=self.max_input_length)
            enc = {k: v.to(self.model.device) for k, v in enc.items() if k in ("input_ids", "attention_mask")}
            with torch.inference_mode():
                out = self.model.generate(
                    **enc, num_beams=self.num_beams, num_return_sequences=n_return, do_sample=False,
                    max_new_tokens=self.max_new_tokens, min_new_tokens=self.min_new_tokens, early_stopping=self.num_beams > 1,
                )
            self.generate_calls += 1
            texts = self.tokenizer.batch_decode(out, skip_special_tokens=True)
            if len(self._cache) + len(todo) > self.cache_size:
                self._cache.clear()
            for k, key in enumerate(todo):
                self._cache[key] = [clean_query(t) for t in texts[k * n_return : (k + 1) * n_return]]
        return [list(self._cache[x]) for x in inputs]

    def queries(self, instructions: Sequence[str], rngs: Sequence[random.Random] | None = None) -> list[str]:
        if not instructions:
            return []
        out = []
        for i, (text, beams) in enumerate(zip(instructions, self.beams(instructions))):
            usable = [b for b in beams if b]
            if not usable:
                self.fallbacks += 1
                out.append(instruction_query(text))
            elif self.pick == "sample" and len(usable) > 1:
                rng = rngs[i] if rngs is not None else random.Random(0)
                out.append(usable[rng.randrange(len(usable))])
            else:
                out.append(usable[0])
        return out


def _looks_like_hub_id(path: str) -> bool:
    """``owner/name`` (or a bare name): something only a hub could serve."""
    parts = path.split("/")
    return len(parts) <= 2 and all(parts) and not path.startswith((".", "/", "~")) and os.sep == "/"


def make_search_policy(
    source: str | SearchPolicy = "instruction",
    *,
    model: str | os.PathLike | None = None,
    data_dir: str | os.PathLike | None = None,
    pick: str = "first",
    device: str | None = None,
    **kwargs: Any,
) -> SearchPolicy:
    """A search policy by name: ``"instruction"``, ``"human"`` or ``"seq2seq"`` (needs ``model``).

    A policy object is returned as it is. ``device`` and ``kwargs`` go to `Seq2SeqQuery`
    (``num_beams``, ``max_new_tokens``, ...).
    """
    if not isinstance(source, str):
        return source
    if source == "instruction":
        return InstructionQuery()
    if source == "human":
        return HumanQuery(data_dir=data_dir, pick=pick)
    if source == "seq2seq":
        if model is None:
            raise SearchPolicyError("the seq2seq query source needs a model path (query_model=... / --query-model PATH)")
        return Seq2SeqQuery(model, pick=pick, device=device, **kwargs)
    raise SearchPolicyError(f"unknown query source {source!r}: choose one of {', '.join(QUERY_SOURCES)}")


__all__ = [
    "QUERY_SOURCES",
    "SearchPolicy",
    "SearchPolicyError",
    "InstructionQuery",
    "HumanQuery",
    "Seq2SeqQuery",
    "instruction_query",
    "load_goal_query_map",
    "make_search_policy",
]
