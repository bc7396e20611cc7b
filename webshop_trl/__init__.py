"""webshop-trl: train LLM-based shopping and recommender agents on WebShop with TRL."""

__version__ = "0.1.0"
