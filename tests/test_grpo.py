"""Flow-GRPO (synartifact_hf.grpo) on tiny SD3 (with and without T5) and FLUX pipelines built locally (CPU): the
sampler equals diffusers' pipelines at noise level 0, the SDE keeps the flow's marginals, the step's log-prob
is the Gaussian density, ratio 1 / KL 0 before the first update, gradients only on LoRA, the SDE window,
LoRA save -> load_lora_weights -> same images, resume, 2 processes == 1 process advantages, the direction of
an update (A and -A), the errors, the real-shape builders. (No toy-reward-vs-lr-0 test: on the tiny SD3 the
colour reward barely depends on the latents, README gives the numbers.)"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from synartifact_hf.grpo import (
    FlowGRPOConfig,
    FlowGRPOTrainer,
    PromptList,
    flow_pipeline_class,
    flow_pipeline_family,
    sample_flow_with_logprob,
    sde_step_with_logprob,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: tiny kernels, busy 2-core machine

SD3, SD3_NO_T5, FLUX = "tiny_sd3_path", "tiny_sd3_no_t5_path", "tiny_flux_path"  # conftest fixtures
IDS = {SD3: "sd3", SD3_NO_T5: "sd3-no-t5", FLUX: "flux"}
PROMPTS = ["a fox", "a cat", "a goldfish"]


class GreenMinusRed:
    """Toy reward: mean(green) - mean(red) x 100 (the colour balance follows the latents' channel means)."""

    def __call__(self, images, prompts, metadata):
        return (images[:, 1] - images[:, 0]).mean((1, 2)) * 100, {"n": len(prompts)}


def models(*names):
    return pytest.mark.parametrize("model", names, ids=[IDS[n] for n in names])


def make_pipe(path):
    cls = flow_pipeline_class(str(path))
    # a folder without T5 loads as SD3 without T5 does: text_encoder_3=None, tokenizer_3=None
    no_t5 = cls.__name__ == "StableDiffusion3Pipeline" and not (path / "text_encoder_3").is_dir()
    pipe = cls.from_pretrained(path, **(dict(text_encoder_3=None, tokenizer_3=None) if no_t5 else {}))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def make_config(tmp_path, **overrides):
    """A small, fast config; ``overrides`` replace its fields."""
    values = dict(logdir=str(tmp_path / "logs"), num_epochs=1, sample_num_steps=3, sample_batch_size=4,
                  num_images_per_prompt=2, sample_num_batches_per_epoch=1, train_batch_size=4, train_learning_rate=1e-3,
                  train_adam_weight_decay=0.0, clip_range=0.2, save_freq=0, log_images=False, resolution=32, seed=0)
    values.update(overrides)
    return FlowGRPOConfig(**values)


def snapshot(module) -> dict[str, torch.Tensor]:
    """A copy of every parameter (``changed`` compares against it)."""
    return {name: tensor.clone() for name, tensor in module.state_dict(keep_vars=False).items()}


def changed(module, before) -> set[str]:
    now = dict(module.named_parameters())
    return {name for name in now if name in before and not torch.equal(now[name].detach(), before[name])}


# ---------------------------------------------------------------------------------------------- the pieces


def test_tiny_pipelines_in_the_real_layout_and_real_shapes():
    """The fixtures' folders are diffusers' layout (model_index.json, safetensors, a T5 tokenizer built with
    `tokenizers`); the SD3.5-Medium and FLUX.1-dev shapes (meta device: no memory) have the real parameter
    counts of stabilityai/stable-diffusion-3.5-medium and black-forest-labs/FLUX.1-dev."""
    import json
    import tempfile
    from pathlib import Path

    from transformers import T5TokenizerFast

    from synartifact_hf.tiny_diffusion import build_tiny_sd3_pipeline, flux_pipeline, sd3_pipeline

    folder = build_tiny_sd3_pipeline(Path(tempfile.mkdtemp()) / "sd3")
    index = json.loads((folder / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusion3Pipeline" and index["text_encoder_3"] == ["transformers", "T5EncoderModel"]
    assert (folder / "transformer" / "diffusion_pytorch_model.safetensors").is_file()
    tokenizer = T5TokenizerFast.from_pretrained(folder / "tokenizer_3")
    assert tokenizer.decode(tokenizer("a red fox!").input_ids) == "a red fox!</s>"
    assert json.loads((folder / "tokenizer_3" / "tokenizer.json").read_text())["model"]["type"] == "Unigram"

    counts = {}
    for name, pipe in (("sd35m", sd3_pipeline("sd35-medium", device="meta")), ("flux", flux_pipeline("flux-dev", device="meta"))):
        for part in ("transformer", "vae", "text_encoder", "text_encoder_2", "text_encoder_3"):
            module = getattr(pipe, part, None)
            if module is not None:
                counts[f"{name}.{part}"] = sum(p.numel() for p in module.parameters())
    assert counts == {
        "sd35m.transformer": 2_243_171_520, "sd35m.vae": 83_819_683, "sd35m.text_encoder": 123_650_304,
        "sd35m.text_encoder_2": 694_659_840, "sd35m.text_encoder_3": 4_762_310_656,
        "flux.transformer": 11_901_408_320, "flux.vae": 83_819_683, "flux.text_encoder": 123_060_480,
        "flux.text_encoder_2": 4_762_310_656,
    }


@models(SD3, SD3_NO_T5, FLUX)
@pytest.mark.parametrize("guidance", [4.5, 1.0], ids=["cfg", "nocfg"])
def test_sampler_at_noise_level_zero_equals_the_diffusers_pipeline(model, guidance, request):
    """Same prompts, same initial latents: our sampler's images (and final latents) equal
    StableDiffusion3Pipeline's / FluxPipeline's own (FLUX: embedded guidance 3.5, true CFG with an empty
    negative prompt) within 1e-5 in float32, at noise_level 0 and with an empty SDE window."""
    pipe = make_pipe(request.getfixturevalue(model))
    family = flow_pipeline_family(pipe, 32, embedded_guidance_scale=3.5)
    prompts = ["a fox", "a goldfish"]
    noise = torch.randn(family.latent_shape(2), generator=torch.Generator().manual_seed(0))
    kwargs = dict(num_inference_steps=3, height=32, width=32)
    if type(pipe).__name__ == "FluxPipeline":
        kwargs.update(guidance_scale=3.5, true_cfg_scale=guidance, negative_prompt="" if guidance > 1 else None,
                      latents=family.pack(noise))
    else:
        kwargs.update(guidance_scale=guidance, latents=noise)
    theirs = {kind: pipe(prompts, output_type=kind, **kwargs).images for kind in ("pt", "latent")}
    negative = family.encode_negative("") if guidance > 1 else None
    for ours in (
        sample_flow_with_logprob(family, family.encode(prompts), negative, num_inference_steps=3, guidance_scale=guidance,
                                 noise_level=0.0, latents=noise),
        sample_flow_with_logprob(family, family.encode(prompts), negative, num_inference_steps=3, guidance_scale=guidance,
                                 noise_level=0.7, window=(1, 1), latents=noise),
    ):
        errors = ((ours["images"] - theirs["pt"]).abs().max().item(), (ours["final_latents"] - theirs["latent"]).abs().max().item())
        print(f"{model} guidance {guidance}: max |image error| {errors[0]:.2e}, max |latent error| {errors[1]:.2e}")
        assert max(errors) < 1e-5
        assert ours["log_probs"].shape == (2, 0)


def _gaussian_flow_velocity(x, sigma, mean, std):
    # data N(mean, std^2), x_sigma = (1 - sigma) x0 + sigma eps: v = E[eps - x0 | x_sigma]
    var = (1 - sigma) ** 2 * std**2 + sigma**2
    centred = x - (1 - sigma) * mean
    return sigma / var * centred - (mean + (1 - sigma) * std**2 / var * centred)


def test_sde_keeps_the_flows_marginals_on_gaussian_data():
    """With the exact velocity of Gaussian data N(0.5, 0.3^2), 320k values, 200 steps: the ODE and the SDE at
    noise level 0.7 both end at the data's mean and std (|error| < 0.005, sampling error ~4e-4); the SDE
    really is stochastic (same start, different ends)."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    from synartifact_hf.grpo.sde import euler_step

    mean, std, steps = 0.5, 0.3, 200
    scheduler = FlowMatchEulerDiscreteScheduler(shift=1.0)
    scheduler.set_timesteps(steps)
    ends = {}
    for kind in ("ode", "sde"):
        generator = torch.Generator().manual_seed(0)
        x = torch.randn(20000, 1, 4, 4, generator=generator)
        for i, t in enumerate(scheduler.timesteps):
            v = _gaussian_flow_velocity(x.double(), scheduler.sigmas[i].item(), mean, std).float()
            if kind == "ode":
                x = euler_step(scheduler, v, i, x)
            else:
                x, *_ = sde_step_with_logprob(scheduler, v, t.expand(len(x)), x, noise_level=0.7, generator=generator)
        ends[kind] = x
        print(f"{kind}: mean {x.mean():.4f} std {x.std():.4f} (data 0.5 / 0.3)")
        assert abs(x.mean().item() - mean) < 0.005 and abs(x.std().item() - std) < 0.005
    assert (ends["ode"] - ends["sde"]).abs().mean() > 0.05


def test_step_logprob_is_the_gaussian_density_computed_independently():
    from diffusers import FlowMatchEulerDiscreteScheduler

    scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0)
    scheduler.set_timesteps(5)
    generator = torch.Generator().manual_seed(0)
    x, v, target = (torch.randn(3, 4, 4, 4, generator=generator) for _ in range(3))
    timesteps = scheduler.timesteps[torch.tensor([0, 2, 4])]  # one per sample: the first (sigma = 1) and the last
    sigmas = scheduler.sigmas.double()
    _, log_prob, mean, std = sde_step_with_logprob(scheduler, v, timesteps, x, noise_level=0.7, prev_sample=target)
    expected_lp = []
    for b, k in enumerate((0, 2, 4)):
        s, s_next = sigmas[k], sigmas[k + 1]
        dt = s_next - s
        scale = 0.7 * math.sqrt(s / (1 - (sigmas[1] if s == 1 else s)))
        mu = x[b].double() * (1 + scale**2 / (2 * s) * dt) + v[b].double() * (1 + scale**2 * (1 - s) / (2 * s)) * dt
        sd = scale * math.sqrt(-dt)
        expected_lp.append(torch.distributions.Normal(mu, sd).log_prob(target[b].double()).mean())
        torch.testing.assert_close(mean[b].double(), mu, atol=1e-5, rtol=1e-5)
        assert std[b].flatten()[0].item() == pytest.approx(sd, rel=1e-5)
    torch.testing.assert_close(log_prob.double(), torch.stack(expected_lp), atol=1e-4, rtol=1e-5)
    # in float32 whatever the inputs' dtype; a drawn sample is stored in the input dtype and scored as stored
    drawn, lp16, _, _ = sde_step_with_logprob(scheduler, v.bfloat16(), timesteps, x.bfloat16(), generator=generator)
    assert drawn.dtype == torch.bfloat16 and lp16.dtype == torch.float32
    _, again, _, _ = sde_step_with_logprob(scheduler, v.bfloat16(), timesteps, x.bfloat16(), prev_sample=drawn)
    assert torch.equal(again, lp16)
    # CPS: mean (1 - s') x0 + sqrt(s'^2 - std^2) x1, std = s' sin(a pi / 2); log-prob -mean((x' - mean)^2)
    _, lp_cps, mean_cps, std_cps = sde_step_with_logprob(scheduler, v[:2], timesteps[:2], x[:2], noise_level=0.5,
                                                         prev_sample=target[:2], sde_type="cps")
    s, s_next = sigmas[2], sigmas[3]
    sd = float(s_next) * math.sin(0.25 * math.pi)
    mu = (x[1].double() - s * v[1].double()) * (1 - s_next) + (x[1].double() + (1 - s) * v[1].double()) * math.sqrt(s_next**2 - sd**2)
    torch.testing.assert_close(mean_cps[1].double(), mu, atol=1e-5, rtol=1e-5)
    assert lp_cps[1].item() == pytest.approx(-((target[1].double() - mu) ** 2).mean().item(), rel=1e-5)
    assert std_cps[1].flatten()[0].item() == pytest.approx(sd, rel=1e-5)
    with pytest.raises(ValueError, match="noise_level must be > 0"):
        sde_step_with_logprob(scheduler, v, timesteps, x, noise_level=0.0)
    with pytest.raises(ValueError, match="not on the scheduler's schedule"):
        sde_step_with_logprob(scheduler, v, torch.tensor([123.4, 500.0, 7.0]), x)


# ---------------------------------------------------------------------------------------------- the trainer


@models(SD3, FLUX)
def test_ratio_one_kl_zero_gradients_on_lora_only_and_the_window(tmp_path, model, request):
    """One epoch whose optimizer step comes after all its batches: every recomputed log-prob equals the stored
    one (ratio 1), the KL to the LoRA-disabled transformer is exactly 0 (LoRA starts as the identity), only
    LoRA tensors get gradients and move, the frozen text encoders / VAE / base weights do not. With
    sde_window_size=2 of 4 steps, the transformer is called for training on exactly 2 steps per image (plus
    the reference's call per step for the KL), and those are the window's timesteps."""
    config = make_config(tmp_path, sample_num_steps=4, sde_window_size=2, sde_window_range=[0, 4], train_batch_size=2,
                         train_gradient_accumulation_steps=2, clip_range=1e-4, beta=0.04, sample_num_batches_per_epoch=1)
    pipe = make_pipe(request.getfixturevalue(model))
    frozen = {name: snapshot(getattr(pipe, name)) for name in ("vae", "text_encoder", "text_encoder_2")}
    base = snapshot(pipe.transformer)
    trainer = FlowGRPOTrainer(config, GreenMinusRed(), PromptList(PROMPTS, seed=0), pipe)
    lora = {n for n, p in pipe.transformer.named_parameters() if p.requires_grad}
    assert lora and all("lora_" in n for n in lora)
    lora_start = {n: p.detach().clone() for n, p in pipe.transformer.named_parameters() if n in lora}
    calls = []
    hook = pipe.transformer.register_forward_pre_hook(
        lambda module, args, kwargs: calls.append((module.training, kwargs["timestep"].detach().clone())), with_kwargs=True
    )
    grads = {}
    for name, param in pipe.transformer.named_parameters():
        if param.requires_grad:
            param.register_hook(lambda g, name=name: grads.__setitem__(name, g))
    (record,) = trainer.train()
    hook.remove()
    assert record["global_step"] == 1
    assert record["approx_kl"] < 1e-12 and record["clipfrac"] == 0.0 and record["kl"] == 0.0
    training = [t for is_training, t in calls if is_training]
    assert len(training) == 2 * 2 * 2  # 2 training batches x 2 window steps x (policy + reference)
    start, end = trainer.sample_window(0, 0)
    assert end - start == 2
    window = trainer.family.scheduler.timesteps[start:end]
    if model == FLUX:
        window = window / 1000  # FLUX's transformer takes t / 1000
    # per batch: step j's policy call, then its reference call
    assert all(torch.allclose(t, window[(k // 2) % 2].to(t.dtype).expand_as(t)) for k, t in enumerate(training))
    assert set(grads) == lora
    moved = {n for n, p in pipe.transformer.named_parameters() if n in lora and not torch.equal(p, lora_start[n])}
    # lora_A gets no gradient while lora_B is 0; (SD3's last block's text queries feed nothing: no gradient)
    lora_b = {n for n in lora if "lora_B" in n}
    assert moved <= lora_b and len(moved) >= len(lora_b) - 1
    moved_base = {n for n, p in pipe.transformer.named_parameters() if n in base and not torch.equal(p, base[n])}
    assert not moved_base
    assert not any(changed(getattr(pipe, name), before) for name, before in frozen.items())


@models(SD3, FLUX)
def test_an_optimizer_step_raises_the_objective_and_flipped_advantages_lower_it(tmp_path, model, request):
    """Two identical trainers (same seed: same LoRA init) train one step on the SAME samples, one with the
    advantages A and one with -A; re-evaluated on those samples, the surrogate mean(A * ratio) summed over
    steps rises for the first and falls for the second."""
    from collections import defaultdict

    path = request.getfixturevalue(model)
    trainers = [
        FlowGRPOTrainer(make_config(tmp_path / str(i), train_learning_rate=1e-4, clip_range=10.0, beta=0.0),
                        GreenMinusRed(), PromptList(PROMPTS, seed=0), make_pipe(path))
        for i in range(2)
    ]
    (batch,), sampled = trainers[0]._generate_samples(0)
    rewards = trainers[0].rewards.collect(sampled)
    batch["advantages"] = torch.as_tensor(trainers[0]._advantages(list(sampled[0].prompts), rewards.numpy()), dtype=torch.float32)

    def surrogate(trainer, sign=1.0):
        condition = trainer._training_condition(batch)
        with torch.no_grad():
            return -sum(trainer._step_loss(dict(batch, advantages=sign * batch["advantages"]), j, condition)["loss"].item()
                        for j in range(trainer.num_train_timesteps))

    before = surrogate(trainers[0])
    assert surrogate(trainers[1]) == pytest.approx(before, abs=1e-9)
    for trainer, sign in zip(trainers, (1.0, -1.0)):
        trainer.model.train()
        assert trainer._train_batches([dict(batch, advantages=sign * batch["advantages"])], 0, 0, 0, defaultdict(list)) == 1
    raised, lowered = surrogate(trainers[0]), surrogate(trainers[1])
    print(f"surrogate before {before:.6f}, after a step with A {raised:.6f}, with -A {lowered:.6f}")
    assert raised > before + 1e-5 and lowered < before - 1e-5


@models(SD3, FLUX)
def test_lora_save_load_same_images_checkpoint_and_resume(tmp_path, model, request):
    """After training: save_pretrained writes pytorch_lora_weights.safetensors; a fresh pipeline's own
    load_lora_weights (StableDiffusion3Pipeline's / FluxPipeline's) then samples the same images as the
    trained one (same latents, the pipeline's ODE sampler). Resume: a new trainer on a fresh pipeline starts
    at the next epoch with the SAME adapter tensors its optimizer updates (Adam moments restored) and they
    keep changing."""
    path = request.getfixturevalue(model)
    pipe = make_pipe(path)
    config = make_config(tmp_path, num_epochs=2, save_freq=1, num_checkpoint_limit=1, train_learning_rate=1e-2)
    trainer = FlowGRPOTrainer(config, GreenMinusRed(), PromptList(PROMPTS, seed=0), pipe)
    history = trainer.train()
    assert [h["epoch"] for h in history] == [0, 1]
    out = trainer.save_pretrained(tmp_path / "lora")
    assert sorted(p.name for p in out.iterdir()) == ["pytorch_lora_weights.safetensors"]
    checkpoints = sorted(p.name for p in (tmp_path / "logs" / "flow_grpo" / "checkpoints").iterdir())
    assert checkpoints == ["checkpoint_1"]

    flux = type(pipe).__name__ == "FluxPipeline"
    noise = torch.randn(trainer.family.latent_shape(1), generator=torch.Generator().manual_seed(3))
    kwargs = dict(num_inference_steps=3, height=32, width=32, output_type="pt",
                  latents=trainer.family.pack(noise) if flux else noise)
    trainer.model.eval()
    trained = pipe("a fox", **kwargs).images
    fresh = make_pipe(path)
    untrained = fresh("a fox", **kwargs).images
    fresh.load_lora_weights(out)
    loaded = fresh("a fox", **kwargs).images
    print(f"{model}: max |loaded - trained| {(loaded - trained).abs().max():.2e}, trained vs base {(trained - untrained).abs().max():.2e}")
    torch.testing.assert_close(loaded, trained, atol=1e-5, rtol=0)
    assert (trained - untrained).abs().max() > 1e-4

    pipe2 = make_pipe(path)
    resumed = FlowGRPOTrainer(make_config(tmp_path, num_epochs=3, train_learning_rate=1e-2,
                                          resume_from=str(tmp_path / "logs" / "flow_grpo")),
                              GreenMinusRed(), PromptList(PROMPTS, seed=1), pipe2)
    assert resumed.first_epoch == 2 and resumed.global_step == history[-1]["global_step"] and len(resumed.history) == 2
    trained_lora = {n: p for n, p in pipe.transformer.named_parameters() if "lora_" in n}
    resumed_lora = {n: p for n, p in pipe2.transformer.named_parameters() if "lora_" in n}
    assert all(torch.equal(resumed_lora[n], trained_lora[n]) for n in trained_lora)
    assert {id(p) for p in resumed_lora.values()} == {id(p) for g in resumed.optimizer.param_groups for p in g["params"]}
    assert all(int(s["step"]) > 0 for s in resumed.optimizer.state.values())
    before = snapshot(pipe2.transformer)
    resumed.train()
    assert [h["epoch"] for h in resumed.history] == [0, 1, 2]
    # all but SD3's last block's text-query LoRA (context_pre_only: its text tokens feed nothing)
    last = f"transformer_blocks.{len(pipe2.transformer.transformer_blocks) - 1}.attn.add_q_proj."
    assert changed(pipe2.transformer, before) == {n for n in resumed_lora if not n.startswith(last) or model == FLUX}


def test_offloaded_text_encoders_visit_the_device_once_per_epoch(tmp_path, tiny_sd3_path):
    """offload_text_encoders: the text encoders are moved to the accelerator for the epoch's prompt encoding
    (once, all sampling batches) and back to the CPU; each sampling batch encodes each group's prompt once."""
    pipe = make_pipe(tiny_sd3_path)
    config = make_config(tmp_path, num_epochs=2, offload_text_encoders=True, sample_num_batches_per_epoch=2,
                         train_batch_size=4)
    trainer = FlowGRPOTrainer(config, GreenMinusRed(), PromptList(PROMPTS, seed=0), pipe)
    moves, encoded = [], []
    for name in trainer.family.text_encoders:
        module = getattr(pipe, name)
        original = module.to
        module.to = lambda *a, original=original, name=name, **k: moves.append(name) or original(*a, **k)
    encode = trainer.family.encode
    trainer.family.encode = lambda prompts: encoded.append(list(prompts)) or encode(prompts)
    trainer.train()
    assert trainer.family.text_encoders == ("text_encoder", "text_encoder_2", "text_encoder_3")
    assert sorted(moves) == sorted(list(trainer.family.text_encoders) * 4)  # there and back, 2 epochs
    assert len(encoded) == 4 and all(len(p) == 2 for p in encoded)  # 2 groups of 2 images per batch
    assert all(getattr(pipe, n).device.type == "cpu" for n in trainer.family.text_encoders)


def test_errors_name_what_is_allowed(tmp_path, tiny_sd_path, tiny_sd3_path):
    from diffusers import DDIMScheduler, EulerDiscreteScheduler

    from synartifact_hf.ddpo import DDPOConfig, DDPOTrainer, pipeline_class

    sd = pipeline_class(str(tiny_sd_path)).from_pretrained(tiny_sd_path)
    with pytest.raises(TypeError, match="train it with synartifact_hf.ddpo.DDPOTrainer"):
        FlowGRPOTrainer(make_config(tmp_path), GreenMinusRed(), PromptList(PROMPTS), sd)
    sd3 = make_pipe(tiny_sd3_path)
    with pytest.raises(TypeError, match="synartifact_hf.grpo.FlowGRPOTrainer"):
        DDPOTrainer(DDPOConfig(logdir=str(tmp_path)), GreenMinusRed(), PromptList(PROMPTS), sd3)
    with pytest.raises(ValueError, match="DDPOTrainer"):
        flow_pipeline_class(str(tiny_sd_path))
    with pytest.raises(ValueError, match="FlowGRPOTrainer"):
        pipeline_class(str(tiny_sd3_path))
    with pytest.raises(ValueError, match="num_images_per_prompt must be >= 2"):
        FlowGRPOConfig(num_images_per_prompt=1, sample_batch_size=2)
    with pytest.raises(ValueError, match="sample_batch_size must be a multiple of num_images_per_prompt"):
        FlowGRPOConfig(num_images_per_prompt=3, sample_batch_size=4)
    with pytest.raises(ValueError, match=r"sde_window_range must be \[first, end\) with 0 <= first < end <= sample_num_steps \(10\)"):
        FlowGRPOConfig(sde_window_range=[2, 12])
    with pytest.raises(ValueError, match=r"sde_window_size must be an integer in \[0, 3\]"):
        FlowGRPOConfig(sde_window_range=[2, 5], sde_window_size=4)
    with pytest.raises(ValueError, match="noise_level must be > 0"):
        FlowGRPOConfig(noise_level=0.0)
    with pytest.raises(ValueError, match=r"noise_level must be in \(0, 1\] for CPS"):
        FlowGRPOConfig(noise_level=1.5, sde_type="cps", sde_window_range=[0, 5])
    with pytest.raises(ValueError, match="end < sample_num_steps"):
        FlowGRPOConfig(sde_type="cps")
    with pytest.raises(ValueError, match="beta > 0 needs use_lora=True"):
        FlowGRPOConfig(use_lora=False)
    with pytest.raises(ValueError, match="multiple of 4"):
        FlowGRPOTrainer(make_config(tmp_path, resolution=34), GreenMinusRed(), PromptList(PROMPTS), sd3)
    sd3.scheduler = EulerDiscreteScheduler.from_config(DDIMScheduler().config)
    with pytest.raises(TypeError, match="FlowMatchEulerDiscreteScheduler"):
        FlowGRPOTrainer(make_config(tmp_path), GreenMinusRed(), PromptList(PROMPTS), sd3)


def test_two_processes_give_one_process_advantages(tmp_path, tiny_sd3_path):
    """One prompt, 4 images per epoch: as 2 torchrun CPU processes (2 images each, the group spans both) and
    as 1 process (4 images). Per-image noise is keyed by the image's index over all processes, so the images
    and rewards are the same; the advantages, normalised over the gathered group, are the same too (and not
    what each process's half alone would give); DDP keeps both processes' LoRA identical."""
    import json
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.is_file():
        pytest.skip("torchrun not found next to the Python executable")
    script = str(Path(__file__).with_name("grpo_multiprocess_run.py"))
    env = dict(os.environ, ACCELERATE_USE_CPU="true", OMP_NUM_THREADS="1")
    runs = {2: [str(torchrun), "--standalone", "--nproc_per_node", "2", script], 1: [sys.executable, script]}
    results = {}
    for n, command in runs.items():
        logdir = tmp_path / f"n{n}"
        logdir.mkdir()
        proc = subprocess.Popen([*command, str(tiny_sd3_path), str(logdir)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=env, start_new_session=True)
        try:
            _, stderr = proc.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            pytest.fail(f"{n}-process Flow-GRPO run did not finish in 300 s")
        assert proc.returncode == 0, stderr[-4000:]
        results[n] = [json.loads((logdir / f"rank{r}.json").read_text()) for r in range(n)]
    two, (one,) = results[2], results[1]
    assert [r["num_processes"] for r in two] == [2, 2] and one["num_processes"] == 1
    np.testing.assert_allclose(two[0]["local_rewards"] + two[1]["local_rewards"], one["local_rewards"], atol=1e-4)
    np.testing.assert_allclose(two[0]["advantages"], one["advantages"], atol=1e-4)
    np.testing.assert_allclose(two[1]["advantages"], one["advantages"], atol=1e-4)
    half = np.asarray(two[0]["local_rewards"])
    assert not np.allclose((half - half.mean()) / (half.std() + 1e-6), one["advantages"][:2], atol=1e-2)
    assert two[0]["checksum"] == two[1]["checksum"]
    print("advantages 1 process", np.round(one["advantages"], 4), "2 processes", np.round(two[0]["advantages"], 4))
