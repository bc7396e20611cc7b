"""WebShop's MTurk session logs: parsing the page visits and recovering the actions between them.

The logs (one JSON object per line) record *pages*, not actions: each row is one page visit with
its ``page`` type, ``url``, the worker's ``goal`` and the page ``content``; the 'done' row adds
``reward`` and ``reward_info``. The URL is the server route and carries the session id, search
keywords, result page, ASIN, selected options and sub-page, e.g.::

    /search_results/<session>/<keywords as a Python list literal>/<page>
    /item_page/<session>/<ASIN>/<keywords>/<page>/<options as a Python dict literal>
    /item_sub_page/<session>/<ASIN>/<keywords>/<page>/<Description|Features|Reviews|Attributes>/<options>
    /done/<session>/<ASIN>/<options>
    /<session>                                                  (the search page)

The action between two consecutive visits is recovered from what changed (see `transition`).
A row repeating the previous page exactly is a reload and carries no action. Nothing here needs
the catalog; rendering observations and checking actions against our environment live in
`replay.py`.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable
from urllib.parse import unquote, urlsplit

from webshop_trl.data.goals import NO_PRICE_LIMIT, Goal

PAGE_KINDS = ("index", "search_results", "item_page", "item_sub_page", "done")
SUB_PAGE_NAMES = ("description", "features", "reviews", "attributes")


class LogRowError(ValueError):
    """A log row that cannot be understood (reported with its file and line)."""


class TransitionError(ValueError):
    """Two consecutive page visits that no single WebShop action connects."""


@dataclass
class LoggedPage:
    """One page visit, with the location fields decoded from its URL."""

    kind: str
    session_id: str
    goal: dict[str, Any]
    path: Path
    lineno: int
    keywords: list[str] | None = None
    page_num: int | None = None
    results: list[str] = field(default_factory=list)  # ASINs shown on a results page, in order
    asin: str | None = None
    options: dict[str, str] = field(default_factory=dict)
    sub_page: str | None = None  # lowercased: description | features | reviews | attributes
    reward: float | None = None
    reward_info: dict[str, Any] | None = None
    price: float | None = None

    @property
    def where(self) -> str:
        return f"{self.path}:{self.lineno}"

    def location(self) -> tuple:
        """What identifies the page shown; equal locations mean a reload."""
        return (self.kind, tuple(self.keywords or ()), self.page_num, self.asin, tuple(sorted(self.options.items())), self.sub_page)

    def goal_key(self) -> tuple:
        return (self.goal.get("asin"), self.goal.get("instruction_text"))


# ------------------------------------------------------------------------------ parsing
def _literal(text: str, kind: type, what: str) -> Any:
    """A Python literal from the URL (the server formats keywords and options with repr)."""
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError) as exc:
        raise LogRowError(f"{what} in the URL is not a Python literal: {text[:80]!r}") from exc
    if not isinstance(value, kind):
        raise LogRowError(f"{what} in the URL should be a {kind.__name__}, got {text[:80]!r}")
    return value


def _keywords(text: str) -> list[str]:
    value = _literal(text, list, "the keyword list")
    if not all(isinstance(k, str) for k in value):
        raise LogRowError(f"the keyword list holds non-strings: {text[:80]!r}")
    return value


def _options(text: str) -> dict[str, str]:
    value = _literal(text, dict, "the options")
    return {str(k): str(v) for k, v in value.items()}


def _page_num(text: str) -> int:
    try:
        return int(text)
    except ValueError as exc:
        raise LogRowError(f"result page {text!r} in the URL is not a number") from exc


def _url_fields(kind: str, url: str) -> dict[str, Any]:
    """Session id and location fields from a page URL.

    Segments are split before they are unquoted, and the variable-length keyword segment is
    taken as everything between the fixed leading and trailing ones, so a '/' inside the
    keywords cannot shift the other fields.
    """
    parts = urlsplit(url).path.split("/")
    parts = parts[1:] if parts and parts[0] == "" else parts
    if kind == "index":
        if len(parts) != 1 or not parts[0]:
            raise LogRowError(f"a search-page URL should be /<session>, got {url[:120]!r}")
        return {"session_id": unquote(parts[0])}
    if not parts or parts[0] != kind:
        raise LogRowError(f"page {kind!r} does not match its URL {url[:120]!r}")
    fixed_tail = {"search_results": 1, "item_page": 2, "item_sub_page": 3}
    head = 3 if kind in ("item_page", "item_sub_page") else 2
    if kind == "done":
        if len(parts) != 4:
            raise LogRowError(f"a done URL should be /done/<session>/<asin>/<options>, got {url[:120]!r}")
        return {"session_id": unquote(parts[1]), "asin": unquote(parts[2]), "options": _options(unquote(parts[3]))}
    tail = fixed_tail[kind]
    if len(parts) < head + tail + 1:
        raise LogRowError(f"too few segments in the {kind} URL {url[:120]!r}")
    fields: dict[str, Any] = {"session_id": unquote(parts[1])}
    if head == 3:
        fields["asin"] = unquote(parts[2])
    fields["keywords"] = _keywords(unquote("/".join(parts[head : len(parts) - tail])))
    rest = [unquote(p) for p in parts[len(parts) - tail :]]
    fields["page_num"] = _page_num(rest[0])
    if kind == "item_sub_page":
        sub = rest[1].lower()
        if sub not in SUB_PAGE_NAMES:
            raise LogRowError(f"unknown sub-page {rest[1]!r} in the URL")
        fields["sub_page"] = sub
    if kind in ("item_page", "item_sub_page"):
        fields["options"] = _options(rest[-1])
    return fields


def parse_row(row: Any, path: Path, lineno: int) -> LoggedPage:
    """One log row as a `LoggedPage`; raises `LogRowError` on anything unexpected.

    The URL is the authority for the location (it is what the server routed on); the content
    must agree with it on the ASIN and the options, otherwise the row is rejected as
    inconsistent rather than silently trusted one way or the other.
    """
    if not isinstance(row, dict):
        raise LogRowError(f"expected a JSON object, got {type(row).__name__}")
    kind, url, goal = row.get("page"), row.get("url"), row.get("goal")
    if kind not in PAGE_KINDS:
        raise LogRowError(f"unknown page type {kind!r} (expected one of {', '.join(PAGE_KINDS)})")
    if not isinstance(url, str) or not url:
        raise LogRowError("missing 'url'")
    if not isinstance(goal, dict) or not isinstance(goal.get("instruction_text"), str):
        raise LogRowError("missing 'goal' object with an 'instruction_text'")
    content = row.get("content") or {}
    if not isinstance(content, dict):
        raise LogRowError("'content' must be an object")
    page = LoggedPage(kind=kind, goal=goal, path=path, lineno=lineno, **_url_fields(kind, url))
    if kind == "search_results":
        results = content.get("search_result_asins")
        if not isinstance(results, list) or not all(isinstance(a, str) for a in results):
            raise LogRowError("a search_results row needs 'content.search_result_asins', a list of ASINs")
        page.results = list(results)
    if kind in ("item_page", "item_sub_page", "done"):
        if "asin" in content and str(content["asin"]).upper() != str(page.asin).upper():
            raise LogRowError(f"content ASIN {content['asin']!r} differs from the URL's {page.asin!r}")
        if "options" in content and {str(k): str(v) for k, v in (content["options"] or {}).items()} != page.options:
            raise LogRowError(f"content options {content['options']!r} differ from the URL's {page.options!r}")
    if kind == "done":
        reward = row.get("reward")
        if isinstance(reward, bool) or not isinstance(reward, (int, float)):
            raise LogRowError(f"a done row needs a numeric 'reward', got {reward!r}")
        page.reward = float(reward)
        page.reward_info = row.get("reward_info") if isinstance(row.get("reward_info"), dict) else None
        price = content.get("price")
        page.price = float(price) if isinstance(price, (int, float)) and not isinstance(price, bool) else None
    return page


# ----------------------------------------------------------------------------- episodes
def group_episodes(pages: Iterable[LoggedPage]) -> list[list[LoggedPage]]:
    """Split page visits into episodes: by session id (from the URL), then a new episode
    whenever the goal changes or a purchase ('done') has ended the previous one.

    Episodes come out in the order of their first visit; a session's rows keep their order.
    """
    episodes: list[list[LoggedPage]] = []
    current: dict[str, list[LoggedPage]] = {}
    for page in pages:
        ep = current.get(page.session_id)
        if ep is None or ep[-1].kind == "done" or ep[-1].goal_key() != page.goal_key():
            ep = []
            episodes.append(ep)
            current[page.session_id] = ep
        ep.append(page)
    return episodes


# --------------------------------------------------------------------------- transitions
def search_action(keywords: list[str]) -> str:
    """WebShop split the query on single spaces; joining them back gives the (lowercased) query."""
    return f"search[{' '.join(keywords)}]"


def _same_search(a: LoggedPage, b: LoggedPage) -> bool:
    return a.keywords == b.keywords and a.page_num == b.page_num


def transition(prev: LoggedPage | None, cur: LoggedPage) -> str | None:
    """The action that led from ``prev`` to ``cur``; None when there was none (the first page,
    or a reload of the same page). Raises `TransitionError` when no single action explains it."""
    if prev is None:
        if cur.kind != "index":
            raise TransitionError(f"the episode starts on a {cur.kind} page, not on the search page")
        return None
    if prev.location() == cur.location():
        return None
    p, c = prev.kind, cur.kind
    if c == "index":
        if p == "done":
            raise TransitionError("a page after the purchase belongs to a new episode")
        return "click[back to search]"
    if c == "search_results":
        if p == "index" or (p == "search_results" and prev.keywords != cur.keywords):
            return search_action(cur.keywords or [])
        if p == "search_results" and prev.page_num is not None and cur.page_num is not None:
            if cur.page_num == prev.page_num + 1:
                return "click[next >]"
            if cur.page_num == prev.page_num - 1:
                return "click[< prev]"
        if p == "item_page" and _same_search(prev, cur):
            return "click[< prev]"
    if c == "item_page":
        if p == "search_results" and _same_search(prev, cur) and not cur.options:
            return f"click[{(cur.asin or '').lower()}]"
        if p == "item_page" and prev.asin == cur.asin and _same_search(prev, cur):
            changed = [(k, v) for k, v in cur.options.items() if prev.options.get(k) != v]
            if len(changed) == 1 and set(prev.options) <= set(cur.options):
                return f"click[{changed[0][1]}]"
        if p == "item_sub_page" and prev.asin == cur.asin and prev.options == cur.options:
            return "click[< prev]"
    if c == "item_sub_page" and p == "item_page" and prev.asin == cur.asin and prev.options == cur.options:
        return f"click[{cur.sub_page}]"
    if c == "done" and p == "item_page" and prev.asin == cur.asin:
        return "click[buy now]"
    raise TransitionError(f"no single action leads from {_describe(prev)} ({prev.where}) to {_describe(cur)} ({cur.where})")


def _describe(page: LoggedPage) -> str:
    bits = [page.kind]
    if page.keywords is not None:
        bits.append(f"keywords={' '.join(page.keywords)!r} page={page.page_num}")
    if page.asin:
        bits.append(f"asin={page.asin}")
    if page.options:
        bits.append(f"options={page.options}")
    if page.sub_page:
        bits.append(f"sub_page={page.sub_page}")
    return " ".join(bits)


def log_anomalies(prev: LoggedPage, cur: LoggedPage, action: str) -> list[str]:
    """Things the log shows that WebShop's web pages should not allow, kept as notes rather than
    errors: the action is still the only one that explains the change."""
    notes = []
    if prev.kind == "search_results" and cur.kind == "item_page" and cur.asin not in prev.results:
        notes.append(f"{cur.where}: clicked {cur.asin}, which the logged results page did not show")
    if prev.kind == "search_results" and action.startswith("search["):
        notes.append(f"{cur.where}: a new search from a results page (the web page has no search box there)")
    if cur.kind == "done" and prev.options != cur.options:
        notes.append(f"{cur.where}: bought with options {cur.options} but the item page had {prev.options}")
    return notes


# -------------------------------------------------------------------------------- goals
def goal_from_log(goal: dict[str, Any], index: int | None) -> Goal:
    """Our `Goal` for a log's goal dict (a human goal: ``goal_options`` is a list of values)."""
    options = goal.get("goal_options") or []
    price_upper = goal.get("price_upper")
    return Goal(
        index=-1 if index is None else index,
        kind="human",
        asin=str(goal.get("asin") or ""),
        instruction_text=str(goal["instruction_text"]),
        attributes=list(goal.get("attributes") or []),
        goal_options=dict(options) if isinstance(options, dict) else list(options),
        price_upper=NO_PRICE_LIMIT if price_upper is None else float(price_upper),
        query=str(goal.get("query") or ""),
        category=str(goal.get("category") or ""),
        product_category=str(goal.get("product_category") or ""),
        name=str(goal.get("name") or ""),
        weight=float(goal.get("weight") or 1.0),
    )


def logged_available_actions(page: LoggedPage) -> list[str] | None:
    """The page's actions when the log alone determines them (search, results and sub-pages),
    in our environment's form; None for item pages, whose option values need the catalog.

    Results pages list only clicks: the web page the workers used has no search box there.
    """
    if page.kind == "index":
        return ["search[<query>]"]
    if page.kind == "search_results":
        buttons = ["back to search"] + (["< prev"] if (page.page_num or 1) > 1 else []) + ["next >"]
        return [f"click[{b}]" for b in buttons] + [f"click[{a.lower()}]" for a in page.results]
    if page.kind == "item_sub_page":
        return ["click[back to search]", "click[< prev]"]
    return None
