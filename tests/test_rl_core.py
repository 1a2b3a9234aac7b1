"""The RL core DDPO and Flow-GRPO share (synartifact_hf.rl): the clipped objective, exactly, through both
trainers; reward collection (the thread pool is shut down when train() ends or fails; the hook gets TRL's
list shape); the prompt-function module's names."""

from __future__ import annotations

import threading

import pytest
import torch

from synartifact_hf.rl.objective import clipped_policy_loss

# ratios outside and inside [1 - eps, 1 + eps], with positive, negative and clipped (7 -> 5) advantages
RATIOS = torch.tensor([1.5, 0.5, 0.5, 1.5, 1.05])
ADVANTAGES = torch.tensor([2.0, -1.0, 2.0, -1.0, 7.0])
EPS, ADV_CLIP = 0.2, 5.0
# by hand, max(-A r, -A clip(r, 0.8, 1.2)) per sample:
#   (2, 1.5): max(-3.0, -2.4) = -2.4      (-1, 0.5): max(0.5, 0.8) = 0.8     (2, 0.5): max(-1.0, -1.6) = -1.0
#   (-1, 1.5): max(1.5, 1.2) = 1.5        (5, 1.05): max(-5.25, -5.25) = -5.25
EXPECTED = (-2.4 + 0.8 - 1.0 + 1.5 - 5.25) / 5  # -1.27; with minimum: -1.63, without clipping: -1.45

pytestmark = pytest.mark.usefixtures("one_thread")


class GreenMinusRed:
    def __call__(self, images, prompts, metadata):
        return (images[:, 1] - images[:, 0]).mean((1, 2)) * 100, {"n": len(prompts)}


def test_clipped_policy_loss_is_the_hand_computed_pessimistic_bound():
    old = torch.randn(5, dtype=torch.float64).float()
    log_prob = old + torch.log(RATIOS)
    loss, approx_kl, clipfrac = clipped_policy_loss(log_prob, old, ADVANTAGES, EPS, ADV_CLIP)
    assert loss.item() == pytest.approx(EXPECTED, abs=1e-6)
    assert clipfrac.item() == pytest.approx(4 / 5)
    assert approx_kl.item() == pytest.approx(0.5 * float((torch.log(RATIOS) ** 2).mean()), rel=1e-5)


def _ddpo_trainer(tmp_path, tiny_sd_path):
    from diffusers import DDIMScheduler

    from synartifact_hf.ddpo import DDPOConfig, DDPOTrainer, PromptList, pipeline_class

    pipe = pipeline_class(str(tiny_sd_path)).from_pretrained(tiny_sd_path)
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    config = DDPOConfig(logdir=str(tmp_path), sample_num_steps=2, sample_batch_size=5, sample_num_batches_per_epoch=1,
                        train_batch_size=5, train_clip_range=EPS, train_adv_clip_max=ADV_CLIP, save_freq=0,
                        log_images=False)
    return DDPOTrainer(config, GreenMinusRed(), PromptList(["a fox", "a cat"], seed=0), pipe)


def _grpo_trainer(tmp_path, tiny_sd3_path):
    from diffusers import StableDiffusion3Pipeline

    from synartifact_hf.grpo import FlowGRPOConfig, FlowGRPOTrainer, PromptList

    pipe = StableDiffusion3Pipeline.from_pretrained(tiny_sd3_path)
    config = FlowGRPOConfig(logdir=str(tmp_path), sample_num_steps=2, sample_batch_size=6, num_images_per_prompt=3,
                            sample_num_batches_per_epoch=1, train_batch_size=6, clip_range=EPS, adv_clip_max=ADV_CLIP,
                            beta=0.04, save_freq=0, log_images=False)
    return FlowGRPOTrainer(config, GreenMinusRed(), PromptList(["a fox", "a cat"], seed=0), pipe)


@pytest.mark.parametrize("method", ["ddpo", "flow_grpo"])
def test_both_trainers_use_the_clipped_objective_exactly(tmp_path, method, request):
    """Stored log-probs that put each sample's ratio at RATIOS: the trainer's loss of that step is EXPECTED.
    Catches a removed clip or ``maximum`` turned ``minimum`` in the shared objective."""
    if method == "ddpo":
        trainer = _ddpo_trainer(tmp_path, request.getfixturevalue("tiny_sd_path"))
    else:
        trainer = _grpo_trainer(tmp_path, request.getfixturevalue("tiny_sd3_path"))
    (batch,), _ = trainer._generate_samples(0)
    n = batch["timesteps"].shape[0]
    condition = trainer._training_condition(batch)
    args = (batch["latents"][:5, 0], batch["timesteps"][:5, 0], batch["next_latents"][:5, 0])
    condition = {k: torch.cat([v[:5], v[n:n + 5]]) if trainer.config.train_cfg else v[:5] for k, v in condition.items()}
    with torch.no_grad():
        out = trainer.calculate_loss(*args, batch["log_probs"][:5, 0], ADVANTAGES, condition)
        if method == "ddpo":
            loss, approx_kl, _ = out
        else:
            loss, approx_kl = out["loss"], out["approx_kl"]
            assert out["kl"].item() == 0.0  # LoRA starts as the identity: policy == reference
        assert approx_kl.item() < 1e-10  # the sampled log-probs are the current policy's: ratio 1
        current = batch["log_probs"][:5, 0]
        out = trainer.calculate_loss(*args, current - torch.log(RATIOS), ADVANTAGES, condition)
    loss = out[0] if method == "ddpo" else out["loss"]
    assert loss.item() == pytest.approx(EXPECTED, abs=1e-5)


def _pool_threads() -> int:
    return sum(t.name.startswith("ThreadPoolExecutor") for t in threading.enumerate())


def test_reward_pool_is_shut_down_after_train_and_on_error(tmp_path, tiny_sd_path):
    from synartifact_hf.ddpo import DDPOConfig, DDPOTrainer, PromptList

    class FailsSecondEpoch(GreenMinusRed):
        calls = 0

        def __call__(self, images, prompts, metadata):
            type(self).calls += 1
            if type(self).calls > 2:
                raise RuntimeError("reward server down")
            return super().__call__(images, prompts, metadata)

    trainer = _ddpo_trainer(tmp_path, tiny_sd_path)
    before = _pool_threads()
    seen = []
    trainer.config.async_reward_computation = True
    trainer.rewards.asynchronous = True
    trainer.image_samples_callback = lambda data, step, tracker: seen.append(data)
    trainer.train(1)
    assert _pool_threads() == before  # shut down at the end of train()
    # the hook receives TRL's positional shape: [images, prompts, metadata, rewards, reward_info] per batch
    images, prompts, metadata, rewards, info = seen[0][0]
    assert images.shape[0] == len(prompts) == len(metadata) == rewards.shape[0] == 5 and info == {"n": 5}

    config = DDPOConfig(logdir=str(tmp_path / "b"), sample_num_steps=2, sample_batch_size=2,
                        sample_num_batches_per_epoch=2, train_batch_size=2, async_reward_computation=True,
                        save_freq=0, log_images=False)
    pipe = type(trainer.sd_pipeline).from_pretrained(tiny_sd_path)
    pipe.scheduler = type(trainer.sd_pipeline.scheduler).from_config(trainer.sd_pipeline.scheduler.config)
    failing = DDPOTrainer(config, FailsSecondEpoch(), PromptList(["a fox"]), pipe)
    with pytest.raises(RuntimeError, match="reward server down"):
        failing.train(2)
    assert _pool_threads() == before  # and when a reward call fails


def test_prompt_functions_module_is_named_for_what_it_holds():
    import synartifact_hf.ddpo.prompts as old_path
    import synartifact_hf.prompts as instructions
    from synartifact_hf.grpo import ImageNetAnimalPrompts as from_grpo
    from synartifact_hf.rl import prompt_functions

    assert old_path.ImageNetAnimalPrompts is prompt_functions.ImageNetAnimalPrompts is from_grpo
    assert not hasattr(instructions, "PromptList")  # the classifier's instructions stay apart
    assert len(prompt_functions.imagenet_animal_classes()) == 398
