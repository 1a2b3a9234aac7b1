"""Reward collection for the RL trainers: each sampled batch is scored by the reward function, at once or in a
thread pool while the next batch samples (``async_reward_computation``), then checked against the DDPO
reward contract ``reward_function(images, prompts, metadata) -> (rewards, info)``.

`SampledBatch` holds one sampling batch's images, prompts, metadata and (once collected) rewards and info;
`SampledBatch.as_trl_list()` gives TRL's ``[images, prompts, metadata, rewards, reward_info]`` shape, which
is what ``image_samples_hook`` receives.
"""

from __future__ import annotations

from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = ["RewardCollector", "SampledBatch"]


@dataclass
class SampledBatch:
    images: torch.Tensor  # (B, 3, H, W) float in [0, 1]
    prompts: tuple[str, ...]
    metadata: tuple[Any, ...]
    pending: Any = field(default=None, repr=False)  # the reward function's result, or a Future of it
    rewards: torch.Tensor | None = None
    reward_info: Any = None

    def as_trl_list(self) -> list:
        """TRL's ``prompt_image_data`` entry: ``[images, prompts, metadata, rewards, reward_info]``."""
        return [self.images, self.prompts, self.metadata, self.rewards, self.reward_info]


class RewardCollector:
    """Scores `SampledBatch` es with ``reward_function``; ``max_workers`` threads when ``asynchronous``. The
    pool is made on first use and shut down by `close` (the trainers call it when ``train()`` ends or fails)."""

    def __init__(self, reward_function, device, asynchronous: bool = False, max_workers: int = 2):
        self.reward_function = reward_function
        self.device = device
        self.asynchronous = asynchronous
        self.max_workers = max_workers
        self._executor: futures.ThreadPoolExecutor | None = None

    def submit(self, batch: SampledBatch) -> SampledBatch:
        """Start scoring ``batch`` (in the pool when asynchronous, else now); returns it."""
        args = (batch.images, batch.prompts, batch.metadata)
        if self.asynchronous:
            if self._executor is None:
                self._executor = futures.ThreadPoolExecutor(max_workers=self.max_workers)
            batch.pending = self._executor.submit(self.reward_function, *args)
        else:
            batch.pending = self.reward_function(*args)
        return batch

    def collect(self, batches: list[SampledBatch]) -> torch.Tensor:
        """Wait for every batch's rewards, check them, store them on the batches; return them concatenated."""
        for batch in batches:
            result = batch.pending
            if isinstance(result, futures.Future):
                result = result.result()
            batch.pending = None
            if not (isinstance(result, tuple) and len(result) == 2):
                raise TypeError(
                    "reward_function must return (rewards, info) — the DDPO contract; got " f"{type(result).__name__}"
                )
            reward, info = result
            reward = torch.as_tensor(reward, dtype=torch.float32).reshape(-1).to(self.device)
            if reward.numel() != len(batch.prompts):
                raise ValueError(f"reward_function returned {reward.numel()} rewards for {len(batch.prompts)} images")
            if not torch.isfinite(reward).all():
                raise ValueError(f"reward_function returned non-finite rewards: {reward.tolist()}")
            batch.rewards, batch.reward_info = reward, info
        return torch.cat([b.rewards for b in batches])

    def close(self):
        """Shut the thread pool down (waiting for running calls); a later `submit` makes a new one."""
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
