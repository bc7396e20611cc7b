"""The DPO losses of the action-scoring policy, on log-probabilities of whole actions.

For a page s with chosen action a+ and rejected action a-, both among the page's candidates,
log pi(a|s) is one entry of the log-softmax over the candidates (no token sums). With the log-ratios
``x+ = log pi(a+|s) - log pi_ref(a+|s)`` and ``x- = log pi(a-|s) - log pi_ref(a-|s)`` and
``d = x+ - x-``, the per-pair losses are TRL 1.16's formulas (``DPOTrainer._compute_loss``):

* ``sigmoid`` (DPO):  ``-log sigmoid(beta * d)``
* ``hinge`` (SLiC):   ``relu(1 - beta * d)``
* ``ipo``:            ``(d / n - 1 / (2 * beta)) ** 2``; TRL divides each log-ratio by the number of
  completion tokens n; an action is one unit here, so n = 1
* ``robust`` (rDPO):  ``(-(1 - eps) * log sigmoid(beta * d) + eps * log sigmoid(-beta * d)) / (1 - 2 * eps)``
  with ``eps = label_smoothing`` in [0, 0.5)
* ``sft`` (NLL of the chosen action): ``-log pi(a+|s)``; TRL averages the chosen completion's token
  log-probs, and an action is one unit here. Combined with ``sigmoid`` it is RPO
  (``loss_type: [sigmoid, sft]``, ``loss_weights: [1, alpha]``): it keeps the chosen action's
  probability up while DPO widens the margin, where plain DPO can lower both and let a third
  candidate take over

As in TRL, several loss types are combined as ``sum_k w_k * mean(loss_k)`` (``loss_weights``,
default 1 each), and ``label_smoothing`` enters only the robust loss.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

SUPPORTED_LOSS_TYPES: tuple[str, ...] = ("sigmoid", "hinge", "ipo", "robust", "sft")


def per_pair_dpo_loss(
    chosen_logratios: torch.Tensor,
    rejected_logratios: torch.Tensor,
    loss_type: str,
    beta: float,
    label_smoothing: float = 0.0,
    chosen_logps: torch.Tensor | None = None,
) -> torch.Tensor:
    """The loss of each pair ([B]) for one ``loss_type`` (see the module docstring); ``sft`` needs
    ``chosen_logps``, the policy's log pi(a+|s)."""
    if loss_type == "sft":
        if chosen_logps is None:
            raise ValueError("loss_type 'sft' needs the policy's chosen log-probs (chosen_logps)")
        return -chosen_logps
    delta = chosen_logratios - rejected_logratios
    if loss_type == "sigmoid":
        return -F.logsigmoid(beta * delta)
    if loss_type == "hinge":
        return torch.relu(1 - beta * delta)
    if loss_type == "ipo":
        return (delta - 1 / (2 * beta)) ** 2
    if loss_type == "robust":
        eps = label_smoothing
        clean = -(1 - eps) * F.logsigmoid(beta * delta)
        flipped = -eps * F.logsigmoid(-beta * delta)
        return (clean - flipped) / (1 - 2 * eps)
    raise ValueError(f"loss_type {loss_type!r} is not supported by ActionDPOTrainer; use one of {list(SUPPORTED_LOSS_TYPES)}")


def dpo_loss(
    chosen_logratios: torch.Tensor,
    rejected_logratios: torch.Tensor,
    loss_types: Sequence[str],
    beta: float,
    label_smoothing: float = 0.0,
    loss_weights: Sequence[float] | None = None,
    chosen_logps: torch.Tensor | None = None,
) -> torch.Tensor:
    """The scalar loss of a batch of pairs: ``sum_k w_k * mean_b loss_k(b)``."""
    loss_types = [loss_types] if isinstance(loss_types, str) else list(loss_types)
    weights = [1.0] * len(loss_types) if loss_weights is None else list(loss_weights)
    if len(weights) != len(loss_types):
        raise ValueError(f"{len(weights)} loss_weights for {len(loss_types)} loss types")
    total = chosen_logratios.new_zeros(())
    for loss_type, weight in zip(loss_types, weights):
        total = total + per_pair_dpo_loss(
            chosen_logratios, rejected_logratios, loss_type, beta, label_smoothing, chosen_logps
        ).mean() * weight
    return total


__all__ = ["SUPPORTED_LOSS_TYPES", "dpo_loss", "per_pair_dpo_loss"]
