"""Seed-compatible noise: the initial latent noise and the samplers' extra noise (comfy-compat §10.2)."""

from __future__ import annotations

from typing import Callable, Sequence

import torch

NoiseSampler = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def prepare_noise(latent: torch.Tensor, seed: int, batch_index: Sequence[int] | None = None) -> torch.Tensor:
    """Gaussian noise in the latent's shape from `seed`, drawn on the CPU exactly as ComfyUI draws it.

    Without `batch_index` one draw covers the whole batch. With it, one [1, C, ...] draw is made per
    index 0..max(batch_index) in turn and the drawn items are picked in index order, so item k of a
    batch can be regenerated alone.
    """
    # A private generator seeded like torch.manual_seed(seed) yields the same numbers without touching
    # the process-wide RNG.
    generator = torch.Generator(device="cpu").manual_seed(seed)
    if batch_index is None:
        return torch.randn(latent.size(), dtype=latent.dtype, layout=latent.layout, generator=generator, device="cpu")
    wanted = sorted(set(int(i) for i in batch_index))
    item_shape = [1] + list(latent.size())[1:]
    drawn: dict[int, torch.Tensor] = {}
    for i in range(wanted[-1] + 1):
        sample = torch.randn(item_shape, dtype=latent.dtype, layout=latent.layout, generator=generator, device="cpu")
        if i in wanted:
            drawn[i] = sample
    return torch.cat([drawn[int(i)] for i in batch_index], dim=0)


def default_noise_sampler(x: torch.Tensor, seed: int | None = None) -> NoiseSampler:
    """Fresh N(0, 1) noise each call, from a generator on x's device seeded with `seed` (ComfyUI's choice)."""
    generator = None
    if seed is not None:
        generator = torch.Generator(device=x.device).manual_seed(seed)
    return lambda sigma, sigma_next: torch.randn(
        x.size(), dtype=x.dtype, layout=x.layout, device=x.device, generator=generator
    )


class BrownianTreeNoiseSampler:
    """Noise from a Brownian motion queried by interval (torchsde's BrownianTree, Li et al. 2020).

    Increments over [sigma_next, sigma] are normalised to unit variance, so the noise of an SDE
    sampler depends on the seed and the sigmas, not on the step count: that is what makes SDE
    samplers converge as steps grow.
    """

    def __init__(self, x: torch.Tensor, sigma_min, sigma_max, seed: int | Sequence[int] | None = None,
                 cpu: bool = True, transform: Callable[[torch.Tensor], torch.Tensor] = lambda s: s) -> None:
        import torchsde  # runtime dependency only for the SDE samplers

        self.transform = transform
        self.cpu = cpu
        t0 = self.transform(torch.as_tensor(sigma_min))
        t1 = self.transform(torch.as_tensor(sigma_max))
        t0, t1, self.sign = (t0, t1, 1) if t0 < t1 else (t1, t0, -1)
        w0 = torch.zeros_like(x)
        if seed is None:
            seed = torch.randint(0, 2**63 - 1, []).item()
        self.batched = not isinstance(seed, int)
        seeds = list(seed) if self.batched else [seed]
        if self.batched:
            if len(seeds) != x.shape[0]:
                raise ValueError(f"{len(seeds)} seeds for a batch of {x.shape[0]}")
            w0 = w0[0]
        if cpu:
            t0, w0, t1 = t0.cpu(), w0.cpu(), t1.cpu()
        self.trees = [torchsde.BrownianTree(t0, w0, t1, entropy=s) for s in seeds]

    def _increment(self, t0: torch.Tensor, t1: torch.Tensor) -> torch.Tensor:
        t0, t1, sign = (t0, t1, 1) if t0 < t1 else (t1, t0, -1)
        if self.cpu:
            parts = [tree(t0.cpu().float(), t1.cpu().float()).to(t0.dtype).to(t0.device) for tree in self.trees]
        else:
            parts = [tree(t0, t1) for tree in self.trees]
        w = torch.stack(parts) * (self.sign * sign)
        return w if self.batched else w[0]

    def __call__(self, sigma: torch.Tensor, sigma_next: torch.Tensor) -> torch.Tensor:
        t0 = self.transform(torch.as_tensor(sigma))
        t1 = self.transform(torch.as_tensor(sigma_next))
        return self._increment(t0, t1) / (t1 - t0).abs().sqrt()


def brownian_tree_noise_sampler(x: torch.Tensor, sigma_min, sigma_max, seed=None, cpu: bool = True) -> NoiseSampler:
    """A BrownianTreeNoiseSampler over [sigma_min, sigma_max] (ComfyUI builds it on the CPU by default)."""
    return BrownianTreeNoiseSampler(x, sigma_min, sigma_max, seed=seed, cpu=cpu)


class RandomNoise:
    """A NOISE value: seeded Gaussian noise for a LATENT, honouring its batch_index."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def generate_noise(self, latent: dict) -> torch.Tensor:
        return prepare_noise(latent["samples"], self.seed, latent.get("batch_index"))


class DisabledNoise:
    """A NOISE value of zeros, for continuing from a partly denoised latent."""

    seed = 0

    def generate_noise(self, latent: dict) -> torch.Tensor:
        samples = latent["samples"]
        return torch.zeros(samples.shape, dtype=samples.dtype, layout=samples.layout, device="cpu")
