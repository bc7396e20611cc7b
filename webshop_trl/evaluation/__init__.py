"""Evaluating agents on goal splits."""

from webshop_trl.evaluation.evaluate import EpisodeResult, EvalResult, evaluate_agent

__all__ = ["EpisodeResult", "EvalResult", "evaluate_agent"]
