"""The shared, read-only part of the environment: catalog, goals and search engine.

Loading the catalog and starting the search engine takes seconds and memory, so every
environment of a process built from the same settings shares one `ShopBackend`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from webshop_trl.data.catalog import Catalog, load_catalog
from webshop_trl.data.goals import GoalSet, build_goals
from webshop_trl.envs.config import WebShopConfig
from webshop_trl.search.base import SearchConfig, SearchEngine, make_search_engine

_CACHE: dict[tuple, "ShopBackend"] = {}
_LOCK = threading.Lock()


@dataclass
class ShopBackend:
    catalog: Catalog
    goals: GoalSet
    search: SearchEngine
    top_k: int

    def search_asins(self, keywords: list[str]) -> list[str]:
        """Top-k ASINs for WebShop's keyword list (re-joined with spaces), catalog hits only."""
        return [a for a in self.search.search(" ".join(keywords), k=self.top_k) if a in self.catalog.by_asin]


def get_backend(config: WebShopConfig) -> ShopBackend:
    key = config.backend_key()
    with _LOCK:
        backend = _CACHE.get(key)
        if backend is None:
            catalog = load_catalog(
                config.data_dir,
                product_file=config.product_file,
                attribute_file=config.attribute_file,
                human_instruction_file=config.human_instruction_file,
                limit=config.num_products,
                price_seed=config.seed,
            )
            goals = build_goals(catalog, config.goal_kind, seed=config.seed)
            engine = make_search_engine(catalog, SearchConfig(engine=config.search_engine, top_k=config.top_k))
            backend = _CACHE[key] = ShopBackend(catalog, goals, engine, config.top_k)
        return backend
