"""Kept so that ``synartifact_hf.ddpo.stat_tracking`` goes on importing: the stat tracking is shared by DDPO and
Flow-GRPO and lives in `synartifact_hf.rl.stat_tracking`."""

from ..rl.stat_tracking import PerPromptStatTracker, group_advantages, normalize_rewards

__all__ = ["PerPromptStatTracker", "group_advantages", "normalize_rewards"]
