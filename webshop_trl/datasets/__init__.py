"""Turning trajectories into training rows (choice steps for IL; preference pairs for DPO)."""

from webshop_trl.datasets.decision_steps import DecisionStep, decision_steps, limit_candidates

__all__ = ["DecisionStep", "decision_steps", "limit_candidates"]
