"""Scripted expert demonstrations: an oracle that knows the goal and shops like a (noisy) human.

    from webshop_trl.experts import ExpertAgent, ExpertConfig, generate_expert_demos
    demos = list(generate_expert_demos(range(1500, 1510), ExpertConfig().noisy()))

`ExpertAgent` plans and follows an episode per goal (`oracle.py`), `ExpertConfig` sets its
queries and noise (`config.py`), `generate_expert_demos` / `write_expert_demos` record
trajectories (`generate.py`), `summarize` gives success and failure figures (`report.py`).
"""

from webshop_trl.experts.config import DEFAULT_NOISE, NOISE_FIELDS, QUERY_KINDS, ExpertConfig
from webshop_trl.experts.generate import (
    ResumeMismatchError,
    existing_goal_indices,
    generate_expert_demos,
    run_expert_episode,
    write_expert_demos,
)
from webshop_trl.experts.oracle import EpisodePlan, ExpertAgent, QueryOutcome, ScoredProduct, best_options, candidate_queries
from webshop_trl.experts.report import format_summary, summarize

__all__ = [
    "ExpertAgent",
    "ExpertConfig",
    "EpisodePlan",
    "QueryOutcome",
    "ScoredProduct",
    "DEFAULT_NOISE",
    "NOISE_FIELDS",
    "QUERY_KINDS",
    "best_options",
    "candidate_queries",
    "generate_expert_demos",
    "run_expert_episode",
    "write_expert_demos",
    "existing_goal_indices",
    "ResumeMismatchError",
    "summarize",
    "format_summary",
]
