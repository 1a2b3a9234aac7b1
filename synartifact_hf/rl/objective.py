"""The PPO-clipped policy-gradient objective that DDPO (Black et al. 2023, Eq. 3) and Flow-GRPO (Liu et al. 2025)
share, for one denoising step of a batch:

    L = mean(max(-A * r, -A * clip(r, 1 - eps, 1 + eps))),   r = exp(log p_theta - log p_old),
    A = clip(advantages, -adv_clip_max, adv_clip_max).

``max`` of the two negated terms is the pessimistic (clipped) bound: a ratio that already moved past
``1 +- eps`` in the advantage's direction gets no more gradient.

>>> import torch
>>> loss, approx_kl, clipfrac = clipped_policy_loss(
...     torch.log(torch.tensor([1.5, 0.5])), torch.zeros(2), torch.tensor([1.0, 1.0]), clip_range=0.2, adv_clip_max=5.0)
>>> round(loss.item(), 4), clipfrac.item()  # (-1.2 + -0.5) / 2: the first ratio clipped to 1.2, the second not
(-0.85, 1.0)
"""

from __future__ import annotations

import torch

__all__ = ["clipped_policy_loss"]


def clipped_policy_loss(
    log_prob: torch.Tensor, old_log_prob: torch.Tensor, advantages: torch.Tensor, clip_range: float,
    adv_clip_max: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(loss, approx_kl, clipfrac)`` of one step for a batch (all (B,) tensors in, scalars out).

    ``approx_kl`` = 0.5 * mean((log p_theta - log p_old)^2), the estimate TRL and ddpo-pytorch log;
    ``clipfrac`` = the fraction of ratios outside [1 - eps, 1 + eps].
    """
    advantages = advantages.clamp(-adv_clip_max, adv_clip_max)
    ratio = torch.exp(log_prob - old_log_prob)
    unclipped = -advantages * ratio
    clipped = -advantages * ratio.clamp(1.0 - clip_range, 1.0 + clip_range)
    loss = torch.maximum(unclipped, clipped).mean()
    approx_kl = 0.5 * ((log_prob - old_log_prob) ** 2).mean()
    clipfrac = ((ratio - 1.0).abs() > clip_range).float().mean()
    return loss, approx_kl, clipfrac
