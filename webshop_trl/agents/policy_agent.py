"""`PolicyAgent`: a search policy plus the BERT choice policy, acting on batches of pages.

    agent = PolicyAgent("checkpoints/il", greedy=True)                  # search the instruction
    agent = PolicyAgent("checkpoints/il", temperature=1.0, seed=3, query_source="human")
    result = evaluate_agent(agent, WebShopConfig(observation_mode="text_rich"), split="test")

Each `act` call gets the pages of all active sessions of a vector environment:

* a search page (``page_type == "search"``) gets a query from the search policy (all of them in
  one call: one ``generate`` for a seq2seq policy);
* every other page is a choice among its click actions (``click[...]`` of
  ``available_actions``; the search placeholder is not a choice, as in WebShop's agent and in
  `webshop_trl.datasets.decision_steps`). All of them are scored in **one** batched
  ``ActionScorerModel.score`` call, then each page picks the argmax (``greedy``) or samples from
  softmax(log pi / temperature).
* a non-search page without click actions (none in this environment) searches again when search
  is allowed there, else sends ``click[back to search]``; `stats["fallbacks"]` counts them.

Observations are used as the environment renders them: run the env in the observation mode the
checkpoint was trained on (``text_rich``, WebShop's baseline format, for the IL data here).

Seeding: every sampled decision draws from its own ``torch.Generator`` seeded by
``(seed, goal index, attempt, step)``; attempt counts the episodes of that goal this agent has
started (an episode starts when a page with ``step == 0`` arrives). A run's samples therefore do
not depend on how many sessions are stepped together or in which order episodes finish, and a
resumed run draws what an uninterrupted one would have. (Two sessions playing the same goal at
the same time share the draws of the later attempt.)

``max_candidates`` optionally applies WebShop's wrapper cap at test time: pages with more click
actions keep the first 6 plus 10 drawn with the decision's seed. Off by default (every
candidate is scored).

Work that is not redone (``encoding_cache``, on by default): the encoder states of action strings
and pages already seen are reused across steps and episodes (`webshop_trl.policy.encoding_cache`):
"click[next >]", "click[buy now]", option values and recurring ASINs are encoded once, not at
every step. On by default because it cannot change a decision beyond float rounding: it is used
only in eval mode without grad, it is dropped whenever the model's weights change (so a loop that
trains between rollouts never scores with stale states), and log-probs equal the uncached ones up
to float rounding (at most 5e-5 with a trained MiniLM head, the uncached path's own difference
between scoring a page alone and in a batch; the argmax was the same on all 300 rollout pages
measured). Its memory is bounded (64 MiB of actions, 128 MiB of pages per model by default). The
cache belongs to the model (``model.encoding_cache``), so agents sharing a model share it;
``encoding_cache=False`` turns it off for this agent.

``inference`` picks the arithmetic: ``"fp32"`` (default) or ``"bf16"`` (autocast; ~3x faster
encoding on CPUs with AVX512-BF16/AMX; fp32's argmax kept on 98-99.3 % of rollout pages without
the cache and on 100 % with it, as agents run it; so a switch, not the default). int8 dynamic
quantisation is not offered: it kept the argmax on only 43-48 % of those pages (the policy README
has the measurements).
"""

from __future__ import annotations

import hashlib
import math
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch

from webshop_trl.agents.search_policy import SearchPolicy, make_search_policy
from webshop_trl.datasets.decision_steps import KEEP_FIRST, KEEP_RANDOM
from webshop_trl.errors import WebShopTrlError

SEARCH_PLACEHOLDER = "search[<query>]"
# how PolicyAgent computes scores: plain fp32 or bfloat16 autocast
INFERENCE_MODES = ("fp32", "bf16")


class PolicyCheckpointError(WebShopTrlError):
    """A policy checkpoint folder is missing or cannot be loaded; the message says which and why."""


@dataclass
class Decision:
    """What the agent did on one page and why."""

    action: str
    kind: str  # "search", "choice" or "fallback"
    candidates: list[str] = field(default_factory=list)  # the scored click actions (choice only)
    index: int | None = None  # the chosen candidate
    log_prob: float | None = None  # log pi(chosen | page), untempered
    query: str | None = None  # the search query (search only)


def episode_seed(*parts: Any) -> int:
    """A stable 63-bit seed from the parts (Python's hash() of str is salted per process)."""
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") & (2**63 - 1)


def load_policy(checkpoint: str | os.PathLike, device: str | torch.device | None = None) -> Any:
    """`ActionScorerModel.from_pretrained(checkpoint)` in eval mode, with its processor; clear
    errors for a missing folder, a folder that is no checkpoint, or one without tokenizer files."""
    from webshop_trl.policy import ActionScorerModel

    path = Path(os.path.expanduser(os.fspath(checkpoint)))
    if not path.exists():
        raise PolicyCheckpointError(f"policy checkpoint not found: {path} (a folder saved by ActionScorerModel.save_pretrained)")
    if not path.is_dir():
        raise PolicyCheckpointError(f"policy checkpoint {path} is a file; give the folder saved by ActionScorerModel.save_pretrained")
    if not (path / "config.json").is_file():
        raise PolicyCheckpointError(f"{path} is not a policy checkpoint: it has no config.json")
    try:
        model = ActionScorerModel.from_pretrained(path)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise PolicyCheckpointError(f"cannot load the policy checkpoint {path}: {exc}") from None
    if not isinstance(model, ActionScorerModel):
        raise PolicyCheckpointError(f"{path} holds a {type(model).__name__}, not an ActionScorerModel")
    if model.processor is None:
        raise PolicyCheckpointError(f"{path} has no tokenizer / processor files (save the model with its processor attached)")
    if device is not None:
        model.to(device)
    return model.eval()


class PolicyAgent:
    """Search policy + BERT choice policy; see the module docstring.

    Args:
        checkpoint: folder of a saved `ActionScorerModel` (with its processor).
        model: an `ActionScorerModel` object instead of ``checkpoint``.
        query_source: ``"instruction"`` (default), ``"human"``, ``"seq2seq"`` (with
            ``query_model``), or a `SearchPolicy` object.
        query_model: path of the seq2seq query model.
        greedy: take the argmax (else sample).
        temperature: sampling temperature (> 0; 0 means greedy).
        seed: seed of the sampled decisions (and of sampled human/seq2seq query picks).
        query_pick: ``"first"`` or ``"sample"`` for the human/seq2seq sources.
        device: torch device of the model (default: where it is, CPU when loaded here).
        batch_size: pages per forward pass (default: all pages of a step in one).
        max_candidates: WebShop's test-time cap (first 6 + 10 drawn) above this many clicks.
        data_dir: folder with goal_query_map.json (human source).
        bf16: bfloat16 autocast (None: the model config's ``bf16``); ``inference="bf16"`` is the same.
        inference: ``"fp32"`` or ``"bf16"`` (see the module docstring); default: bf16 if ``bf16``
            is true, else fp32.
        encoding_cache: reuse encoder states across steps and episodes (True: the model's cache,
            enabled with the default bounds if it has none; False: off; or an `EncodingCache`).
        name: the name reports use (default: built from the checkpoint and settings).
    """

    def __init__(
        self,
        checkpoint: str | os.PathLike | None = None,
        *,
        model: Any = None,
        query_source: str | SearchPolicy = "instruction",
        query_model: str | os.PathLike | None = None,
        greedy: bool = False,
        temperature: float = 1.0,
        seed: int = 0,
        query_pick: str = "first",
        device: str | None = None,
        batch_size: int | None = None,
        max_candidates: int | None = None,
        data_dir: str | os.PathLike | None = None,
        bf16: bool | None = None,
        inference: str | None = None,
        encoding_cache: bool | Any = True,
        name: str | None = None,
    ):
        if (checkpoint is None) == (model is None):
            raise PolicyCheckpointError("PolicyAgent needs exactly one of checkpoint=PATH or model=ActionScorerModel")
        temperature = float(temperature)
        if math.isnan(temperature) or temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        if temperature == 0:
            greedy = True
        if max_candidates is not None and max_candidates < KEEP_FIRST + KEEP_RANDOM:
            raise ValueError(f"max_candidates must be >= {KEEP_FIRST + KEEP_RANDOM} (the cap keeps {KEEP_FIRST} + {KEEP_RANDOM}), got {max_candidates}")
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        inference_given = inference is not None
        if inference is None:
            inference = "bf16" if bf16 else "fp32"
        if inference not in INFERENCE_MODES:
            raise ValueError(f"inference must be one of {', '.join(INFERENCE_MODES)}, got {inference!r}")
        if (inference == "bf16" and bf16 is False) or (inference != "bf16" and bf16):
            raise ValueError(f"bf16={bf16} contradicts inference={inference!r}")
        if not isinstance(encoding_cache, bool):
            from webshop_trl.policy.encoding_cache import EncodingCache

            if not isinstance(encoding_cache, EncodingCache):
                raise TypeError(f"encoding_cache must be True, False or an EncodingCache, got {type(encoding_cache).__name__}")
        if model is None:
            model = load_policy(checkpoint, device)
        else:
            if getattr(model, "processor", None) is None:
                raise PolicyCheckpointError("the model has no processor attached (model.attach_processor(...))")
            if device is not None:
                model.to(device)
            model.eval()
        self.model = model
        self.checkpoint = None if checkpoint is None else os.fspath(checkpoint)
        self.search = make_search_policy(query_source, model=query_model, data_dir=data_dir, pick=query_pick, device=device)
        self.greedy = bool(greedy)
        self.temperature = temperature if not self.greedy else 0.0
        self.seed = int(seed)
        self.batch_size = batch_size
        self.max_candidates = max_candidates
        if not inference_given and bf16 is None and getattr(getattr(model, "config", None), "bf16", False) is True:
            inference = "bf16"  # neither given: the model config's setting, as score() would use it
        self.inference = inference
        self.bf16 = inference == "bf16"
        if encoding_cache is True:
            existing = getattr(model, "encoding_cache", None)
            encoding_cache = existing if existing is not None else model.enable_encoding_cache()
        self.encoding_cache = encoding_cache  # an EncodingCache, or False
        self.name = name or self._default_name()
        self.stats = {"act_calls": 0, "score_calls": 0, "pages_scored": 0, "searches": 0, "fallbacks": 0, "capped_pages": 0}
        self._attempts: dict[Any, int] = {}

    def _default_name(self) -> str:
        base = Path(self.checkpoint).name if self.checkpoint else "model"
        mode = "greedy" if self.greedy else f"t{self.temperature:g}"
        search = self.search.name.replace(":", "-").replace("/", "-")
        precision = "" if self.inference == "fp32" else f"-{self.inference}"
        return f"policy-{base}-{mode}-{search}{precision}"

    def reset(self, seed: int | None = None) -> None:
        """Forget the episode counts (and optionally change the seed): the next run draws as a fresh agent."""
        self._attempts.clear()
        if seed is not None:
            self.seed = int(seed)

    # ------------------------------------------------------------------ acting
    def act(self, observations: Sequence[str], infos: Sequence[dict[str, Any]]) -> list[str]:
        return [d.action for d in self.decide(observations, infos)]

    def decide(self, observations: Sequence[str], infos: Sequence[dict[str, Any]]) -> list[Decision]:
        """The decision on each page (what `act` returns, with candidates and log-probs)."""
        if len(observations) != len(infos):
            raise ValueError(f"got {len(observations)} observations and {len(infos)} infos")
        self.stats["act_calls"] += 1
        keys = [self._episode_key(info, i) for i, info in enumerate(infos)]
        decisions: list[Decision | None] = [None] * len(infos)
        search_pages: list[int] = []
        choice_pages: list[int] = []
        choice_cands: list[list[str]] = []
        for i, info in enumerate(infos):
            actions = list(info.get("available_actions") or [])
            clicks = [a for a in actions if a.startswith("click[")]
            if info.get("page_type") == "search" or (not clicks and SEARCH_PLACEHOLDER in actions):
                search_pages.append(i)
            elif not clicks:
                self.stats["fallbacks"] += 1
                decisions[i] = Decision("click[back to search]", "fallback")
            else:
                choice_pages.append(i)
                choice_cands.append(self._cap(clicks, keys[i]))
        if search_pages:
            self._search(search_pages, infos, keys, decisions)
        if choice_pages:
            self._choose(choice_pages, choice_cands, observations, keys, decisions)
        return decisions  # type: ignore[return-value]

    def _episode_key(self, info: dict[str, Any], position: int) -> tuple:
        goal = info.get("goal_index")
        if goal is None:
            goal = ("no-goal", position)
        step = int(info.get("step", 0) or 0)
        if step == 0:
            self._attempts[goal] = self._attempts.get(goal, 0) + 1
        attempt = max(self._attempts.get(goal, 1), 1) - 1
        return (self.seed, goal, attempt, step)

    def _rng(self, key: tuple, what: str) -> random.Random:
        return random.Random(episode_seed(*key, what))

    def _cap(self, clicks: list[str], key: tuple) -> list[str]:
        if self.max_candidates is None or len(clicks) <= self.max_candidates:
            return clicks
        self.stats["capped_pages"] += 1
        rest = clicks[KEEP_FIRST:]
        picked = sorted(self._rng(key, "cap").sample(range(len(rest)), KEEP_RANDOM))
        return clicks[:KEEP_FIRST] + [rest[k] for k in picked]

    def _search(self, pages: list[int], infos, keys, decisions) -> None:
        instructions = [str(infos[i].get("instruction") or "") for i in pages]
        rngs = [self._rng(keys[i], "query") for i in pages]
        queries = self.search.queries(instructions, rngs)
        self.stats["searches"] += len(pages)
        for i, q in zip(pages, queries):
            decisions[i] = Decision(f"search[{q}]", "search", query=q)

    @property
    def cache_stats(self) -> dict[str, Any] | None:
        """Hits, misses, evictions, invalidations of the encoding cache (None when off)."""
        return None if self.encoding_cache is False else self.encoding_cache.stats.as_dict()

    def _choose(self, pages: list[int], cands: list[list[str]], observations, keys, decisions) -> None:
        log_probs = self.model.score(
            [observations[i] for i in pages], cands, bf16=self.bf16, batch_size=self.batch_size, cache=self.encoding_cache
        )
        self.stats["score_calls"] += 1
        self.stats["pages_scored"] += len(pages)
        for i, page_cands, lp in zip(pages, cands, log_probs):
            lp = lp.double()
            if self.greedy:
                j = int(torch.argmax(lp))
            else:
                probs = torch.softmax(lp / self.temperature, dim=-1)
                gen = torch.Generator().manual_seed(episode_seed(*keys[i], "choice"))
                j = int(torch.multinomial(probs, 1, generator=gen))
            decisions[i] = Decision(page_cands[j], "choice", candidates=page_cands, index=j, log_prob=float(lp[j]))


__all__ = ["PolicyAgent", "PolicyCheckpointError", "Decision", "load_policy", "episode_seed", "INFERENCE_MODES"]
