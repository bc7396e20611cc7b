"""The agent interface: a batch of observations and infos in, one action per session out.

Agents act on batches so that a learned policy can score many pages in one forward pass; the
baselines simply loop. ``infos[i]`` is the info dict `WebShopEnv` returned for session i
(``available_actions``, ``page_type``, ``instruction``, ``step``).
"""

from __future__ import annotations

from typing import Any, Protocol, Sequence


class Agent(Protocol):
    name: str

    def act(self, observations: Sequence[str], infos: Sequence[dict[str, Any]]) -> list[str]:
        """One action string per session."""
        ...
