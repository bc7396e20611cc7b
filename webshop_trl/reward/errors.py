"""Errors the reward raises on purpose, each naming what to fix."""

from webshop_trl.errors import WebShopTrlError


class RewardInputError(WebShopTrlError, ValueError):
    """A product, goal, price or option selection the reward cannot score (the message says which field)."""


class SpacyModelMissingError(WebShopTrlError, ImportError):
    """The spaCy model for the type match is not installed (the message gives the pip command)."""
