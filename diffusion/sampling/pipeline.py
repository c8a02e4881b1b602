"""KSampler semantics (comfy-compat §10.4): schedule with denoise, step window, noise, inpainting, callbacks.

`sample` is what the KSampler nodes call; `sample_with_guider` is the core that SamplerCustom and
SamplerCustomAdvanced share: LATENT in VAE space in, LATENT in VAE space out.
"""

from __future__ import annotations

import math
from typing import Callable, Optional

import torch
import torch.nn.functional as F

from .guidance import CFGGuider
from .names import DISCARD_PENULTIMATE_SIGMA_SAMPLERS
from .registry import Sampler, get_sampler
from .schedules import calculate_sigmas

# step index, x0 prediction (model space), current x, total steps
StepCallback = Optional[Callable[[int, torch.Tensor, torch.Tensor, int], None]]


def repeat_to_batch_size(tensor: torch.Tensor, batch_size: int, dim: int = 0) -> torch.Tensor:
    """Cut or tile `tensor` along `dim` to exactly `batch_size`."""
    size = tensor.shape[dim]
    if size > batch_size:
        return tensor.narrow(dim, 0, batch_size)
    if size < batch_size:
        repeats = [1] * tensor.ndim
        repeats[dim] = math.ceil(batch_size / size)
        return tensor.repeat(repeats).narrow(dim, 0, batch_size)
    return tensor


def fix_empty_latent_channels(model, latent: torch.Tensor) -> torch.Tensor:
    """An all-zero latent with the wrong channel count (EmptyLatentImage for another family) gets the model's."""
    channels = model.latent_format.latent_channels
    if latent.shape[1] != channels and torch.count_nonzero(latent) == 0:
        latent = repeat_to_batch_size(latent, channels, dim=1)
    return latent


def model_sigmas(model_sampling, scheduler: str, steps: int, sampler_name: str | None = None) -> torch.Tensor:
    """The schedule for `steps`; samplers that discard the penultimate sigma get steps+1 minus that one."""
    discard = sampler_name in DISCARD_PENULTIMATE_SIGMA_SAMPLERS
    sigmas = calculate_sigmas(model_sampling, scheduler, steps + 1 if discard else steps)
    return torch.cat([sigmas[:-2], sigmas[-1:]]) if discard else sigmas


def denoise_sigmas(model_sampling, scheduler: str, steps: int, denoise: float | None,
                   sampler_name: str | None = None) -> torch.Tensor:
    """KSampler.set_steps: the last steps+1 sigmas of a steps/denoise schedule; empty when denoise <= 0."""
    if denoise is None or denoise > 0.9999:
        return model_sigmas(model_sampling, scheduler, steps, sampler_name)
    if denoise <= 0.0:
        return torch.FloatTensor([])
    return model_sigmas(model_sampling, scheduler, int(steps / denoise), sampler_name)[-(steps + 1):]


def step_window(sigmas: torch.Tensor, start_step: int | None, last_step: int | None,
                force_full_denoise: bool) -> torch.Tensor | None:
    """Cut sigmas to [start_step, last_step]; None when start_step leaves nothing to do."""
    if last_step is not None and last_step < len(sigmas) - 1:
        sigmas = sigmas[: last_step + 1].clone()
        if force_full_denoise:
            sigmas[-1] = 0
    if start_step is not None:
        if start_step < len(sigmas) - 1:
            sigmas = sigmas[start_step:]
        else:
            return None
    return sigmas


def prepare_noise_mask(noise_mask: torch.Tensor, shape: torch.Size, device) -> torch.Tensor:
    """A noise_mask resized (bilinear) to the latent, repeated over channels and batch."""
    mask = noise_mask.reshape((-1, 1, noise_mask.shape[-2], noise_mask.shape[-1])).float()
    mask = F.interpolate(mask, size=(shape[2], shape[3]), mode="bilinear")
    mask = torch.cat([mask] * shape[1], dim=1)
    return repeat_to_batch_size(mask, shape[0]).to(device)


class InpaintDenoiser:
    """Keeps the unmasked region on the noised original: blends x in and x0 out (mask 1 = regenerate)."""

    def __init__(self, denoiser, latent: torch.Tensor, mask: torch.Tensor, noise: torch.Tensor, model_sampling) -> None:
        self.denoiser = denoiser
        self.latent = latent
        self.mask = mask
        self.noise = noise
        self.model_sampling = model_sampling

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, **extra_args) -> torch.Tensor:
        keep = 1.0 - self.mask
        noised_original = self.model_sampling.noise_scaling(sigma, self.noise, self.latent)
        x = x * self.mask + noised_original * keep
        return self.denoiser(x, sigma, **extra_args) * self.mask + self.latent * keep


def sample_with_guider(guider: CFGGuider, noise: torch.Tensor, latent: torch.Tensor, sampler: Sampler,
                       sigmas: torch.Tensor, noise_mask: torch.Tensor | None = None, callback: StepCallback = None,
                       disable_pbar: bool = False, seed: int | None = None) -> torch.Tensor:
    """Sample from noise + latent (VAE space) along sigmas; returns the result in VAE space, float32, on CPU."""
    if sigmas.shape[-1] == 0:
        return latent
    model = guider.model
    model_sampling = model.model_sampling
    latent_format = model.latent_format
    device = getattr(getattr(model, "devices", None), "device", torch.device("cpu"))
    latent = fix_empty_latent_channels(model, latent)
    latent_in = latent_format.process_in(latent) if torch.count_nonzero(latent) > 0 else latent
    latent_in = latent_in.to(device)
    noise = noise.to(device=device, dtype=latent_in.dtype)
    sigmas = sigmas.to(device)
    guider.prepare(noise.shape, device, latent_image=latent_in, denoise_mask=noise_mask)
    denoiser = guider
    if noise_mask is not None:
        mask = prepare_noise_mask(noise_mask, noise.shape, device)
        inpaint_noise = noise
        if sampler.random_inpaint_noise:
            generator = torch.Generator().manual_seed((41 if seed is None else seed) + 1)
            inpaint_noise = torch.randn(noise.shape, generator=generator).to(noise)
        denoiser = InpaintDenoiser(guider, latent_in, mask, inpaint_noise, model_sampling)
    sigma_max = float(model_sampling.sigma_max)
    first = float(sigmas[0])
    max_denoise = math.isclose(sigma_max, first, rel_tol=1e-05) or first > sigma_max
    x = model_sampling.noise_scaling(sigmas[0], noise, latent_in, max_denoise)
    total_steps = len(sigmas) - 1
    step_callback = None
    if callback is not None:
        step_callback = lambda info: callback(info["i"], info["denoised"], info["x"], total_steps)
    try:
        model_specific = {"model_sampling": model_sampling} if getattr(sampler, "needs_model_sampling", False) else {}
        samples = sampler(denoiser, x, sigmas, extra_args={"seed": seed}, callback=step_callback, disable=disable_pbar,
                          **model_specific)
    finally:
        guider.cleanup()
    samples = model_sampling.inverse_noise_scaling(sigmas[-1], samples)
    return latent_format.process_out(samples).to(device="cpu", dtype=torch.float32)


def sample(model, noise: torch.Tensor, steps: int, cfg: float, sampler_name: str, scheduler: str, positive: list,
           negative: list, latent: torch.Tensor, denoise: float = 1.0, start_step: int | None = None,
           last_step: int | None = None, force_full_denoise: bool = False, noise_mask: torch.Tensor | None = None,
           callback: StepCallback = None, disable_pbar: bool = False, seed: int | None = None) -> torch.Tensor:
    """ComfyUI's comfy.sample.sample: KSampler over a LATENT's samples (VAE space in and out)."""
    sampler = get_sampler(sampler_name)
    sigmas = denoise_sigmas(model.model_sampling, scheduler, steps, denoise, sampler_name)
    sigmas = step_window(sigmas, start_step, last_step, force_full_denoise)
    if sigmas is None:
        return latent
    guider = CFGGuider(model, positive, negative, cfg)
    return sample_with_guider(guider, noise, latent, sampler, sigmas, noise_mask, callback, disable_pbar, seed)
