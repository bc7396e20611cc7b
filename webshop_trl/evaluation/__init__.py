"""Evaluating agents on goal splits, comparing agents on the same goals (bootstrap intervals,
paired differences), and Thompson-sampling evaluation over agents."""

from webshop_trl.evaluation.compare import AgentGroup, CompareConfig, CompareError, Comparison, compare_agents
from webshop_trl.evaluation.evaluate import EpisodeResult, EvalResult, evaluate_agent
from webshop_trl.evaluation.plots import plot_eval_results, plot_thompson
from webshop_trl.evaluation.thompson import AgentSpec, ThompsonConfig, ThompsonError, ThompsonReport, run_thompson

__all__ = [
    "EpisodeResult", "EvalResult", "evaluate_agent",
    "AgentGroup", "CompareConfig", "CompareError", "Comparison", "compare_agents",
    "AgentSpec", "ThompsonConfig", "ThompsonError", "ThompsonReport", "run_thompson",
    "plot_thompson", "plot_eval_results",
]
