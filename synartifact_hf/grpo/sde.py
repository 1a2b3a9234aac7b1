"""Flow-GRPO's policy: a rectified-flow sampler whose steps on a window are an SDE with the ODE's marginals, each
a Gaussian with a log-probability (Liu et al. 2025, "Flow-GRPO", arXiv 2505.05470, Eq. 9-12; the math of
``flow_grpo/diffusers_patch/sd3_sde_with_logprob.py``).

The flow x_sigma = (1 - sigma) x_0 + sigma eps is sampled by diffusers' ``FlowMatchEulerDiscreteScheduler`` with
the Euler ODE step x_{sigma'} = x_sigma + (sigma' - sigma) v. Its marginal-preserving reverse SDE,
discretised with step dt = sigma' - sigma < 0 and noise scale sigma_t = a * sqrt(sigma / (1 - sigma))
(``noise_level`` a; sigma = 1 at the first step uses the next sigma, as the reference does), is

    x_{sigma'} = x + [v + sigma_t^2 / (2 sigma) (x + (1 - sigma) v)] dt + sigma_t sqrt(-dt) eps,

so the step is N(mean, (sigma_t sqrt(-dt))^2 I) (``sde_type="sde"``). Coefficients-Preserving Sampling
(``sde_type="cps"``, arXiv 2509.05952) instead keeps the DDIM-like coefficients: with x0 = x - sigma v and
x1 = x + (1 - sigma) v, the next sample is N((1 - sigma') x0 + sqrt(sigma'^2 - s^2) x1, s^2 I),
s = sigma' sin(a pi / 2).

``sde_step_with_logprob`` returns ``(prev_sample, log_prob, prev_sample_mean, std_dev_t)``: ``log_prob`` is
the Gaussian log-density averaged over the non-batch dimensions (as the reference), in float32 whatever the
input dtype; for ``"cps"`` it is, as in the reference and the CPS paper, ``-mean((x' - mean)^2)`` (the
constants and the 1/(2 s^2) scale dropped: ``s`` is 0 at the last step). ``std_dev_t`` is the step's standard
deviation, shape (B, 1, ...), so that the KL between two policies' steps is ``(mean - mean_ref)^2 / (2 std^2)``
(the reference divides by ``sigma_t^2`` without the step's ``-dt`` for ``"sde"``; ours is the exact KL of the
two Gaussians).

``sample_flow_with_logprob`` runs the whole trajectory: SDE on the window's steps, plain Euler elsewhere,
keeping only the window's latents, timesteps and log-probs. With ``noise_level=0`` or an empty window it is
exactly the pipeline's ODE sampler (tests/test_grpo.py checks it against ``StableDiffusion3Pipeline`` and
``FluxPipeline`` to 1e-5).
"""

from __future__ import annotations

import math
from contextlib import nullcontext

import torch

from .config import SDE_TYPES

__all__ = ["SDE_TYPES", "draw_noise", "euler_step", "sample_flow_with_logprob", "sde_step_with_logprob", "step_indices"]


def step_indices(scheduler, timestep) -> torch.Tensor:
    """Index in ``scheduler.timesteps`` of each entry of ``timestep`` (a scalar or (B,)); a clear error for a
    timestep that is not on the schedule."""
    if scheduler.timesteps is None or getattr(scheduler, "num_inference_steps", None) is None:
        raise ValueError("call scheduler.set_timesteps(num_inference_steps) before sde_step_with_logprob")
    schedule = scheduler.timesteps.detach().float().cpu()
    t = torch.as_tensor(timestep).detach().float().cpu().reshape(-1)
    distance = (schedule[None, :] - t[:, None]).abs()
    best, index = distance.min(dim=1)
    off = best > 1e-3 * schedule.abs().max().clamp(min=1)
    if off.any():
        raise ValueError(f"timestep(s) {t[off].tolist()} are not on the scheduler's schedule {schedule.tolist()}")
    return index


def draw_noise(shape, generator, device) -> torch.Tensor:
    """Standard normal noise of ``shape`` in float32 on ``device``, drawn with ``generator`` (None, one, or a list
    of one per sample, each drawing its own sample's noise on its own device)."""
    from diffusers.utils.torch_utils import randn_tensor

    if isinstance(generator, list):  # one generator per sample: the draws do not depend on the batch layout
        return torch.cat([randn_tensor((1, *shape[1:]), generator=g, device=g.device, dtype=torch.float32)
                          for g in generator]).to(device)
    draw_on = "cpu" if generator is None else generator.device
    return randn_tensor(shape, generator=generator, device=draw_on, dtype=torch.float32).to(device)


def sde_step_with_logprob(
    scheduler,
    model_output: torch.Tensor,
    timestep: torch.Tensor,
    sample: torch.Tensor,
    noise_level: float = 0.7,
    prev_sample: torch.Tensor | None = None,
    generator: torch.Generator | list[torch.Generator] | None = None,
    sde_type: str = "sde",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One SDE step x_sigma -> x_sigma' of a ``FlowMatchEulerDiscreteScheduler`` (after ``set_timesteps``).

    ``timestep`` is a (B,) tensor of the scheduler's timesteps (a scalar is broadcast); ``model_output`` the
    predicted velocity. Draws ``prev_sample`` (with ``generator``: one, or a list of one per sample) unless
    given, then scores it. Returns ``(prev_sample, log_prob, prev_sample_mean, std_dev_t)``; see the module
    docstring. ``prev_sample`` is returned in ``sample``'s dtype and scored as stored in it.
    """
    if sde_type not in SDE_TYPES:
        raise ValueError(f"sde_type must be one of {SDE_TYPES}; got {sde_type!r}")
    if not noise_level > 0:
        raise ValueError(f"noise_level must be > 0 for an SDE step to have a log-probability; got {noise_level}")
    batch = sample.shape[0]
    index = step_indices(scheduler, timestep)
    if index.numel() == 1:
        index = index.expand(batch)
    # bf16 / fp16 overflow in the mean; everything in float32 as the reference does
    out, x = model_output.float(), sample.float()
    sigmas = scheduler.sigmas.detach().float().to(x.device)
    view = (-1, *([1] * (x.ndim - 1)))
    sigma = sigmas[index.to(x.device)].view(view)
    sigma_prev = sigmas[(index + 1).to(x.device)].view(view)
    dt = sigma_prev - sigma

    if sde_type == "sde":
        sigma_max = sigmas[1]
        noise_scale = torch.sqrt(sigma / (1 - torch.where(sigma == 1, sigma_max, sigma))) * noise_level
        mean = x * (1 + noise_scale**2 / (2 * sigma) * dt) + out * (1 + noise_scale**2 * (1 - sigma) / (2 * sigma)) * dt
        std = noise_scale * torch.sqrt(-dt)
    else:
        std = sigma_prev * math.sin(noise_level * math.pi / 2)
        pred_x0 = x - sigma * out
        pred_x1 = x + out * (1 - sigma)
        mean = pred_x0 * (1 - sigma_prev) + pred_x1 * torch.sqrt(sigma_prev**2 - std**2)

    if prev_sample is None:
        # rounded to the latents' dtype before scoring: training re-scores the stored latent
        prev_sample = (mean + std * draw_noise(x.shape, generator, x.device)).to(sample.dtype)
    prev = prev_sample.detach().float()
    if sde_type == "sde":
        log_prob = -((prev - mean) ** 2) / (2 * std**2) - torch.log(std) - math.log(math.sqrt(2 * math.pi))
    else:
        log_prob = -((prev - mean) ** 2)
    log_prob = log_prob.mean(dim=tuple(range(1, log_prob.ndim)))
    return prev_sample.to(sample.dtype), log_prob, mean, std.expand(batch, *std.shape[1:])


def euler_step(scheduler, model_output: torch.Tensor, index: int, sample: torch.Tensor) -> torch.Tensor:
    """The ODE step ``FlowMatchEulerDiscreteScheduler.step`` takes at step ``index`` (float32, back to
    ``sample``'s dtype), for a whole batch at one step."""
    sigma, sigma_next = scheduler.sigmas[index], scheduler.sigmas[index + 1]
    return (sample.float() + (sigma_next - sigma) * model_output.float()).to(model_output.dtype)


@torch.no_grad()
def sample_flow_with_logprob(
    family, condition: dict[str, torch.Tensor], negative_condition: dict[str, torch.Tensor] | None = None, model=None,
    num_inference_steps: int = 10, guidance_scale: float = 4.5, noise_level: float = 0.7, sde_type: str = "sde",
    window: tuple[int, int] | None = None, latents: torch.Tensor | None = None,
    generator: torch.Generator | list[torch.Generator] | None = None, autocast=nullcontext,
) -> dict[str, torch.Tensor]:
    """Sample a batch with a flow family (``synartifact_hf.rl.families``; ``condition`` its ``encode``):
    SDE steps on ``window`` = (first, end) step indices (None: every step; an empty window or
    ``noise_level=0``: the pipeline's plain Euler ODE), Euler elsewhere. CFG iff ``negative_condition`` is
    given (paired once here). ``latents``: the initial noise in the family's ``latent_shape`` layout (else
    drawn with ``generator``). Returns ``images`` (B, 3, H, W) in [0, 1]; ``latents`` / ``next_latents``
    (B, W, ...) before and after each window step; ``log_probs`` (B, W) float32; ``timesteps`` (B, W);
    ``final_latents`` (what the VAE decodes).
    """
    model = family.model if model is None else model
    scheduler = family.scheduler
    first = next(iter(condition.values()))
    device, batch = first.device, first.shape[0]
    timesteps = family.set_timesteps(num_inference_steps, device)
    if latents is None:
        latents = draw_noise(family.latent_shape(batch), generator, device)
    latents = family.pack(latents.to(device, first.dtype))
    start, end = window if window is not None else (0, len(timesteps))
    if noise_level == 0:
        start = end = 0
    guided = negative_condition is not None
    if guided:
        condition = family.with_negative(condition, negative_condition)

    before, after, log_probs, window_timesteps = [], [], [], []
    for i, t in enumerate(timesteps):
        t_batch = t.expand(batch)
        with autocast():
            velocity = family.predict(model, latents, t_batch, condition, guidance_scale if guided else None)
        if start <= i < end:
            new, log_prob, _, _ = sde_step_with_logprob(
                scheduler, velocity, t_batch, latents, noise_level=noise_level, generator=generator, sde_type=sde_type
            )
            before.append(latents)
            after.append(new)
            log_probs.append(log_prob)
            window_timesteps.append(t_batch)
            latents = new
        else:
            latents = euler_step(scheduler, velocity, i, latents)

    def stack(items, *shape):
        return torch.stack(items, dim=1) if items else torch.empty(batch, 0, *shape, device=device)

    return {
        "images": family.decode(latents),
        "latents": stack(before, *latents.shape[1:]),
        "next_latents": stack(after, *latents.shape[1:]),
        "log_probs": stack(log_probs),
        "timesteps": stack(window_timesteps),
        "final_latents": latents,
    }
