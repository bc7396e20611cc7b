"""WebShop data: the product catalog, goals and splits, and fetching the files."""

from webshop_trl.data.catalog import Catalog, Product, load_catalog
from webshop_trl.data.goals import Goal, GoalSet, build_goals

__all__ = ["Catalog", "Product", "load_catalog", "Goal", "GoalSet", "build_goals"]
