"""What the demo trainers share (``train_demo``, ``train_demo_controlnet``, ``train_demo_lora``).

Reading a demo checkpoint into modules, the learning-rate schedule and time budget, the weighted
noise-prediction loss, the EMA, and turning a settings dataclass into command-line flags.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable
from dataclasses import asdict, fields
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import Tensor, nn

from diffusion.demo.checkpoint import DEMO_UNET, DEMO_VAE, TEXT_PREFIX, UNET_PREFIX, VAE_PREFIX
from diffusion.demo.text import build_text_encoder, encode_tokens
from diffusion.models.unet import UNetModel
from diffusion.models.vae import AutoencoderKL
from tools import data_parallel


class TimestepWeighting(Protocol):
    """The settings fields that shape which timesteps are trained and how their losses weigh."""

    high_noise_share: float
    high_noise_from: int
    snr_weight_cap: float


def log(message: str) -> None:
    """A timestamped line; in a data-parallel run only the leader speaks."""
    if data_parallel.is_leader():
        print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)



def to_pixels(images: Tensor) -> Tensor:
    """uint8 ``[B, H, W, 3]`` -> float ``[B, 3, H, W]`` in -1..1, contiguous.

    The permuted view is channels-last in memory, and convolutions keep that layout all the way
    through: under bfloat16 autocast on a CPU that made an autoencoder step 2.4x slower.
    """
    return (images.permute(0, 3, 1, 2).float() / 127.5 - 1.0).contiguous()


def to_uint8(pixels: Tensor) -> np.ndarray:
    """float ``[B, 3, H, W]`` in -1..1 -> uint8 ``[B, H, W, 3]``."""
    return ((pixels.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def progress(step: int, steps: int, started: float, minutes: float) -> float:
    """Fraction done: by steps, or by the wall-clock budget when that runs out first."""
    by_steps = step / max(steps, 1)
    by_time = (time.time() - started) / (minutes * 60) if minutes > 0 else 0.0
    return min(max(by_steps, by_time), 1.0)


def learning_rate(base: float, step: int, warmup: int, done: float) -> float:
    """Linear warm-up, then cosine decay to a tenth."""
    if step < warmup:
        return base * (step + 1) / warmup
    return base * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * done)))



@torch.no_grad()
def encode_pool(vae: AutoencoderKL, images: Tensor, batch: int = 512) -> tuple[Tensor, Tensor]:
    """Posterior mean and standard deviation of every pool image, ``[N, 4, h, w]`` each."""
    means, stds = [], []
    for start in range(0, images.shape[0], batch):
        mean, logvar = vae.encode_moments(to_pixels(images[start : start + batch]))
        means.append(mean)
        stds.append(torch.exp(0.5 * logvar))
    return torch.cat(means), torch.cat(stds)



class Diffusion(nn.Module):
    """UNet and text encoder trained together (one optimiser, one EMA)."""

    def __init__(self) -> None:
        super().__init__()
        self.unet = UNetModel(DEMO_UNET)
        self.text = build_text_encoder()

    def forward(self, x: Tensor, timesteps: Tensor, tokens: Tensor) -> Tensor:
        return self.unet(x, timesteps, encode_tokens(self.text, tokens))


def sample_timesteps(count: int, settings: TimestepWeighting, generator: torch.Generator, device: torch.device) -> Tensor:
    """Uniform over 0..999, with a share ``high_noise_share`` drawn from ``high_noise_from..999``."""
    uniform = torch.randint(0, 1000, (count,), generator=generator, device=device)
    high = torch.randint(settings.high_noise_from, 1000, (count,), generator=generator, device=device)
    pick_high = torch.rand(count, generator=generator, device=device) < settings.high_noise_share
    return torch.where(pick_high, high, uniform)


def diffusion_loss(predict: Callable[[Tensor, Tensor], Tensor], x0: Tensor, alphas_cumprod: Tensor,
                   settings: TimestepWeighting, generator: torch.Generator) -> Tensor:
    """eps-prediction MSE weighted by min(1 + sigma², cap) (x0-space error, capped at low SNR).

    ``predict(noisy, timesteps)`` is the model with its conditioning already bound.
    """
    timesteps = sample_timesteps(x0.shape[0], settings, generator, x0.device)
    alpha_bar = alphas_cumprod[timesteps].view(-1, 1, 1, 1)
    noise = torch.randn(x0.shape, generator=generator, device=x0.device)
    noisy = alpha_bar.sqrt() * x0 + (1 - alpha_bar).sqrt() * noise
    prediction = predict(noisy, timesteps.float())
    weight = (1.0 / alpha_bar.view(-1)).clamp(max=settings.snr_weight_cap)
    per_sample = (prediction - noise).square().mean(dim=(1, 2, 3))
    return (weight * per_sample).sum() / weight.sum()


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, decay: float) -> None:
    for target, source in zip(ema.parameters(), model.parameters(), strict=True):
        target.lerp_(source, 1.0 - decay)



def read_checkpoint(path: Path) -> dict[str, dict[str, Tensor]]:
    """The parts of a demo checkpoint as float32 state dicts: ``{"unet", "vae", "text"}``."""
    from safetensors.torch import load_file

    parts: dict[str, dict[str, Tensor]] = {"unet": {}, "vae": {}, "text": {}}
    for key, value in load_file(str(path)).items():
        for part, prefix in (("unet", UNET_PREFIX), ("vae", VAE_PREFIX), ("text", TEXT_PREFIX)):
            if key.startswith(prefix):
                parts[part][key[len(prefix):]] = value.float()
    return parts


def load_demo_parts(path: Path) -> tuple[Diffusion, AutoencoderKL]:
    """A demo checkpoint's UNet + text encoder (as ``Diffusion``) and VAE: fp32, eval mode, frozen."""
    parts = read_checkpoint(path)
    model = Diffusion()
    model.unet.load_state_dict(parts["unet"])
    model.text.load_state_dict(parts["text"])
    vae = AutoencoderKL(DEMO_VAE)
    vae.load_state_dict(parts["vae"])
    return model.eval().requires_grad_(False), vae.eval().requires_grad_(False)



def _boolean(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, not {text!r}")


def add_settings_arguments(parser: argparse.ArgumentParser, defaults: object) -> None:
    """One ``--flag`` per field of a settings dataclass, typed and defaulted by the field's value."""
    for name, value in asdict(defaults).items():
        kind = _boolean if isinstance(value, bool) else type(value)
        parser.add_argument("--" + name.replace("_", "-"), type=kind, default=value)


def settings_from(args: argparse.Namespace, kind: type) -> object:
    """The settings dataclass ``kind`` filled from parsed ``add_settings_arguments`` flags."""
    return kind(**{field.name: getattr(args, field.name) for field in fields(kind)})
