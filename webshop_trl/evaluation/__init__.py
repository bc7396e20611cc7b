"""Evaluating agents on goal splits, and Thompson-sampling evaluation over agents."""

from webshop_trl.evaluation.evaluate import EpisodeResult, EvalResult, evaluate_agent
from webshop_trl.evaluation.plots import plot_eval_results, plot_thompson
from webshop_trl.evaluation.thompson import AgentSpec, ThompsonConfig, ThompsonError, ThompsonReport, run_thompson

__all__ = [
    "EpisodeResult", "EvalResult", "evaluate_agent",
    "AgentSpec", "ThompsonConfig", "ThompsonError", "ThompsonReport", "run_thompson",
    "plot_thompson", "plot_eval_results",
]
