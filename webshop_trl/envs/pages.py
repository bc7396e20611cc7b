"""The page model of the WebShop text environment (WEBSHOP_SPEC §3.3-3.5).

A page is a list of `Segment`s (text, buttons, product links, option values). Both observation
modes are rendered from that one list, and the clickables of a page are read off it, so what an
agent sees and what it may click can never disagree. No HTML is produced or parsed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from webshop_trl.data.catalog import Catalog
from webshop_trl.data.goals import Goal

RESULTS_PER_PAGE = 10
SUB_PAGES = ("description", "features", "reviews", "attributes")


class PageType(str, Enum):
    SEARCH = "search"
    RESULTS = "results"
    ITEM = "item"
    SUB_PAGE = "item_sub_page"
    DONE = "done"


@dataclass(slots=True)
class Segment:
    """One visible piece of a page. ``kind``: text | button | link (an ASIN) | option (a value).
    ``on`` marks a selected option or a visited product (the [clicked button] of text_rich)."""

    kind: str
    text: str
    on: bool = False
    indent: bool = False


@dataclass
class SessionState:
    """What WebShop keeps per session: the goal, the page, the last search and the selections.

    ``goal`` is None for a free-instruction session (a request that is no goal of the goal set):
    ``instruction`` is then the text shown, and a purchase has no reward (``reward`` stays None).
    ``instruction`` defaults to the goal's instruction text."""

    goal: Goal | None
    page: PageType = PageType.SEARCH
    keywords: list[str] = field(default_factory=list)
    results: list[str] = field(default_factory=list)  # ASINs of the last search, best first
    page_num: int = 1
    asin: str | None = None
    options: dict[str, str] = field(default_factory=dict)
    sub_page: str | None = None
    visited: set[str] = field(default_factory=set)
    reward: float | None = None
    instruction: str = ""

    def __post_init__(self) -> None:
        if not self.instruction:
            if self.goal is None:
                raise ValueError("a session needs a goal or an instruction")
            self.instruction = self.goal.instruction_text

    def clear_search(self) -> None:
        """`back to search`: forget keywords, results, product, options and visited products."""
        self.page = PageType.SEARCH
        self.keywords = []
        self.results = []
        self.page_num = 1
        self.asin = None
        self.options = {}
        self.sub_page = None
        self.visited = set()


def _button(text: str) -> Segment:
    return Segment("button", text)


def _text(text: str) -> Segment:
    return Segment("text", text)


def page_results(state: SessionState) -> list[str]:
    lo = (state.page_num - 1) * RESULTS_PER_PAGE
    return state.results[lo : lo + RESULTS_PER_PAGE]


def build_page(state: SessionState, catalog: Catalog, header: str = "WebShop", show_attrs: bool = False) -> list[Segment]:
    """The segments of the current page, in the order WebShop's templates show them."""
    instruction = [_text("Instruction:"), _text(state.instruction)]
    if state.page is PageType.SEARCH:
        return [_text(header), *instruction, _button("Search")]
    if state.page is PageType.RESULTS:
        segs = [*instruction, _button("Back to Search"), _text(f"Page {state.page_num} (Total results: {len(state.results)})")]
        if state.page_num > 1:
            segs.append(_button("< Prev"))
        segs.append(_button("Next >"))
        for asin in page_results(state):
            product = catalog.by_asin[asin]
            segs += [Segment("link", asin, on=asin in state.visited), _text(product.title), _text(product.price_tag)]
        return segs
    product = catalog.by_asin[state.asin] if state.asin else None
    if state.page is PageType.ITEM and product is not None:
        segs = [*instruction, _button("Back to Search"), _button("< Prev")]
        for name, values in product.options.items():
            segs.append(_text(name))
            segs += [Segment("option", v, on=state.options.get(name) == v, indent=True) for v in values]
        segs += [_text(product.title), _text(f"Price: {product.price_tag}"), _text("Rating: N.A.")]
        segs += [_button("Description"), _button("Features"), _button("Reviews")]
        if show_attrs:
            segs.append(_button("Attributes"))
        segs.append(_button("Buy Now"))
        return segs
    if state.page is PageType.SUB_PAGE and product is not None:
        segs = [*instruction, _button("Back to Search"), _button("< Prev")]
        if state.sub_page == "description":
            segs.append(_text(product.description))
        elif state.sub_page == "features":
            segs += [_text(b) for b in product.bullet_points]
        elif state.sub_page == "attributes":
            segs += [_text(a) for a in product.attributes]
            segs += [_text(product.category), _text(product.query), _text(product.product_category)]
        # reviews: disabled in WebShop's released data, so the page is empty
        return segs
    if state.page is PageType.DONE:
        return [
            _text("Thank you for shopping with us!"),
            _text("Purchased"),
            _text(f"asin: {state.asin}"),
            _text("options: " + ", ".join(f"{k}: {v}" for k, v in state.options.items())),
            _text("Your score (min 0.0, max 1.0)"),
            _text("N.A." if state.reward is None else str(state.reward)),
        ]
    raise AssertionError(f"inconsistent session state: page {state.page} without a product")


def clickables(segments: list[Segment]) -> list[str]:
    """WebShop's clickables: buttons (bar 'search'), then product links, then option values,
    all lowercased. The search page offers 'search' only, which click[] may not use."""
    buttons = [s.text.lower() for s in segments if s.kind == "button"]
    links = [s.text.lower() for s in segments if s.kind == "link"]
    options = [s.text for s in segments if s.kind == "option"]
    return buttons + links + options


def render_text(segments: list[Segment]) -> str:
    """`text` mode: visible strings, stripped, empty ones dropped, joined by ' [SEP] '."""
    return " [SEP] ".join(t for t in (s.text.strip() for s in segments) if t)


def render_text_rich(segments: list[Segment]) -> str:
    """`text_rich` mode: a line per node, buttons as [button] X [button_], selected options and
    visited products as [clicked button] ... [clicked button_], plus 'You have clicked v.' lines."""
    lines: list[str] = []
    clicked: list[str] = []
    for s in segments:
        text = s.text.strip()
        if not text:
            continue
        if s.kind == "text":
            lines.append(text + (" " if text == "Instruction:" else "") + "\n")
        elif s.kind == "button":
            lines.append(f"[button] {text} [button_]\n")
        elif s.kind == "link":
            tag = "clicked button" if s.on else "button"
            lines.append(f"\n[{tag}] {text} [{tag}_]\n")
        elif s.kind == "option":
            tag = "clicked button" if s.on else "button"
            lines.append(f"  [{tag}] {text} [{tag}_]\n")
            if s.on:
                clicked.append(f"You have clicked {text}.\n")
    return "".join(clicked + lines)
