"""The scripted expert: an oracle that knows the goal and shops like a (noisy) human expert.

How it decides, before its first action (the environment is deterministic, so the whole episode
can be planned from the goal, the catalog and the search engine):

1. **Queries.** It builds the queries of ``ExpertConfig.queries`` from the goal (the instruction,
   its keywords, the instruction without options and price, WebShop's human query when there is
   one) and runs each through the same search the environment uses.
2. **Products.** For every product a query shows within ``max_pages`` pages it computes the best
   reward that product can earn: the option values that match the most goal options (one value
   per option group, exhaustively over the values that match anything), then the real reward
   (`webshop_trl.reward.get_reward`, with the environment's reward settings) with those options.
   It picks the goal's own product when that is as good as anything in reach
   (``prefer_target``), else the best-ranked product with the best reward, so it also buys an
   equally good product (reward 1.0) when the target is out of reach.
3. **Query choice.** Of the queries that reach the best pick, the one showing it on the earliest
   page (``query_choice='best_page'``). The ``fallback_queries`` (by default the target's
   title) are tried only when no regular query reaches a pick as good as the fallback's.
4. **Actions.** search, ``next >`` to the pick's page, open it, click each chosen option value,
   ``buy now``; with noise (see `ExpertConfig`), detours are woven in while the essential
   actions still fit in the step limit, so noise never costs the purchase.

`ExpertAgent.plan(goal_index)` returns that plan (`EpisodePlan`); `ExpertAgent.act` follows it
under the `Agent` protocol, so `evaluate_agent` can run the expert like any other agent.
"""

from __future__ import annotations

import itertools
import json
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from webshop_trl.data.catalog import Catalog, Product
from webshop_trl.data.goals import Goal
from webshop_trl.envs.config import WebShopConfig
from webshop_trl.envs.pages import RESULTS_PER_PAGE, SUB_PAGES
from webshop_trl.experts.config import ExpertConfig
from webshop_trl.reward import RewardBreakdown, RewardConfig, get_reward, is_fuzzy_match, normalize_color
from webshop_trl.reward.matching import goal_option_targets

PERFECT = 1.0 - 1e-9  # a reward this high counts as 1.0 (the reward is a ratio of small integers)
_EPS = 1e-9
_PRICE_CLAUSE = re.compile(r",? and price lower than [0-9.]+ dollars\s*$")
# Values that are also buttons of the item page: clicking them presses the button instead.
_ITEM_BUTTONS = frozenset({"back to search", "< prev", "buy now", "search", *SUB_PAGES})
_MAX_OPTION_COMBOS = 20_000
# words left out of a vague query (instructions start "find me ...", "i am looking for ...")
_FILLER = frozenset("find me i am looking for need want would like a an the with and that is are it to of some please".split())


# ---------------------------------------------------------------------------- queries


def clean_query(text: str) -> str:
    """A query the environment accepts and searches verbatim: lowercased, no brackets (which
    would break the ``search[...]`` parse), single spaces."""
    return " ".join(text.replace("[", " ").replace("]", " ").lower().split())


def instruction_key(text: str) -> str:
    """The key of WebShop's goal_query_map.json for an instruction: lowercased, price clause and
    quotes removed (as WebShop's human_goals.json normalises instructions)."""
    text = _PRICE_CLAUSE.sub("", text.strip()).lower()
    return text.replace('"', "").replace("'", "").strip().strip(".")


def core_instruction(goal: Goal) -> str:
    """The instruction without its price clause and, for synthetic goals, the options clause."""
    text = _PRICE_CLAUSE.sub("", goal.instruction_text.strip())
    if isinstance(goal.goal_options, dict) and goal.goal_options:
        suffix = " with " + ", and ".join(f"{n}: {v}" for n, v in goal.goal_options.items())
        if text.endswith(suffix):
            text = text[: -len(suffix)]
    return text


def _dedupe_words(parts: Sequence[str]) -> str:
    seen: set[str] = set()
    words = []
    for part in parts:
        for w in part.lower().split():
            if w not in seen:
                seen.add(w)
                words.append(w)
    return " ".join(words)


def candidate_queries(goal: Goal, kinds: Sequence[str], human_queries: Mapping[str, Sequence[str]] | None = None) -> list[tuple[str, str]]:
    """(kind, query) pairs for ``kinds``, in order, cleaned and without repeats."""
    out: list[tuple[str, str]] = []
    seen: set[str] = set()

    def add(kind: str, text: str) -> None:
        q = clean_query(text)
        if q and q not in seen:
            seen.add(q)
            out.append((kind, q))

    for kind in kinds:
        if kind == "human":
            for q in (human_queries or {}).get(instruction_key(goal.instruction_text), []):
                add(kind, q)
        elif kind == "instruction":
            add(kind, goal.instruction_text)
        elif kind == "keywords":
            add(kind, _dedupe_words([goal.query, *goal.attributes, *goal.option_values]))
        elif kind == "core":
            add(kind, core_instruction(goal))
        elif kind == "category":
            add(kind, goal.query)
        elif kind == "title":
            add(kind, goal.name)
        else:
            raise ValueError(f"unknown query kind {kind!r}")
    return out


def load_human_queries(data_dir: str | Path | None) -> dict[str, list[str]]:
    """WebShop's goal_query_map.json (human instruction -> the queries people typed), keyed by
    `instruction_key`; {} when the file is absent."""
    from webshop_trl import paths

    folder = Path(data_dir) if data_dir else paths.webshop_data_dir()
    path = folder / "goal_query_map.json"
    if not path.is_file():
        return {}
    raw = json.loads(path.read_text(encoding="utf-8"))
    return {instruction_key(k): [str(q) for q in v] for k, v in raw.items() if isinstance(v, list)}


# ---------------------------------------------------------------------------- scoring


@dataclass(frozen=True)
class ScoredProduct:
    """The best a product can do for a goal: the reward with the best option values."""

    asin: str
    reward: float
    options: dict[str, str]  # option name -> value to click, in the product page's group order
    breakdown: RewardBreakdown


def selectable_values(product: Product) -> dict[str, list[str]]:
    """Per option group, the values a click can select in that group.

    Clicking a value sets the *last* group that holds it (WebShop's clickable map), the click's
    argument is lowercased, and a value named like an item-page button presses the button; such
    values are left out.
    """
    owner: dict[str, str] = {}
    for name, values in product.options.items():
        for v in values:
            owner[v] = name
    out: dict[str, list[str]] = {}
    for name, values in product.options.items():
        keep: list[str] = []
        for v in values:
            if owner[v] == name and v == v.lower() and v.strip() and v not in _ITEM_BUTTONS and "[" not in v and "]" not in v and v not in keep:
                keep.append(v)
        out[name] = keep
    return out


def best_options(product: Product, goal: Goal, faithful_quirks: bool = True) -> dict[str, str]:
    """Option values (at most one per group) that match the most goal options.

    Ties go to values that are the goal's own values (the target product then gets exactly the
    goal's options, also those the reward's quirks cannot match), then to fewer clicks. Exhaustive over the values that match some goal
    option; greedy per group when that would exceed ``_MAX_OPTION_COMBOS`` combinations.
    """
    targets = goal_option_targets(goal.goal_options, faithful_quirks)
    if not targets or not product.options:
        return {}
    wanted = goal.goal_options if isinstance(goal.goal_options, dict) else None
    wanted_values = set(goal.option_values)
    groups: list[tuple[str, list[tuple[str, frozenset[int], bool]]]] = []
    for name, values in selectable_values(product).items():
        useful = []
        for v in values:
            norm = normalize_color(v)
            matched = frozenset(j for j, t in enumerate(targets) if is_fuzzy_match(norm, t))
            exact = (wanted.get(name) == v) if wanted is not None else (v in wanted_values)
            # the goal's own values are kept even when the reward cannot see them (a person
            # asked for "color: 1877blue" clicks it, though normalize_color hides the match)
            if matched or exact:
                useful.append((v, matched, exact))
        if useful:
            groups.append((name, useful))
    if not groups:
        return {}

    def key(choice: Sequence[tuple[str, frozenset[int], bool] | None]) -> tuple[int, int, int]:
        covered: set[int] = set()
        exact = clicks = 0
        for c in choice:
            if c is not None:
                covered |= c[1]
                exact += c[2]
                clicks += 1
        return (len(covered), exact, -clicks)

    n_combos = 1
    for _, useful in groups:
        n_combos *= len(useful) + 1
    if n_combos <= _MAX_OPTION_COMBOS:
        best = max(itertools.product(*([None, *useful] for _, useful in groups)), key=key)
    else:  # greedy: each group's value adding the most, given the groups before it
        best = []
        for _, useful in groups:
            best.append(max([None, *useful], key=lambda c: key([*best, c])))
    return {name: c[0] for (name, _), c in zip(groups, best) if c is not None}


def unmatched_goal_options(goal: Goal, selected: Mapping[str, str], faithful_quirks: bool = True) -> list[str]:
    """The goal option values that no selected value matches (as the reward counts them)."""
    targets = goal_option_targets(goal.goal_options, faithful_quirks)
    have = [normalize_color(v) for v in selected.values()]
    return [value for value, t in zip(goal.option_values, targets) if not any(is_fuzzy_match(h, t) for h in have)]


class ProductScorer:
    """Best rewards of products for one goal, cached (a product appears under several queries)."""

    def __init__(self, catalog: Catalog, goal: Goal, reward_config: RewardConfig):
        self.catalog = catalog
        self.goal = goal
        self.reward_config = reward_config
        self._cache: dict[str, ScoredProduct] = {}

    def __call__(self, asin: str) -> ScoredProduct:
        scored = self._cache.get(asin)
        if scored is None:
            product = self.catalog.by_asin[asin]
            options = best_options(product, self.goal, self.reward_config.faithful_quirks)
            breakdown = get_reward(product, self.goal, product.reward_price, options, self.reward_config)
            scored = self._cache[asin] = ScoredProduct(asin, breakdown.total, options, breakdown)
        return scored


# ---------------------------------------------------------------------------- planning


@dataclass
class QueryOutcome:
    """What one query shows and the best product the expert would buy from it."""

    kind: str
    query: str
    results: list[str]
    target_rank: int | None  # 0-based rank of the goal's product in the results (all 50)
    pick: ScoredProduct | None = None
    pick_rank: int | None = None
    fallback: bool = False

    @property
    def pick_page(self) -> int | None:
        return None if self.pick_rank is None else self.pick_rank // RESULTS_PER_PAGE

    def summary(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "query": self.query, "results": len(self.results), "target_rank": self.target_rank,
            "pick": self.pick.asin if self.pick else None, "pick_rank": self.pick_rank,
            "pick_reward": round(self.pick.reward, 6) if self.pick else None, "fallback": self.fallback,
        }


@dataclass
class EpisodePlan:
    """Everything the expert decided for one goal, and why."""

    goal_index: int
    actions: list[str]
    query_kind: str | None
    query: str | None
    pick: ScoredProduct | None
    pick_rank: int | None
    target_asin: str
    target_found: bool  # the goal's product is in the top 50 of some query tried
    target: ScoredProduct  # the goal's own product with its best options (whether found or not)
    best_in_reach: float  # best reward of any product shown by any query tried
    outcomes: list[QueryOutcome]
    noise_events: list[dict[str, Any]] = field(default_factory=list)
    essential_steps: int = 0
    target_unmatched_options: list[str] = field(default_factory=list)
    # the goal's product with the goal's options under the corrected option comparison
    # (faithful_reward_quirks=False); set only when the target scores below 1.0
    target_corrected_reward: float | None = None

    @property
    def expected_reward(self) -> float:
        return self.pick.reward if self.pick else 0.0

    def failure(self) -> tuple[str | None, str | None]:
        """Why the planned purchase scores below 1.0: (class, detail), or (None, None)."""
        if self.expected_reward >= PERFECT:
            return None, None
        if self.pick is None:
            return "no_results", "no query tried returned any product"
        if self.essential_steps and not self.actions:
            return "step_limit", f"{self.essential_steps} essential steps exceed the step limit"
        if self.target.reward < PERFECT:
            return self.target_failure()
        if not self.target_found:
            return "target_not_found", "the goal's product is not in the top 50 of any query tried, and no product shown scores 1.0"
        return "other", f"target found but the pick scores {self.expected_reward:.3f}"

    def target_failure(self) -> tuple[str, str]:
        """Which reward part keeps the goal's own product below 1.0 even with its best options."""
        b = self.target.breakdown
        parts = []
        if b.r_option is not None and b.r_option < PERFECT:
            parts.append("options")
        if b.r_att is not None and b.r_att < PERFECT:
            parts.append("attributes")
        if b.r_price < PERFECT:
            parts.append("price")
        if b.r_type < PERFECT:
            parts.append("type")
        if "options" in parts:
            missed = self.target_unmatched_options
            quirk = bool(missed) and all(normalize_color(v) != v for v in missed)
            parts[parts.index("options")] = "options/normalize_color" if quirk else "options/fuzzy"
        detail = (
            f"the goal's own product scores {self.target.reward:.3f} at best "
            f"(r_att={b.r_att}, r_option={b.r_option}, r_price={b.r_price}, r_type={b.r_type}); "
            f"best in reach {self.best_in_reach:.3f}"
        )
        missed = self.target_unmatched_options
        if missed:
            detail += f"; unmatched goal options {missed} (normalize_color: {[normalize_color(v) for v in missed]})"
        if self.target_corrected_reward is not None:
            detail += f"; with faithful_reward_quirks=False: {self.target_corrected_reward:.3f}"
        return "goal_product_below_1:" + "+".join(parts or ["?"]), detail


class ExpertAgent:
    """The oracle: plans an episode per goal (`plan`) and follows it (`act`, the Agent protocol).

    Build it from the environment it will act in (``ExpertAgent(env=env)``) or from a
    `WebShopConfig` (it then shares that config's catalog/search backend with any environment
    made from the same config).
    """

    name = "expert"

    def __init__(
        self,
        config: ExpertConfig | None = None,
        env_config: WebShopConfig | None = None,
        *,
        env: Any = None,
        human_queries: Mapping[str, Sequence[str]] | None = None,
    ):
        from webshop_trl.envs.backend import get_backend

        self.config = config or ExpertConfig()
        if env is not None:
            self.env_config = env.config
            self.backend = env.backend
        else:
            self.env_config = env_config or WebShopConfig()
            self.backend = get_backend(self.env_config)
        self.reward_config = RewardConfig(faithful_quirks=self.env_config.faithful_reward_quirks)
        needs_human = "human" in (*self.config.queries, *self.config.fallback_queries)
        if human_queries is None:
            human_queries = load_human_queries(self.env_config.data_dir) if needs_human else {}
        self.human_queries = human_queries
        self._plans: dict[int, tuple[EpisodePlan, int]] = {}

    @property
    def catalog(self) -> Catalog:
        return self.backend.catalog

    def episode_rng(self, goal_index: int) -> random.Random:
        return random.Random(f"{self.config.seed}:{goal_index}")

    # ------------------------------------------------------------------ search and choice
    def _search(self, query: str) -> list[str]:
        # exactly what WebShopEnv does with search[query]: lowercased arg split on single spaces
        return self.backend.search_asins(query.lower().split(" "))

    def _evaluate(self, kind: str, query: str, goal: Goal, scorer: ProductScorer, fallback: bool) -> QueryOutcome:
        results = self._search(query)
        target_rank = results.index(goal.asin) if goal.asin in results else None
        outcome = QueryOutcome(kind, query, results, target_rank, fallback=fallback)
        reach = results[: self.config.max_pages * RESULTS_PER_PAGE]
        if not reach:
            return outcome
        # the goal's product at 1.0 cannot be beaten: skip scoring the others
        if self.config.prefer_target and target_rank is not None and target_rank < len(reach):
            target = scorer(goal.asin)
            if target.reward >= PERFECT:
                outcome.pick, outcome.pick_rank = target, target_rank
                return outcome
        scored = [scorer(a) for a in reach]
        top = max(s.reward for s in scored)
        rank = next(r for r, s in enumerate(scored) if s.reward >= top - _EPS)
        if self.config.prefer_target and target_rank is not None and target_rank < len(reach):
            if scored[target_rank].reward >= top - _EPS:
                rank = target_rank
        outcome.pick, outcome.pick_rank = scored[rank], rank
        return outcome

    def _outcome_key(self, o: QueryOutcome, goal: Goal) -> tuple[float, int]:
        if o.pick is None:
            return (-1.0, 0)
        is_target = int(self.config.prefer_target and o.pick.asin == goal.asin)
        return (round(o.pick.reward, 9), is_target)

    def _choose(self, goal: Goal, scorer: ProductScorer) -> tuple[QueryOutcome | None, list[QueryOutcome]]:
        cfg = self.config
        ideal = (1.0, int(cfg.prefer_target))
        outcomes: list[QueryOutcome] = []
        for kind, query in candidate_queries(goal, cfg.queries, self.human_queries):
            o = self._evaluate(kind, query, goal, scorer, fallback=False)
            outcomes.append(o)
            if self._outcome_key(o, goal) >= ideal and (cfg.query_choice == "first" or o.pick_page == 0):
                break  # nothing can beat it
        primary_best = max((self._outcome_key(o, goal) for o in outcomes), default=(-1.0, 0))
        if primary_best < ideal and cfg.fallback_queries:
            seen = {o.query for o in outcomes}
            for kind, query in candidate_queries(goal, cfg.fallback_queries, self.human_queries):
                if query not in seen:
                    outcomes.append(self._evaluate(kind, query, goal, scorer, fallback=True))
        if not any(o.pick for o in outcomes):
            return None, outcomes
        best = max(self._outcome_key(o, goal) for o in outcomes)
        reaching = [o for o in outcomes if self._outcome_key(o, goal) == best]
        primary = [o for o in reaching if not o.fallback]
        reaching = primary or reaching
        if cfg.query_choice == "first":
            return reaching[0], outcomes
        return min(reaching, key=lambda o: (o.pick_page, outcomes.index(o))), outcomes

    # ------------------------------------------------------------------ plan
    def plan(self, goal_index: int) -> EpisodePlan:
        """The whole episode for a goal: the actions, what they buy and the choices behind them.

        Raises `UnknownGoalError` for an index the goal set does not have.
        """
        goal = self.backend.goals[goal_index]
        scorer = ProductScorer(self.catalog, goal, self.reward_config)
        chosen, outcomes = self._choose(goal, scorer)
        target = scorer(goal.asin)
        # a query's pick is the best of what it shows (the target shortcut only fires at 1.0)
        best_in_reach = max((o.pick.reward for o in outcomes if o.pick is not None), default=0.0)
        plan = EpisodePlan(
            goal_index=goal.index, actions=[], query_kind=chosen.kind if chosen else None,
            query=chosen.query if chosen else None, pick=chosen.pick if chosen else None,
            pick_rank=chosen.pick_rank if chosen else None, target_asin=goal.asin,
            target_found=any(o.target_rank is not None for o in outcomes), target=target,
            best_in_reach=best_in_reach,
            outcomes=outcomes,
        )
        if target.reward < PERFECT:
            plan.target_unmatched_options = unmatched_goal_options(goal, target.options, self.reward_config.faithful_quirks)
            product = self.catalog.by_asin[goal.asin]
            corrected = RewardConfig(faithful_quirks=False, spacy_model=self.reward_config.spacy_model)
            options = best_options(product, goal, faithful_quirks=False)
            plan.target_corrected_reward = get_reward(product, goal, product.reward_price, options, corrected).total
        rng = self.episode_rng(goal.index)
        if chosen is None:
            # nothing to buy anywhere: search once so the demo shows the attempt
            queries = candidate_queries(goal, self.config.queries or self.config.fallback_queries, self.human_queries)
            plan.actions = [f"search[{queries[0][1]}]"] if queries else []
            return plan
        _ActionBuilder(self, goal, chosen, rng, plan).build()
        return plan

    # ------------------------------------------------------------------ Agent protocol
    def act(self, observations: Sequence[str], infos: Sequence[dict[str, Any]]) -> list[str]:
        """One action per session: the next action of that goal's plan (planned at step 0)."""
        return [self._act_one(info) for info in infos]

    def _act_one(self, info: dict[str, Any]) -> str:
        goal_index = int(info["goal_index"])
        step = int(info["step"])
        if step == 0 or goal_index not in self._plans:
            self._plans[goal_index] = (self.plan(goal_index), step)
        plan, start = self._plans[goal_index]
        k = step - start
        if k < len(plan.actions):
            return plan.actions[k]
        # past the plan (only when nothing could be bought): leave the episode to the step limit
        available = info.get("available_actions", [])
        return "click[buy now]" if "click[buy now]" in available else "click[back to search]"


class _ActionBuilder:
    """Turns a chosen (query, product, options) into actions, weaving in budgeted noise."""

    def __init__(self, agent: ExpertAgent, goal: Goal, chosen: QueryOutcome, rng: random.Random, plan: EpisodePlan):
        self.cfg = agent.config
        self.agent = agent
        self.goal = goal
        self.chosen = chosen
        self.rng = rng
        self.plan = plan
        self.actions: list[str] = []
        self.events: list[dict[str, Any]] = []
        self.detours = 0
        pick = chosen.pick
        assert pick is not None and chosen.pick_rank is not None
        self.pick = pick
        self.page = chosen.pick_rank // RESULTS_PER_PAGE
        self.essential = 1 + self.page + 1 + len(pick.options) + 1  # search, pages, open, options, buy
        self.budget = min(self.cfg.max_noise_steps, agent.env_config.step_limit - self.essential)

    # budget: a noise segment is added only if it fits whole
    def _afford(self, cost: int) -> bool:
        if cost <= self.budget:
            self.budget -= cost
            return True
        return False

    def _event(self, kind: str, n: int, **detail: Any) -> None:
        self.events.append({"kind": kind, "at": len(self.actions) - n, "steps": n, **detail})

    def _noise(self, kind: str, actions: list[str], **detail: Any) -> bool:
        if not self._afford(len(actions)):
            return False
        self.actions += actions
        self._event(kind, len(actions), **detail)
        return True

    def _subpage(self, not_this: str | None = None) -> str:
        return self.rng.choice([p for p in ("description", "description", "features", "features", "reviews") if p != not_this])

    def _detour(self, results: list[str], page: int) -> None:
        """Open a product of this results page that is not the pick, maybe read it, go back."""
        on_page = results[page * RESULTS_PER_PAGE : (page + 1) * RESULTS_PER_PAGE]
        others = [a for a in on_page if a != self.pick.asin]
        if not others or self.detours >= self.cfg.max_detours:
            return
        asin = self.rng.choice(others)
        acts = [f"click[{asin.lower()}]"]
        sub = None
        if self.rng.random() < self.cfg.p_detour_subpage:
            sub = self._subpage()
            acts += [f"click[{sub}]", "click[< prev]"]
        acts.append("click[< prev]")
        if self._noise("detour", acts, asin=asin, sub_page=sub):
            self.detours += 1

    def _bad_query(self) -> str | None:
        """A vaguer query than the chosen one: the category, or a few instruction words."""
        good = self.chosen.query
        words = [w for w in clean_query(core_instruction(self.goal)).replace(",", " ").split() if w not in _FILLER]
        options = []
        category = clean_query(self.goal.query)
        if category and category != good:
            options.append(category)
        if len(words) >= 4:
            k = self.rng.randint(2, max(2, len(words) // 3))
            start = self.rng.randrange(0, len(words) - k + 1)
            partial = " ".join(words[start : start + k])
            if partial != good:
                options.append(partial)
        return self.rng.choice(options) if options else None

    def build(self) -> None:
        cfg, rng = self.cfg, self.rng
        if self.budget < 0:
            self.plan.essential_steps = self.essential
            return  # cannot even buy within the step limit (a tiny step_limit)
        results = self.chosen.results
        # 1. a vaguer search first
        if rng.random() < cfg.p_bad_search:
            bad = self._bad_query()
            if bad is not None and self.budget >= 2:
                bad_results = self.agent._search(bad)
                start = len(self.actions)
                if self._afford(2):
                    self.actions.append(f"search[{bad}]")
                    if len(bad_results) > RESULTS_PER_PAGE and rng.random() < 0.3:
                        self._noise("bad_search_page", ["click[next >]"])
                    elif bad_results and rng.random() < 0.5:
                        saved = self.pick
                        self._detour_in(bad_results, saved)
                    self.actions.append("click[back to search]")
                    # its own two steps; what it looked at in between are events of their own
                    self.events.insert(0, {"kind": "bad_search", "at": start, "steps": 2, "span": len(self.actions) - start, "query": bad})
        # 2. the chosen search, paging to the pick (with detours on the pages passed)
        self.actions.append(f"search[{self.chosen.query}]")
        for page in range(self.page + 1):
            if rng.random() < cfg.p_detour:
                self._detour(results, page)
            if page < self.page:
                self.actions.append("click[next >]")
        if rng.random() < cfg.p_extra_page:
            self._noise("extra_page", ["click[next >]", "click[< prev]"])
        # 3. open the pick (maybe go back and reopen it)
        open_pick = f"click[{self.pick.asin.lower()}]"
        self.actions.append(open_pick)
        if rng.random() < cfg.p_reopen:
            self._noise("reopen", ["click[< prev]", open_pick])
        # 4. options, with sub-page looks at random points and misclicks
        steps: list[tuple[str, Any]] = [("option", (name, value)) for name, value in self.pick.options.items()]
        looked: str | None = None
        for _ in range(2):
            if rng.random() < cfg.p_subpage:
                looked = self._subpage(not_this=looked)  # a second look goes to another sub-page
                steps.insert(rng.randint(0, len(steps)), ("subpage", looked))
        choices = selectable_values(self.agent.catalog.by_asin[self.pick.asin])
        for kind, arg in steps:
            if kind == "subpage":
                self._noise("subpage", [f"click[{arg}]", "click[< prev]"], sub_page=arg)
                continue
            name, value = arg
            if rng.random() < cfg.p_wrong_option:
                wrong = [v for v in choices.get(name, []) if v != value]
                if wrong:
                    w = rng.choice(wrong)
                    self._noise("wrong_option", [f"click[{w}]"], option=name, value=w)
            self.actions.append(f"click[{value}]")
        self.actions.append("click[buy now]")
        self.plan.actions = self.actions
        self.plan.noise_events = self.events
        self.plan.essential_steps = self.essential

    def _detour_in(self, results: list[str], pick: ScoredProduct) -> None:
        """A detour on page 1 of a vague query's results (any product may be opened there)."""
        on_page = results[:RESULTS_PER_PAGE]
        if not on_page or self.detours >= self.cfg.max_detours:
            return
        asin = self.rng.choice(on_page)
        if self._noise("detour", [f"click[{asin.lower()}]", "click[< prev]"], asin=asin, sub_page=None, in_bad_search=True):
            self.detours += 1
