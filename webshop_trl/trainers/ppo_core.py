"""PPO's math for a policy over a page's candidate actions: GAE, exact entropy / KL, the clipped loss.

Everything works on padded ``[B, Kmax]`` log-probabilities with a ``[B, Kmax]`` candidate mask
(what `ActionScorerModel.forward` returns: padding slots hold -inf).
"""

from __future__ import annotations

import torch


def compute_gae(rewards, values, ends, next_value, gamma: float, gae_lambda: float):
    """Advantages and returns of a rollout, GAE(gamma, lambda).

    Args:
        rewards, values, ends: ``[T, N]`` -- reward of transition t, V(s_t), and whether the episode
            ended with transition t (terminated or truncated; the next observation starts a new one).
        next_value: ``[N]`` V of the observation after the last transition (the bootstrap).

    delta_t = r_t + gamma * V(s_{t+1}) * (1 - end_t) - V(s_t);  A_t = delta_t + gamma * lambda * (1 - end_t) * A_{t+1}.
    Returns (advantages, returns = advantages + values).
    """
    T = rewards.shape[0]
    advantages = torch.zeros_like(rewards)
    last = torch.zeros_like(next_value)
    for t in reversed(range(T)):
        following = next_value if t == T - 1 else values[t + 1]
        alive = 1.0 - ends[t].to(rewards.dtype)
        delta = rewards[t] + gamma * following * alive - values[t]
        last = delta + gamma * gae_lambda * alive * last
        advantages[t] = last
    return advantages, advantages + values


def masked_log_probs(log_probs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``log_probs`` with padding slots set to 0 (so that p * log p is 0 there, not NaN)."""
    return log_probs.masked_fill(~mask, 0.0)


def exact_entropy(log_probs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """[B] entropy -sum_a pi(a|s) log pi(a|s) over each page's candidates."""
    lp = masked_log_probs(log_probs, mask)
    return -(lp.exp() * mask * lp).sum(-1)


def exact_kl(log_probs: torch.Tensor, ref_log_probs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """[B] KL(pi || pi_ref) = sum_a pi(a|s) (log pi(a|s) - log pi_ref(a|s)) over each page's candidates."""
    lp = masked_log_probs(log_probs, mask)
    ref = masked_log_probs(ref_log_probs, mask)
    return (lp.exp() * mask * (lp - ref)).sum(-1)


def clipped_policy_loss(new_log_prob, old_log_prob, advantages, clip_coef: float, weights=None):
    """PPO's clipped surrogate, -min(r A, clip(r, 1-eps, 1+eps) A), averaged with ``weights`` (a 0/1
    mask of decision steps). Returns (loss, ratio, clip fraction, approx KL (k3 estimator))."""
    log_ratio = new_log_prob - old_log_prob
    ratio = log_ratio.exp()
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip_coef, 1.0 + clip_coef)
    per_step = torch.max(unclipped, clipped)
    if weights is None:
        weights = torch.ones_like(per_step)
    denom = weights.sum().clamp(min=1.0)
    loss = (per_step * weights).sum() / denom
    with torch.no_grad():
        clip_frac = (((ratio - 1.0).abs() > clip_coef).float() * weights).sum() / denom
        approx_kl = (((ratio - 1.0) - log_ratio) * weights).sum() / denom
    return loss, ratio, clip_frac, approx_kl


def pad_log_probs(rows, k_max: int, device=None) -> torch.Tensor:
    """Stack 1-D log-prob tensors of different lengths into ``[B, k_max]`` (padding -inf)."""
    out = torch.full((len(rows), k_max), float("-inf"), device=device)
    for i, row in enumerate(rows):
        out[i, : row.numel()] = row.to(out.device)
    return out


__all__ = ["clipped_policy_loss", "compute_gae", "exact_entropy", "exact_kl", "masked_log_probs", "pad_log_probs"]
