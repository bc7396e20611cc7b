"""Observations for logged page visits, and a check of logged actions against our environment.

Two separate jobs, kept apart on purpose:

- `render_logged_page` draws the page a worker actually saw (the logged keywords, result ASINs,
  product and options) with our environment's page model, in text_rich form. That is the right
  observation for imitation: it is what the human's choice was based on. It needs every product
  on the page to be in the catalog.
- `EnvReplayer` plays the recovered actions through `WebShopEnv` on the log's goal and reports
  each action our environment would reject, with the reason (a product missing from the
  catalog, a product our search does not return for those keywords, ...). Once an action is
  rejected the environment is on a different page from the worker, so later steps are counted
  as unchecked instead of being checked against the wrong page.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any

from webshop_trl.data.catalog import Catalog
from webshop_trl.data.goals import Goal
from webshop_trl.trajectories.session_logs import LoggedPage

# The log keeps only the ten ASINs of the page shown. WebShop fetches the top 50 hits, and on the
# full catalog a query practically always has 50, so a full page is drawn as one of 50 results.
ASSUMED_RESULTS_TOTAL = 50
_ASIN = re.compile(r"^(b0[a-z0-9]{8}|[0-9]{9}[0-9x])$")  # lowercased ASINs (ISBN-style ones too)


class MissingProducts(LookupError):
    """The page shows products the catalog does not hold, so it cannot be drawn."""

    def __init__(self, asins: list[str]):
        super().__init__(f"not in the catalog: {', '.join(asins)}")
        self.asins = asins


def _results_total(page: LoggedPage) -> int:
    shown = ((page.page_num or 1) - 1) * 10 + len(page.results)
    return shown if len(page.results) < 10 else max(ASSUMED_RESULTS_TOTAL, shown)


def render_logged_page(page: LoggedPage, goal: Goal, visited: set[str], catalog: Catalog, header: str = "WebShop") -> tuple[str, list[str]]:
    """The text_rich observation and available actions of a logged page visit.

    ``visited`` holds the (uppercase) ASINs opened since the last 'back to search', which
    text_rich marks as clicked. Raises `MissingProducts` when the catalog lacks a product the
    page shows.
    """
    from webshop_trl.envs.pages import PageType, SessionState, build_page, clickables, render_text_rich

    needed = page.results if page.kind == "search_results" else [page.asin] if page.asin else []
    missing = [a for a in needed if a.upper() not in catalog.by_asin]
    if missing:
        raise MissingProducts(missing)
    state = SessionState(goal=goal, visited=set(visited))
    if page.kind == "index":
        state.page = PageType.SEARCH
    elif page.kind == "search_results":
        state.page, state.keywords, state.page_num = PageType.RESULTS, list(page.keywords or []), page.page_num or 1
        lo = (state.page_num - 1) * 10
        results = [""] * _results_total(page)
        results[lo : lo + len(page.results)] = [a.upper() for a in page.results]
        state.results = results
    elif page.kind in ("item_page", "item_sub_page"):
        state.page = PageType.ITEM if page.kind == "item_page" else PageType.SUB_PAGE
        state.keywords, state.page_num = list(page.keywords or []), page.page_num or 1
        state.asin, state.options, state.sub_page = page.asin.upper(), dict(page.options), page.sub_page
    else:
        raise ValueError(f"a {page.kind} page has no observation in a trajectory")
    segments = build_page(state, catalog, header)
    if state.page is PageType.SEARCH:
        return render_text_rich(segments), ["search[<query>]"]
    return render_text_rich(segments), [f"click[{c}]" for c in clickables(segments) if c != "search"]


@dataclass
class ReplayReport:
    """How the recovered actions fared in our environment (stored in trajectory metadata)."""

    checked: bool
    reason: str | None = None  # why nothing was checked
    valid_steps: int = 0
    invalid: list[dict[str, Any]] = field(default_factory=list)  # step, action, reason
    unchecked_steps: int = 0  # steps after the first rejected action
    observation_mismatches: list[int] = field(default_factory=list)  # steps whose page differs
    env_reward: float | None = None  # our reward, when the replay reached the purchase

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class EnvReplayer:
    """Replays recovered actions through `WebShopEnv` on a catalog, one episode at a time.

    The search engine is built once, on first use, and shared by all episodes; if it (or the
    environment) cannot be built, every report says why instead of the import failing.
    """

    def __init__(self, catalog: Catalog, search_engine: Any = None, header: str = "WebShop"):
        self.catalog = catalog
        self.header = header
        self._engine = search_engine
        self._unavailable: str | None = None

    def _search_engine(self) -> Any:
        if self._engine is None and self._unavailable is None:
            try:
                from webshop_trl.search.base import SearchConfig, make_search_engine

                self._engine = make_search_engine(self.catalog, SearchConfig())
            except Exception as exc:  # noqa: BLE001 - any failure means: cannot replay here
                self._unavailable = f"no search engine: {type(exc).__name__}: {exc}"
        return self._engine

    def _make_env(self, goal: Goal, n_actions: int) -> Any:
        from webshop_trl.data.goals import GoalSet
        from webshop_trl.envs import WebShopConfig, WebShopEnv
        from webshop_trl.envs.backend import ShopBackend

        engine = self._search_engine()
        if engine is None:
            return None
        # A one-goal goal set on a copy (GoalSet renumbers its goals), so the env plays the log's goal.
        goals = GoalSet([dataclasses.replace(goal)], "human", seed=0)
        backend = ShopBackend(self.catalog, goals, engine, top_k=ASSUMED_RESULTS_TOTAL)
        config = WebShopConfig(goal_kind="human", observation_mode="text_rich", header=self.header, step_limit=max(100, n_actions + 1))
        return WebShopEnv(config, backend=backend)

    def replay(self, goal: Goal, actions: list[str], observations: list[str | None]) -> ReplayReport:
        """Step through ``actions``; ``observations`` (None where unknown) are the pages the
        worker saw, compared with the environment's while the two are still in step."""
        try:
            env = self._make_env(goal, len(actions))
        except Exception as exc:  # noqa: BLE001
            return ReplayReport(checked=False, reason=f"environment unavailable: {type(exc).__name__}: {exc}")
        if env is None:
            return ReplayReport(checked=False, reason=self._unavailable)
        report = ReplayReport(checked=True)
        obs, _ = env.reset(options={"goal_index": 0})
        for k, action in enumerate(actions):
            if observations[k] is not None and observations[k] != obs:
                report.observation_mismatches.append(k)
            clickable = env.get_available_actions()["clickables"]
            try:
                obs, reward, terminated, _, info = env.step(action)
            except Exception as exc:  # noqa: BLE001 - an env bug must not hide the other sessions
                report.invalid.append({"step": k, "action": action, "reason": f"environment error: {type(exc).__name__}: {exc}"})
                report.unchecked_steps = len(actions) - k - 1
                break
            if not info["valid_action"]:
                report.invalid.append({"step": k, "action": action, "reason": self._why_invalid(action, clickable, info)})
                report.unchecked_steps = len(actions) - k - 1
                break
            report.valid_steps += 1
            if terminated:
                report.env_reward = float(reward)
        return report

    def _why_invalid(self, action: str, clickable: list[str], info: dict[str, Any]) -> str:
        """The environment's reason, made specific for the usual case: a product click."""
        reason = str(info.get("invalid_reason", "rejected"))
        if action.startswith("click[") and action.endswith("]"):
            target = action[6:-1]
            if _ASIN.match(target) and target not in clickable:
                if target.upper() not in self.catalog.by_asin:
                    return f"product {target.upper()} is not in the catalog ({reason})"
                return f"product {target.upper()} is in the catalog but not on our results page for these keywords ({reason})"
        return reason
