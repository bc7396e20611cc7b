"""`WebShopEnv`: WebShop's text environment as a gymnasium.Env (WEBSHOP_SPEC §3).

Observations are rendered straight from the page model (`pages.py`): no web server, no HTML.
Actions are strings, ``search[...]`` or ``click[...]``; ``info["available_actions"]`` lists what
is valid on the new page. Reward is 0 except on ``click[buy now]``, where it is WebShop's reward
and ``info["reward_breakdown"]`` holds its parts.
"""

from __future__ import annotations

import dataclasses
import random
from typing import Any

import gymnasium as gym

from webshop_trl.data.goals import Goal
from webshop_trl.envs.actions import parse_action
from webshop_trl.envs.backend import ShopBackend, get_backend
from webshop_trl.envs.config import WebShopConfig
from webshop_trl.envs.pages import (
    SUB_PAGES,
    PageType,
    SessionState,
    build_page,
    clickables,
    render_text,
    render_text_rich,
)
from webshop_trl.errors import InvalidActionError, WebShopTrlError
from webshop_trl.reward import RewardConfig, get_reward


class EpisodeOverError(WebShopTrlError, RuntimeError):
    """step() after the episode ended (a purchase or the step limit): call reset() first."""


class AnyText(gym.spaces.Space):
    """A space of arbitrary strings (page texts and free-form actions)."""

    def __init__(self, examples: tuple[str, ...] = ("click[buy now]",)):
        super().__init__(shape=None, dtype=None)
        self._examples = examples

    def contains(self, x: Any) -> bool:
        return isinstance(x, str)

    def sample(self, mask: Any = None, probability: Any = None) -> str:
        return self._examples[int(self.np_random.integers(len(self._examples)))]

    def __repr__(self) -> str:
        return "AnyText()"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AnyText)


class WebShopEnv(gym.Env):
    """WebShop's text shopping environment.

    ``reset(seed=..., options={"goal_index": i})`` fixes the goal; ``options={"split": "test"}``
    draws one from a split (``"split_mode": "product"`` for the product split); no options draws
    from all goals by weight, as WebShop does.

    ``options={"instruction": "i need a red dress under 40 dollars"}`` plays a free-text request
    that is no goal of the goal set (the agent-as-recommender use): the pages show that
    instruction, ``env.goal`` is None, every info has ``goal_known=False`` and ``goal_index=None``,
    and buying ends the episode with reward 0.0 and ``info["reward_breakdown"] = None`` (there is
    nothing to score against). It cannot be combined with ``goal_index`` or ``split``.
    """

    metadata = {"render_modes": ["ansi", "human"]}

    def __init__(self, config: WebShopConfig | None = None, render_mode: str | None = None, backend: ShopBackend | None = None, **overrides: Any):
        config = dataclasses.replace(config or WebShopConfig(), **overrides)
        if config.observation_mode not in ("text", "text_rich"):
            raise ValueError(f"unknown observation_mode {config.observation_mode!r}: 'text' or 'text_rich'")
        if config.step_limit < 1:
            raise ValueError(f"step_limit must be >= 1, got {config.step_limit}")
        self.config = config
        self.render_mode = render_mode
        self.backend = backend or get_backend(config)
        self.observation_space = AnyText()
        self.action_space = AnyText(("search[shoes]", "click[back to search]", "click[buy now]"))
        self._reward_config = RewardConfig(faithful_quirks=config.faithful_reward_quirks)
        self._render = render_text if config.observation_mode == "text" else render_text_rich
        self.state: SessionState | None = None
        self.steps = 0
        self._done = False
        self._obs = ""
        self._clickables: list[str] = []
        self._breakdown = None

    # ------------------------------------------------------------------ API
    @property
    def catalog(self):
        return self.backend.catalog

    @property
    def goals(self):
        return self.backend.goals

    @property
    def goal(self) -> Goal | None:
        """The session's goal; None in a free-instruction session (``reset(options={"instruction": ...})``)."""
        if self.state is None:
            raise EpisodeOverError("call reset() before using the environment")
        return self.state.goal

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        options = dict(options or {})
        goal_index = options.pop("goal_index", None)
        split = options.pop("split", None)
        split_mode = options.pop("split_mode", "index")
        instruction = options.pop("instruction", None)
        if options:
            raise ValueError(f"unknown reset options {sorted(options)}: use goal_index, split, split_mode or instruction")
        if instruction is not None:
            if goal_index is not None or split is not None:
                raise ValueError("reset option 'instruction' (a free-text session without a goal) cannot be combined with goal_index or split")
            if not isinstance(instruction, str) or not instruction.strip():
                raise ValueError(f"reset option 'instruction' must be a non-empty string, got {instruction!r}")
            self.state = SessionState(goal=None, instruction=instruction.strip())
            return self._start()
        goals = self.backend.goals
        if goal_index is None:
            pool = goals.split(split, split_mode) if split is not None else None
            if pool is not None and not pool:
                raise ValueError(f"split {split!r} ({split_mode}) has no goals in this catalog")
            rng = random.Random(int(self.np_random.integers(2**63)))
            if self.config.goal_sampling == "uniform":
                candidates = pool if pool is not None else range(len(goals))
                goal_index = candidates[rng.randrange(len(candidates))]
            else:
                goal_index = goals.sample_index(rng, pool)
        self.state = SessionState(goal=goals[goal_index])
        return self._start()

    def _start(self):
        self.steps = 0
        self._done = False
        self._breakdown = None
        self._refresh()
        return self._obs, self._info(valid=True)

    def step(self, action: str):
        if self.state is None or self._done:
            raise EpisodeOverError("the episode is over (purchase made or step limit reached): call reset()")
        self.steps += 1
        reward = 0.0
        terminated = False
        error = self._apply(action)
        info_extra: dict[str, Any] = {}
        if error is not None and self.config.strict:
            self.steps -= 1
            raise InvalidActionError(f"invalid action {str(action)[:200]!r}: {error}")
        if self.state.page is PageType.DONE:
            terminated = True
            reward = float(self.state.reward or 0.0)
            info_extra["reward_breakdown"] = None if self._breakdown is None else self._breakdown.to_dict()
            info_extra["purchased_asin"] = self.state.asin
            info_extra["selected_options"] = dict(self.state.options)
        truncated = not terminated and self.steps >= self.config.step_limit
        self._done = terminated or truncated
        self._refresh()
        info = self._info(valid=error is None)
        if error is not None:
            info["invalid_reason"] = error
        info.update(info_extra)
        return self._obs, reward, terminated, truncated, info

    def get_available_actions(self) -> dict[str, Any]:
        """WebShop's {has_search_bar, clickables} for the current page."""
        return {"has_search_bar": self._search_allowed(), "clickables": list(self._clickables)}

    def render(self):
        if self.render_mode == "human":
            print(self._obs)
            return None
        return self._obs

    # ------------------------------------------------------------ internals
    def _search_allowed(self) -> bool:
        page = self.state.page
        if page is PageType.DONE:
            return False
        return page is PageType.SEARCH or self.config.search_anywhere

    def _refresh(self) -> None:
        segments = build_page(self.state, self.backend.catalog, self.config.header, self.config.show_attrs)
        self._obs = self._render(segments)
        self._clickables = clickables(segments)

    def _info(self, valid: bool) -> dict[str, Any]:
        actions = []
        if self._search_allowed():
            actions.append("search[<query>]")
        actions += [f"click[{c}]" for c in self._clickables if c != "search"]
        return {
            "available_actions": actions,
            "page_type": self.state.page.value,
            "goal_index": None if self.state.goal is None else self.state.goal.index,
            "goal_known": self.state.goal is not None,
            "instruction": self.state.instruction,
            "step": self.steps,
            "valid_action": valid,
        }

    def _apply(self, action: str) -> str | None:
        """Apply one action to the session; return why it was invalid, or None."""
        parsed = parse_action(action)
        if parsed is None:
            return "not of the form search[...] or click[...]"
        state = self.state
        if parsed.name == "search":
            if not self._search_allowed():
                return "search is only allowed on the search page"
            keywords = parsed.arg.split(" ")
            state.keywords = keywords
            state.results = self.backend.search_asins(keywords)
            state.page, state.page_num = PageType.RESULTS, 1
            state.asin, state.options, state.sub_page = None, {}, None
            return None
        if parsed.name != "click":
            return f"unknown action name {parsed.name[:50]!r}: use search or click"
        target = parsed.arg
        if target == "search" or target not in self._clickables:
            return f"{target[:100]!r} is not clickable on this page"
        self._click(target)
        return None

    def _click(self, target: str) -> None:
        state = self.state
        catalog = self.backend.catalog
        if target == "back to search":
            state.clear_search()
        elif state.page is PageType.RESULTS:
            if target == "next >":
                state.page_num += 1
            elif target == "< prev":
                state.page_num -= 1
            else:  # a product link
                state.asin = target.upper()
                state.options = {}
                state.visited.add(state.asin)
                state.page = PageType.ITEM
        elif state.page is PageType.ITEM:
            if target == "< prev":  # re-runs the search: drops the product and its options
                state.page, state.asin, state.options = PageType.RESULTS, None, {}
            elif target in SUB_PAGES:
                state.page, state.sub_page = PageType.SUB_PAGE, target
            elif target == "buy now":
                if state.goal is not None:  # a free-instruction session has nothing to score against
                    product = catalog.by_asin[state.asin]
                    self._breakdown = get_reward(product, state.goal, product.reward_price, state.options, self._reward_config)
                    state.reward = self._breakdown.total
                state.page = PageType.DONE
            else:  # an option value; equal values in two groups: the last group wins (as WebShop)
                product = catalog.by_asin[state.asin]
                name = [n for n, values in product.options.items() if target in values][-1]
                state.options[name] = target
        elif state.page is PageType.SUB_PAGE and target == "< prev":
            state.page, state.sub_page = PageType.ITEM, None
