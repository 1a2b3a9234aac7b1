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
    family,
    condition: dict[str, torch.Tensor],
    negative_condition: dict[str, torch.Tensor] | None = None,
    unet=None,
    num_inference_steps: int = 50,
    guidance_scale: float = 5.0,
    eta: float = 1.0,
    generator: torch.Generator | None = None,
    autocast=nullcontext,
    progress_bar=None,
) -> dict[str, torch.Tensor]:
    """Sample images with DDIM, keeping the trajectory; the same loop for every pipeline family.

    ``family`` is a `pipeline_family(pipe)` (``families.py``), ``condition`` its ``encode(prompts)``.
    Classifier-free guidance is used iff ``negative_condition`` (``family.encode_negative(...)``) is
    given. ``unet`` defaults to the pipeline's. With the same ``generator`` this draws the same noise
    as the pipeline's ``__call__(..., eta=eta)`` with a ``DDIMScheduler``, hence the same images
    (tests/test_ddpo.py). Returns a dict: ``images`` (B, 3, H, W) float in [0, 1]; ``latents``
    (B, T+1, C, h, w), the trajectory from the initial noise to the final latent; ``log_probs``
    (B, T) float32; ``timesteps`` (B, T).
    """
    unet = family.pipeline.unet if unet is None else unet
    scheduler = family.scheduler
    first = next(iter(condition.values()))
    device, batch = first.device, first.shape[0]
    scheduler.set_timesteps(num_inference_steps, device=device)
    latents = torch.randn(
        family.latent_shape(batch), generator=generator, device="cpu" if generator is None else generator.device
    )
    latents = latents.to(device, first.dtype) * scheduler.init_noise_sigma

    trajectory, log_probs = [latents], []
    timesteps = scheduler.timesteps
    iterator = progress_bar(timesteps) if progress_bar is not None else timesteps
    guided = negative_condition is not None
    if guided:  # paired once for the whole trajectory, not at every step
        condition = family.with_negative(condition, negative_condition)
    for t in iterator:
        with autocast():
            noise_pred = family.predict(
                unet, scheduler.scale_model_input(latents, t), t, condition, guidance_scale if guided else None
            )
        latents, log_prob = ddim_step_with_logprob(scheduler, noise_pred, t, latents, eta=eta, generator=generator)
        trajectory.append(latents)
        log_probs.append(log_prob)

    return {
        "images": family.decode(latents),
        "latents": torch.stack(trajectory, dim=1),
        "log_probs": torch.stack(log_probs, dim=1),
        "timesteps": timesteps.to(device).repeat(batch, 1),
    }
