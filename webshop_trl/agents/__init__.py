"""Agents that act in WebShop: the baselines, and `PolicyAgent` (search policy + BERT choice policy).

    make_agent("rule")
    make_agent("policy", checkpoint="checkpoints/il", greedy=True, query_source="human")

`PolicyAgent` and the search policies import torch, so they are loaded on first use only.
"""

from __future__ import annotations

from typing import Any

from webshop_trl.agents.base import Agent
from webshop_trl.agents.baselines import RandomAgent, RuleAgent


def _policy_agent(**kwargs: Any) -> Agent:
    from webshop_trl.agents.policy_agent import PolicyAgent

    return PolicyAgent(**kwargs)


AGENTS = {"rule": RuleAgent, "random": RandomAgent, "policy": _policy_agent}

_LAZY = {
    "PolicyAgent": "webshop_trl.agents.policy_agent",
    "PolicyCheckpointError": "webshop_trl.agents.policy_agent",
    "SearchPolicy": "webshop_trl.agents.search_policy",
    "InstructionQuery": "webshop_trl.agents.search_policy",
    "HumanQuery": "webshop_trl.agents.search_policy",
    "Seq2SeqQuery": "webshop_trl.agents.search_policy",
    "make_search_policy": "webshop_trl.agents.search_policy",
}

__all__ = ["Agent", "RuleAgent", "RandomAgent", "AGENTS", "make_agent", *_LAZY]


def make_agent(name: str, **kwargs: Any) -> Agent:
    """An agent by name: ``rule``, ``random`` (``seed``, ``max_steps``) or ``policy``
    (``checkpoint=PATH`` and the `PolicyAgent` options)."""
    try:
        factory = AGENTS[name]
    except KeyError:
        raise ValueError(f"unknown agent {name!r}: choose one of {', '.join(AGENTS)}") from None
    return factory(**kwargs)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
