"""Reward normalization into advantages, shared by DDPO and Flow-GRPO.

Each prompt keeps a buffer of its most recent rewards; a reward's advantage is its z-score against
that prompt's buffer, so prompts that are easy (always high reward) do not drown out the others.
Until a prompt has ``min_count`` buffered rewards, the current batch's mean/std is used instead.
Same rule as ddpo-pytorch and TRL 0.23. `group_advantages` is GRPO's group-relative advantage (Flow-GRPO):
the same tracker, emptied every epoch and reading only that epoch's group of each prompt.

>>> tracker = PerPromptStatTracker(buffer_size=4, min_count=2)
>>> tracker.update(["cat", "cat", "dog"], [1.0, 3.0, 10.0]).round(3).tolist()  # dog: 1 < min_count, batch stats
[-1.0, 1.0, 1.382]
>>> tracker.stats()["cat"]
{'mean': 2.0, 'std': 1.0, 'count': 2}
>>> group_advantages(["cat", "cat", "dog", "dog"], [1.0, 3.0, 5.0, 5.0]).round(3).tolist()
[-1.0, 1.0, 0.0, 0.0]
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

import numpy as np

__all__ = ["PerPromptStatTracker", "group_advantages", "normalize_rewards"]

_EPS = 1e-6


def normalize_rewards(rewards) -> np.ndarray:
    """Batch z-scores (the advantages without per-prompt tracking)."""
    rewards = np.asarray(rewards, dtype=np.float64)
    return (rewards - rewards.mean()) / (rewards.std() + _EPS)


def group_advantages(prompts: Sequence[str], rewards) -> np.ndarray:
    """GRPO advantages: each reward's z-score within the rewards of the same prompt in this call (its group;
    a group whose rewards are all equal gets 0). A fresh `PerPromptStatTracker` holding exactly this call."""
    rewards = np.asarray(rewards, dtype=np.float64)
    return PerPromptStatTracker(buffer_size=max(1, rewards.size), min_count=0).update(prompts, rewards)


class PerPromptStatTracker:
    def __init__(self, buffer_size: int, min_count: int):
        if buffer_size < 1 or min_count < 0:
            raise ValueError(f"buffer_size must be >= 1 and min_count >= 0; got {buffer_size}, {min_count}")
        self.buffer_size = buffer_size
        self.min_count = min_count
        self.buffers: dict[str, deque] = {}

    def update(self, prompts: Sequence[str], rewards) -> np.ndarray:
        """Add this batch's rewards to the buffers; return the advantages (same order as the inputs)."""
        prompts = np.asarray(list(prompts), dtype=object)
        rewards = np.asarray(rewards, dtype=np.float64)
        if prompts.shape != rewards.shape:
            raise ValueError(f"got {len(prompts)} prompts for {len(rewards)} rewards")
        advantages = np.empty_like(rewards)
        for prompt in dict.fromkeys(prompts.tolist()):
            mask = prompts == prompt
            buffer = self.buffers.setdefault(prompt, deque(maxlen=self.buffer_size))
            buffer.extend(rewards[mask].tolist())
            ref = np.asarray(buffer) if len(buffer) >= self.min_count else rewards
            advantages[mask] = (rewards[mask] - ref.mean()) / (ref.std() + _EPS)
        return advantages

    def stats(self) -> dict[str, dict]:
        return {
            p: {"mean": float(np.mean(b)), "std": float(np.std(b)), "count": len(b)} for p, b in self.buffers.items()
        }

    def state_dict(self) -> dict[str, list[float]]:
        return {p: list(b) for p, b in self.buffers.items()}

    def load_state_dict(self, state: dict[str, list[float]]):
        self.buffers = {p: deque(values, maxlen=self.buffer_size) for p, values in state.items()}
