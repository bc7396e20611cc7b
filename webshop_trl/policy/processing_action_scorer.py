"""`ActionScoringProcessor`: turns WebShop pages and their candidate actions into model tensors.

Layout it produces (B pages, N = sum of candidates over the pages, U <= N distinct action strings):

* observation: ``[CLS] instruction [SEP] page text [SEP]`` -> ``input_ids``, ``attention_mask``,
  ``token_type_ids`` of shape [B, Lo] (type 0 for the instruction part, 1 for the page part).
* actions: each *distinct* action string once, ``[CLS] action [SEP]`` -> ``action_input_ids``,
  ``action_attention_mask`` of shape [U, La]. Pages share many actions ("click[back to search]",
  "click[< prev]", ...), so a batch from a vector of environments encodes each only once.
* mapping: ``action_index`` [N] (row of each candidate in the action tensors), ``page_index`` [N]
  (page of each candidate, page-major order), ``num_candidates`` [B].
* ``labels`` [B] (index of the chosen candidate within its page) when labels are given.

Why the instruction is tokenised on its own: WebShop's choice model cut long states from the left,
so on long pages the instruction (the one thing every step needs) was the first thing lost. Here
the instruction is found in the page ("Instruction:" followed by a separator), moved to the first
segment (capped at ``max_instruction_length`` tokens) and only the page text is truncated, from
the right by default (keeping the buttons, options and first results, which WebShop renders first).

WebShop's preprocessing is applied to observations and actions alike (``preprocess=True``):
lowercase, drop ``"`` and ``'``, and write "[sep]" as "[SEP]" so the separator stays one token.

Item names (``item_names=True``, WebShop's ``click_item_name=1``, its baseline's default, WEBSHOP_SPEC
§5.1): a product click ``click[b0743jkhbv]`` is shown to the model as ``click[item - <title>]``,
the title read off the results page the click belongs to. The environment still receives the
ASIN click: only the text the encoder reads changes, so every user of the processor (IL, DPO,
PPO, the agents) sees the same rendering. Without it the encoder reads ten opaque ASINs on a
results page and must learn to bind each one to the title printed beside it before it can match
a title against the instruction, a two-hop look-up that IL found late and unreliably (loss
plateaus at the uniform choice for a seed-dependent number of updates, then relapses).
"""

from __future__ import annotations

import json
import operator
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from transformers import AutoTokenizer, BatchEncoding, PreTrainedTokenizerBase

from webshop_trl.policy.hub import DEFAULT_ENCODER, resolve_encoder_name_or_path

PROCESSOR_CONFIG_NAME = "action_scoring_processor.json"
# A label that is ignored by the loss (a page whose choice is unknown), as in torch cross-entropy.
IGNORE_INDEX = -100

# The text_rich markup WebShop's choice model added to its BERT vocabulary (ids 30522..30525 there).
WEBSHOP_SPECIAL_TOKENS: tuple[str, ...] = ("[button]", "[button_]", "[clicked button]", "[clicked button_]")

# "Instruction:" then a separator ("[SEP]" in text mode, a newline in text_rich), the instruction,
# and the next separator (case-insensitive, so it also works with preprocess=False).
_INSTRUCTION_RE = re.compile(
    r"instruction:[ \t]*(?P<sep>\[SEP\]|\n)[ \t\n]*(?P<text>.*?)[ \t]*(?=\[SEP\]|\n|$)", re.DOTALL | re.IGNORECASE
)


def preprocess_text(text: str) -> str:
    """WebShop's text normalisation: lowercase, remove quotes, keep "[SEP]" a special token."""
    return text.lower().replace('"', "").replace("'", "").replace("[sep]", "[SEP]")


def split_instruction(observation: str) -> tuple[str, str]:
    """Split a (preprocessed) WebShop observation into (instruction, page text without it).

    Works for the text ("Instruction: [SEP] ... [SEP]") and text_rich ("Instruction: \\n...\\n")
    renderings. Returns ("", observation) when the page has no instruction line.
    """
    match = _INSTRUCTION_RE.search(observation)
    if match is None or not match.group("text").strip():
        return "", observation
    instruction = match.group("text").strip()
    rest = observation[match.end():]
    # drop the separator that followed the instruction, so the page does not start with one
    rest = re.sub(r"^[ \t]*(?:\[SEP\]|\n)[ \t]*", "", rest, count=1, flags=re.IGNORECASE)
    before = observation[: match.start()].rstrip()
    before = re.sub(r"[ \t]*(?:\[SEP\])?[ \t]*$", "", before, flags=re.IGNORECASE)  # "WebShop [SEP]" -> "WebShop"
    joint = "\n" if match.group("sep") == "\n" else " [SEP] "  # keep the page's own separator
    page = f"{before}{joint}{rest}" if before and rest else (before or rest)
    return instruction, page.strip()


# A product link on a results page: "<asin>", then its title, then its price ("$14.95" or
# "$10.0 to $20.0"), as both renderings print them (text: "[SEP]" between, text_rich: lines).
_SEGMENT_SPLIT_RE = re.compile(r"[ \t]*(?:\[SEP\]|\n)[ \t]*", re.IGNORECASE)
_BUTTON_MARKS_RE = re.compile(r"^\[(?:clicked )?button\][ \t]*|[ \t]*\[(?:clicked )?button_\]$", re.IGNORECASE)
_ASIN_RE = re.compile(r"[a-z0-9]{10}", re.IGNORECASE)
_CLICK_RE = re.compile(r"click\[(.*)\]", re.DOTALL)


def item_titles(observation: str) -> dict[str, str]:
    """``{asin (lowercase): title}`` for the product links of a results page (empty elsewhere).

    A segment is a product link when it looks like an ASIN and the segment after its title is a
    price; option values such as "40x40x40cm" are ten characters too, but never sit there.
    """
    segments = [_BUTTON_MARKS_RE.sub("", seg).strip() for seg in _SEGMENT_SPLIT_RE.split(observation)]
    segments = [seg for seg in segments if seg]
    titles: dict[str, str] = {}
    for i in range(len(segments) - 2):
        if segments[i + 2].startswith("$") and _ASIN_RE.fullmatch(segments[i]):
            titles.setdefault(segments[i].lower(), segments[i + 1])
    return titles


def with_item_names(observation: str, candidates: Sequence[str]) -> list[str]:
    """The candidates with each product click written ``click[item - <title>]`` (WebShop's
    ``click_item_name``); other actions, and product clicks whose title is not on the page, are
    returned unchanged."""
    titles: dict[str, str] | None = None
    out: list[str] = []
    for action in candidates:
        match = _CLICK_RE.fullmatch(action)
        if match is not None and _ASIN_RE.fullmatch(match.group(1)):
            if titles is None:
                titles = item_titles(observation)
            title = titles.get(match.group(1).lower())
            if title is not None:
                action = f"click[item - {title.lower()}]"
        out.append(action)
    return out


@dataclass
class _Limits:
    max_observation_length: int
    max_instruction_length: int
    max_action_length: int


class ActionScoringProcessor:
    """Tokenizer wrapper that batches pages with a variable number of candidate actions.

    Args:
        tokenizer: a BERT-style tokenizer (needs cls/sep/pad tokens).
        max_observation_length: total observation tokens, specials included (BERT's limit is 512).
        max_instruction_length: cap on the instruction segment; the page gets the rest. Default:
            min(128, max_observation_length // 2) (WebShop instructions are ~16 words, ~25 tokens).
        max_action_length: cap on each action, specials included (WebShop: 128 in IL, 64 in RL).
        page_truncation_side: "right" keeps the start of the page, "left" keeps its end.
        preprocess: apply WebShop's normalisation (`preprocess_text`).
        extract_instruction: move the instruction line of the page into the first segment.
        deduplicate_actions: encode each distinct action string once per batch.
        pad_to_multiple_of: pad sequence lengths to a multiple of this (None: longest in batch).
        item_names: show product clicks as ``click[item - <title>]`` (WebShop's baseline default,
            see the module docstring). Off for checkpoints saved before the setting existed.
    """

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        max_observation_length: int = 512,
        max_instruction_length: int | None = None,
        max_action_length: int = 64,
        page_truncation_side: str = "right",
        preprocess: bool = True,
        extract_instruction: bool = True,
        deduplicate_actions: bool = True,
        pad_to_multiple_of: int | None = None,
        item_names: bool = False,
    ):
        for name in ("cls_token_id", "sep_token_id", "pad_token_id"):
            if getattr(tokenizer, name, None) is None:
                raise ValueError(f"the tokenizer has no {name[:-3]}; ActionScoringProcessor needs a BERT-style tokenizer")
        if page_truncation_side not in ("left", "right"):
            raise ValueError(f"page_truncation_side must be 'left' or 'right', got {page_truncation_side!r}")
        if max_observation_length < 8:
            raise ValueError(f"max_observation_length must be >= 8, got {max_observation_length}")
        if max_instruction_length is None:
            max_instruction_length = min(128, max_observation_length // 2)
        if not 1 <= max_instruction_length <= max_observation_length - 4:
            raise ValueError(
                f"max_instruction_length must be in [1, max_observation_length - 4], got {max_instruction_length}"
            )
        if max_action_length < 3:
            raise ValueError(f"max_action_length must be >= 3, got {max_action_length}")
        model_max = getattr(tokenizer, "model_max_length", None)
        if isinstance(model_max, int) and model_max < max_observation_length:
            raise ValueError(f"max_observation_length={max_observation_length} exceeds the tokenizer's limit {model_max}")
        self.tokenizer = tokenizer
        self.limits = _Limits(max_observation_length, max_instruction_length, max_action_length)
        self.page_truncation_side = page_truncation_side
        self.preprocess = preprocess
        self.extract_instruction = extract_instruction
        self.deduplicate_actions = deduplicate_actions
        self.pad_to_multiple_of = pad_to_multiple_of
        self.item_names = bool(item_names)

    # ------------------------------------------------------------------ construction and saving
    @classmethod
    def from_pretrained(
        cls, name_or_path: str | os.PathLike = DEFAULT_ENCODER, add_webshop_tokens: bool | None = None, **kwargs: Any
    ) -> "ActionScoringProcessor":
        """Load the tokenizer of a BERT checkpoint or of a saved `ActionScorerModel` folder.

        Settings saved by `save_pretrained` are restored; ``kwargs`` override them.
        ``add_webshop_tokens=True`` adds `WEBSHOP_SPECIAL_TOKENS` (the model's embeddings must then
        be resized: `ActionScorerModel.from_bert(..., add_webshop_tokens=True)` does both).
        """
        path = resolve_encoder_name_or_path(name_or_path)
        tokenizer = AutoTokenizer.from_pretrained(path)
        settings: dict[str, Any] = {}
        settings_file = Path(path) / PROCESSOR_CONFIG_NAME
        if settings_file.is_file():
            settings = json.loads(settings_file.read_text())
        elif not os.path.isdir(path):
            try:  # a Hub repo saved by `save_pretrained` carries the settings next to the tokenizer
                from huggingface_hub import hf_hub_download

                settings = json.loads(Path(hf_hub_download(path, PROCESSOR_CONFIG_NAME)).read_text())
            except Exception:
                settings = {}
        settings.pop("processor_class", None)
        settings.update(kwargs)
        processor = cls(tokenizer, **settings)
        if add_webshop_tokens:
            processor.add_webshop_tokens()
        return processor

    def add_webshop_tokens(self) -> int:
        """Add `WEBSHOP_SPECIAL_TOKENS` to the tokenizer; returns how many were new."""
        return self.tokenizer.add_tokens(list(WEBSHOP_SPECIAL_TOKENS), special_tokens=True)

    @property
    def has_webshop_tokens(self) -> bool:
        vocab = self.tokenizer.get_vocab()
        return all(t in vocab for t in WEBSHOP_SPECIAL_TOKENS)

    def to_dict(self) -> dict[str, Any]:
        return {
            "processor_class": type(self).__name__,
            "max_observation_length": self.limits.max_observation_length,
            "max_instruction_length": self.limits.max_instruction_length,
            "max_action_length": self.limits.max_action_length,
            "page_truncation_side": self.page_truncation_side,
            "preprocess": self.preprocess,
            "extract_instruction": self.extract_instruction,
            "deduplicate_actions": self.deduplicate_actions,
            "pad_to_multiple_of": self.pad_to_multiple_of,
            "item_names": self.item_names,
        }

    def save_pretrained(self, save_directory: str | os.PathLike, **kwargs: Any) -> list[str]:
        """Save the tokenizer and these settings (``action_scoring_processor.json``)."""
        os.makedirs(save_directory, exist_ok=True)
        files = list(self.tokenizer.save_pretrained(save_directory, **kwargs))
        path = os.path.join(save_directory, PROCESSOR_CONFIG_NAME)
        with open(path, "w") as f:
            json.dump(self.to_dict(), f, indent=2, sort_keys=True)
            f.write("\n")
        return files + [path]

    def __len__(self) -> int:
        return len(self.tokenizer)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(vocab={len(self.tokenizer)}, {self.to_dict()})"

    # ------------------------------------------------------------------ encoding
    def __call__(
        self,
        observations: Sequence[str],
        candidates: Sequence[Sequence[str]],
        instructions: Sequence[str | None] | None = None,
        labels: Sequence[int] | None = None,
        return_tensors: str = "pt",
    ) -> BatchEncoding:
        """Tensors for B pages; see the module docstring for the layout.

        Args:
            observations: one page text per page.
            candidates: the candidate actions of each page (at least one per page).
            instructions: the goal instruction of each page (e.g. ``info["instruction"]``); when
                None (or an entry is None) it is read from the page.
            labels: index of the chosen candidate of each page (for IL / cross-entropy).
        """
        if return_tensors != "pt":
            raise ValueError("only return_tensors='pt' is supported")
        self._validate(observations, candidates, instructions, labels)
        batch: dict[str, torch.Tensor] = {}
        batch.update(self.encode_observations(observations, instructions))
        batch.update(self.encode_candidates(self.render_candidates(observations, candidates)))
        if labels is not None:
            batch["labels"] = torch.tensor([operator.index(x) for x in labels], dtype=torch.long)
        return BatchEncoding(batch, tensor_type=None)

    @staticmethod
    def _validate(observations, candidates, instructions, labels) -> None:
        if isinstance(observations, str) or not isinstance(observations, Sequence):
            raise ValueError("observations must be a list of strings (one per page), not a single string")
        if isinstance(candidates, str) or not isinstance(candidates, Sequence):
            raise ValueError("candidates must be a list with one list of action strings per page")
        if len(observations) == 0:
            raise ValueError("no pages: observations is empty")
        if len(observations) != len(candidates):
            raise ValueError(
                f"observations and candidates must have the same length (one entry per page), "
                f"got {len(observations)} observations and {len(candidates)} candidate lists"
            )
        if instructions is not None and len(instructions) != len(observations):
            raise ValueError(f"got {len(instructions)} instructions for {len(observations)} pages")
        if labels is not None and len(labels) != len(observations):
            raise ValueError(f"got {len(labels)} labels for {len(observations)} pages")
        for i, (obs, cands) in enumerate(zip(observations, candidates)):
            if not isinstance(obs, str):
                raise ValueError(f"observation {i} is a {type(obs).__name__}, not a string")
            if isinstance(cands, str) or not isinstance(cands, Sequence):
                raise ValueError(f"candidates[{i}] must be a list of action strings, got {type(cands).__name__}")
            if len(cands) == 0:
                raise ValueError(f"page {i} has zero candidate actions; every page needs at least one")
            for j, a in enumerate(cands):
                if not isinstance(a, str):
                    raise ValueError(f"candidates[{i}][{j}] is a {type(a).__name__}, not a string")
            if labels is not None:
                y = labels[i]
                try:
                    if isinstance(y, bool):
                        raise TypeError
                    y = operator.index(y)
                except TypeError:
                    raise ValueError(f"labels[{i}] must be an int index, got {y!r}") from None
                if not 0 <= y < len(cands) and y != IGNORE_INDEX:
                    raise ValueError(f"labels[{i}]={y} is out of range for page {i} with {len(cands)} candidates")

    def render_candidates(self, observations: Sequence[str], candidates: Sequence[Sequence[str]]) -> list[list[str]]:
        """The candidate texts the encoder reads: with ``item_names``, product clicks carry the
        title from their page (`with_item_names`); otherwise the candidates as given. Order and
        count are kept, so indices (labels, chosen actions) refer to the original candidates."""
        if not self.item_names:
            return [list(c) for c in candidates]
        return [with_item_names(obs, cands) for obs, cands in zip(observations, candidates)]

    def _pad_length(self, length: int) -> int:
        m = self.pad_to_multiple_of
        return length if not m else ((length + m - 1) // m) * m

    def encode_observations(
        self, observations: Sequence[str], instructions: Sequence[str | None] | None = None
    ) -> dict[str, torch.Tensor]:
        """``input_ids``, ``attention_mask``, ``token_type_ids`` [B, Lo] for the pages."""
        tok = self.tokenizer
        lim = self.limits
        instr_texts: list[str] = []
        page_texts: list[str] = []
        for i, obs in enumerate(observations):
            text = preprocess_text(obs) if self.preprocess else obs
            found, page = split_instruction(text) if self.extract_instruction else ("", text)
            given = instructions[i] if instructions is not None else None
            if given is not None:
                found = preprocess_text(given) if self.preprocess else given
            instr_texts.append(found)
            page_texts.append(page)
        # one batched call for all segments (fast tokenizer, parallel in Rust)
        # (verbose=False: pages longer than the model limit are expected here; they are cut below)
        encoded = tok(
            instr_texts + page_texts, add_special_tokens=False, return_attention_mask=False, verbose=False
        )["input_ids"]
        instr_ids, page_ids = encoded[: len(observations)], encoded[len(observations):]
        cls_id, sep_id, pad_id = tok.cls_token_id, tok.sep_token_id, tok.pad_token_id
        rows: list[list[int]] = []
        types: list[list[int]] = []
        for ins, page in zip(instr_ids, page_ids):
            if ins:
                ins = ins[: lim.max_instruction_length]
                budget = lim.max_observation_length - len(ins) - 3
                page = self._truncate_page(page, budget)
                rows.append([cls_id, *ins, sep_id, *page, sep_id])
                types.append([0] * (len(ins) + 2) + [1] * (len(page) + 1))
            else:
                page = self._truncate_page(page, lim.max_observation_length - 2)
                rows.append([cls_id, *page, sep_id])
                types.append([0] * (len(page) + 2))
        length = self._pad_length(max(len(r) for r in rows))
        input_ids = torch.full((len(rows), length), pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(rows), length), dtype=torch.long)
        token_type_ids = torch.zeros((len(rows), length), dtype=torch.long)
        for i, (r, t) in enumerate(zip(rows, types)):
            input_ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
            attention_mask[i, : len(r)] = 1
            token_type_ids[i, : len(t)] = torch.tensor(t, dtype=torch.long)
        return {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}

    def _truncate_page(self, ids: list[int], budget: int) -> list[int]:
        if len(ids) <= budget:
            return ids
        if budget <= 0:
            return []
        return ids[:budget] if self.page_truncation_side == "right" else ids[len(ids) - budget:]

    def encode_candidates(self, candidates: Sequence[Sequence[str]]) -> dict[str, torch.Tensor]:
        """Action tensors [U, La] and the candidate -> row / page mapping."""
        texts: list[str] = []
        row_of: dict[str, int] = {}
        action_index: list[int] = []
        page_index: list[int] = []
        for p, cands in enumerate(candidates):
            for a in cands:
                a = preprocess_text(a) if self.preprocess else a
                row = row_of.get(a) if self.deduplicate_actions else None
                if row is None:
                    row = len(texts)
                    texts.append(a)
                    if self.deduplicate_actions:
                        row_of[a] = row
                action_index.append(row)
                page_index.append(p)
        enc = self.tokenizer(
            texts,
            truncation=True,
            max_length=self.limits.max_action_length,
            padding=True,
            pad_to_multiple_of=self.pad_to_multiple_of,
            return_token_type_ids=False,
            return_tensors="pt",
        )
        return {
            "action_input_ids": enc["input_ids"],
            "action_attention_mask": enc["attention_mask"],
            "action_index": torch.tensor(action_index, dtype=torch.long),
            "page_index": torch.tensor(page_index, dtype=torch.long),
            "num_candidates": torch.tensor([len(c) for c in candidates], dtype=torch.long),
        }

    # ------------------------------------------------------------------ data collation
    def collate(self, features: Sequence[Mapping[str, Any]]) -> BatchEncoding:
        """A ``data_collator`` for datasets of steps.

        Each feature needs ``observation`` and ``available_actions`` (the trajectory format's step
        keys; ``candidates`` is accepted too), optionally ``instruction``, and either ``label``
        (index) or ``action`` (the chosen action string, looked up in the candidates).
        """
        if len(features) == 0:
            raise ValueError("collate got an empty batch")
        observations, candidates, instructions, labels = [], [], [], []
        for i, f in enumerate(features):
            if "observation" not in f:
                raise ValueError(f"feature {i} has no 'observation'")
            cands = f.get("available_actions", f.get("candidates"))
            if cands is None:
                raise ValueError(f"feature {i} has no 'available_actions' (or 'candidates')")
            observations.append(f["observation"])
            candidates.append(list(cands))
            instructions.append(f.get("instruction"))
            if f.get("label") is not None:
                labels.append(int(f["label"]))
            elif f.get("action") is not None:
                if f["action"] not in cands:
                    raise ValueError(f"feature {i}: action {f['action']!r} is not among its available_actions")
                labels.append(list(cands).index(f["action"]))
            else:
                labels.append(None)
        has = [y is not None for y in labels]
        if any(has) and not all(has):
            raise ValueError("some features have a label/action and some do not")
        return self(
            observations,
            candidates,
            instructions=instructions if any(x is not None for x in instructions) else None,
            labels=labels if all(has) else None,
        )


__all__ = [
    "ActionScoringProcessor",
    "WEBSHOP_SPECIAL_TOKENS",
    "PROCESSOR_CONFIG_NAME",
    "item_titles",
    "preprocess_text",
    "split_instruction",
    "with_item_names",
]
