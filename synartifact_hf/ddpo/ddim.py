"""DDIM sampling that also returns the log-probability of every denoising step (DDPO's policy).

With ``eta > 0`` a DDIM step is a Gaussian: x_{t-1} ~ N(mean(x_t, eps_theta(x_t, t)), sigma_t^2 I), with
sigma_t = eta * sqrt(variance(t)) as in ``diffusers.DDIMScheduler.step``. DDPO treats each step as an
action; ``ddim_step_with_logprob`` returns the next latent and log N(x_{t-1} | mean, sigma_t^2 I),
averaged over the latent's elements (the convention of ddpo-pytorch and TRL, which keeps the
importance ratio's scale independent of the latent size). Given ``prev_sample`` it scores that
latent instead of drawing one: that is how training re-evaluates stored trajectories under the
current weights.

Checked against diffusers: with the same noise, the sampled latent equals ``DDIMScheduler.step``'s
(tests/test_ddpo.py).
"""

from __future__ import annotations

import math
from contextlib import nullcontext

import torch

__all__ = ["ddim_step_with_logprob", "sample_with_logprob"]


def _broadcast(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return values.reshape(values.shape[0], *([1] * (like.ndim - 1))).to(like.device, like.dtype)


def ddim_step_with_logprob(
    scheduler,
    model_output: torch.Tensor,
    timestep: torch.Tensor | int,
    sample: torch.Tensor,
    eta: float = 1.0,
    prev_sample: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One DDIM step x_t -> x_{t-1}; returns ``(prev_sample, log_prob)`` with ``log_prob`` of shape (B,).

    ``timestep`` is a scalar or one timestep per sample (B,). ``scheduler`` is a ``DDIMScheduler`` whose
    ``set_timesteps`` has been called. ``eta`` must be > 0.
    """
    if scheduler.num_inference_steps is None:
        raise ValueError("call scheduler.set_timesteps(num_inference_steps) before ddim_step_with_logprob")
    if not eta > 0:
        raise ValueError(f"eta must be > 0 for a DDIM step to have a log-probability; got {eta}")
    batch = sample.shape[0]
    timestep = torch.as_tensor(timestep, device="cpu").long().reshape(-1)
    if timestep.numel() == 1:
        timestep = timestep.expand(batch)
    step = scheduler.config.num_train_timesteps // scheduler.num_inference_steps
    prev_timestep = timestep - step

    alphas_cumprod = scheduler.alphas_cumprod.to("cpu")
    alpha_prod_t = alphas_cumprod[timestep]
    alpha_prod_t_prev = torch.where(
        prev_timestep >= 0,
        alphas_cumprod[prev_timestep.clamp(min=0)],
        torch.as_tensor(scheduler.final_alpha_cumprod, dtype=alphas_cumprod.dtype),
    )
    beta_prod_t = 1 - alpha_prod_t
    beta_prod_t_prev = 1 - alpha_prod_t_prev
    variance = (beta_prod_t_prev / beta_prod_t) * (1 - alpha_prod_t / alpha_prod_t_prev)
    std_dev_t = eta * variance.sqrt()

    # compute in float32 whatever the model's dtype: log-probs of fp16 latents are too coarse
    out = model_output.float()
    x = sample.float()
    a_t, b_t = _broadcast(alpha_prod_t, x), _broadcast(beta_prod_t, x)
    a_prev, std = _broadcast(alpha_prod_t_prev, x), _broadcast(std_dev_t, x)

    kind = scheduler.config.prediction_type
    if kind == "epsilon":
        pred_x0 = (x - b_t.sqrt() * out) / a_t.sqrt()
        pred_eps = out
    elif kind == "sample":
        pred_x0 = out
        pred_eps = (x - a_t.sqrt() * pred_x0) / b_t.sqrt()
    elif kind == "v_prediction":
        pred_x0 = a_t.sqrt() * x - b_t.sqrt() * out
        pred_eps = a_t.sqrt() * out + b_t.sqrt() * x
    else:
        raise ValueError(f"unsupported scheduler prediction_type {kind!r} (epsilon, sample or v_prediction)")
    if scheduler.config.thresholding:
        pred_x0 = scheduler._threshold_sample(pred_x0)
    elif scheduler.config.clip_sample:
        r = scheduler.config.clip_sample_range
        pred_x0 = pred_x0.clamp(-r, r)

    direction = (1 - a_prev - std**2).clamp(min=0).sqrt() * pred_eps
    mean = a_prev.sqrt() * pred_x0 + direction

    if prev_sample is None:
        noise = torch.randn(x.shape, generator=generator, device="cpu" if generator is None else generator.device)
        # Round to the latents' dtype before scoring: training re-scores the stored (e.g. fp16) latent, and
        # fp16 rounding alone moves the importance ratio of late steps past a 1e-4 clip range.
        prev_sample = (mean + std * noise.to(x.device, x.dtype)).to(sample.dtype)
    prev = prev_sample.detach().float()
    log_prob = (
        -((prev - mean) ** 2) / (2 * std**2) - torch.log(std) - math.log(math.sqrt(2 * math.pi))
    )
    log_prob = log_prob.mean(dim=tuple(range(1, log_prob.ndim)))
    return prev_sample.to(sample.dtype), log_prob


@torch.no_grad()
def sample_with_logprob(
    unet,
    vae,
    scheduler,
    prompt_embeds: torch.Tensor,
    negative_prompt_embeds: torch.Tensor | None = None,
    num_inference_steps: int = 50,
    guidance_scale: float = 5.0,
    eta: float = 1.0,
    height: int | None = None,
    width: int | None = None,
    generator: torch.Generator | None = None,
    autocast=nullcontext,
    progress_bar=None,
) -> dict[str, torch.Tensor]:
    """Sample images with DDIM, keeping the trajectory.

    Classifier-free guidance is used iff ``negative_prompt_embeds`` is given. Returns a dict:
    ``images`` (B, 3, H, W) float in [0, 1]; ``latents`` (B, T+1, C, h, w), the trajectory from the
    initial noise to the final latent; ``log_probs`` (B, T) float32; ``timesteps`` (B, T).
    """
    device = prompt_embeds.device
    batch = prompt_embeds.shape[0]
    scale = 2 ** (len(vae.config.block_out_channels) - 1)
    height = height or unet.config.sample_size * scale
    width = width or unet.config.sample_size * scale
    if height % scale or width % scale:
        raise ValueError(f"height and width must be multiples of the VAE's scale factor {scale}; got {height}x{width}")
    scheduler.set_timesteps(num_inference_steps, device=device)
    shape = (batch, unet.config.in_channels, height // scale, width // scale)
    latents = torch.randn(shape, generator=generator, device="cpu" if generator is None else generator.device)
    latents = latents.to(device, prompt_embeds.dtype) * scheduler.init_noise_sigma
    cfg = negative_prompt_embeds is not None
    embeds = torch.cat([negative_prompt_embeds, prompt_embeds]) if cfg else prompt_embeds

    trajectory, log_probs = [latents], []
    timesteps = scheduler.timesteps
    iterator = progress_bar(timesteps) if progress_bar is not None else timesteps
    for t in iterator:
        model_input = torch.cat([latents] * 2) if cfg else latents
        model_input = scheduler.scale_model_input(model_input, t)
        with autocast():
            noise_pred = unet(model_input, t, encoder_hidden_states=embeds).sample
        if cfg:
            uncond, cond = noise_pred.chunk(2)
            noise_pred = uncond + guidance_scale * (cond - uncond)
        latents, log_prob = ddim_step_with_logprob(
            scheduler, noise_pred, t, latents, eta=eta, generator=generator
        )
        trajectory.append(latents)
        log_probs.append(log_prob)

    with autocast():
        decoded = vae.decode(latents.to(vae.dtype) / vae.config.scaling_factor).sample
    images = (decoded.float() / 2 + 0.5).clamp(0, 1)
    return {
        "images": images,
        "latents": torch.stack(trajectory, dim=1),
        "log_probs": torch.stack(log_probs, dim=1),
        "timesteps": timesteps.to(device).repeat(batch, 1),
    }
