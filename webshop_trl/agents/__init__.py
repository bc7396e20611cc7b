"""Agents that act in WebShop: the baselines here; learned policies build on the same interface."""

from webshop_trl.agents.base import Agent
from webshop_trl.agents.baselines import RandomAgent, RuleAgent

AGENTS = {"rule": RuleAgent, "random": RandomAgent}

__all__ = ["Agent", "RuleAgent", "RandomAgent", "AGENTS", "make_agent"]


def make_agent(name: str, **kwargs) -> Agent:
    try:
        return AGENTS[name](**kwargs)
    except KeyError:
        raise ValueError(f"unknown agent {name!r}: choose one of {', '.join(AGENTS)}") from None
