"""Discrete-time DDPM noise levels as a continuous sigma (Karras et al. 2022, VE view of a VP model)."""

from __future__ import annotations

import torch

# Terminal alpha_bar that ComfyUI pins after the zero-terminal-SNR rescale (Lin et al. 2023):
# exactly zero would make sigma_max infinite.
ZSNR_TERMINAL_ALPHA_BAR = 4.8973451890853435e-08


def scaled_linear_betas(linear_start: float, linear_end: float, timesteps: int) -> torch.Tensor:
    """The SD "linear" beta schedule: betas equally spaced in sqrt (float64)."""
    return torch.linspace(linear_start**0.5, linear_end**0.5, timesteps, dtype=torch.float64) ** 2


def rescale_zero_terminal_snr_sigmas(sigmas: torch.Tensor) -> torch.Tensor:
    """Rescale a schedule to zero terminal SNR (Lin et al. 2023, Algorithm 1), in sigma space."""
    alphas_bar_sqrt = (1.0 / (sigmas * sigmas + 1.0)).sqrt()
    first, last = alphas_bar_sqrt[0].clone(), alphas_bar_sqrt[-1].clone()
    alphas_bar_sqrt = (alphas_bar_sqrt - last) * first / (first - last)
    alphas_bar = alphas_bar_sqrt**2
    alphas_bar[-1] = ZSNR_TERMINAL_ALPHA_BAR
    return ((1 - alphas_bar) / alphas_bar) ** 0.5


def _batch_view(sigma: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """sigma [B] (or scalar) reshaped to broadcast over a [B, C, ...] tensor."""
    sigma = torch.as_tensor(sigma, dtype=like.dtype, device=like.device)
    return sigma.reshape(sigma.shape[:1] + (1,) * (like.ndim - 1)) if sigma.ndim else sigma


class ModelSamplingDiscrete:
    """Noise levels of a 1000-step DDPM (Ho et al. 2020) as sigmas, eps or v parameterisation."""

    sigma_data = 1.0

    def __init__(
        self,
        prediction_type: str = "eps",
        linear_start: float = 0.00085,
        linear_end: float = 0.012,
        timesteps: int = 1000,
        zsnr: bool = False,
    ) -> None:
        if prediction_type not in ("eps", "v"):
            raise ValueError(f"prediction_type must be 'eps' or 'v', not {prediction_type!r}")
        self.prediction_type = prediction_type
        betas = scaled_linear_betas(linear_start, linear_end, timesteps)
        alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)
        sigmas = ((1 - alphas_cumprod) / alphas_cumprod) ** 0.5
        if zsnr:
            sigmas = rescale_zero_terminal_snr_sigmas(sigmas)
        self.sigmas = sigmas.float()
        self.log_sigmas = sigmas.log().float()

    @property
    def sigma_min(self) -> torch.Tensor:
        return self.sigmas[0]

    @property
    def sigma_max(self) -> torch.Tensor:
        return self.sigmas[-1]

    def timestep(self, sigma: torch.Tensor) -> torch.Tensor:
        """The integer timestep whose log-sigma is nearest (same shape as sigma)."""
        sigma = torch.as_tensor(sigma)
        log_sigma = sigma.log()
        distances = log_sigma.to(self.log_sigmas.device) - self.log_sigmas[:, None]
        return distances.abs().argmin(dim=0).view(sigma.shape).to(sigma.device)

    def sigma(self, timestep: torch.Tensor) -> torch.Tensor:
        """Sigma at a fractional timestep, interpolating log-sigma linearly."""
        t = torch.as_tensor(timestep).float().clamp(0, len(self.log_sigmas) - 1)
        low = t.floor().long()
        high = t.ceil().long()
        weight = t.frac()
        log_sigmas = self.log_sigmas.to(t.device)
        return ((1 - weight) * log_sigmas[low] + weight * log_sigmas[high]).exp()

    def percent_to_sigma(self, percent: float) -> float:
        """Sigma reached after `percent` of the denoising process (0 -> huge, 1 -> 0)."""
        if percent <= 0.0:
            return 999999999.9
        if percent >= 1.0:
            return 0.0
        return float(self.sigma(torch.tensor((1.0 - percent) * 999.0)))

    def calculate_input(self, sigma: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Scale the noisy latent to unit variance: x / sqrt(sigma² + sigma_data²)."""
        sigma = _batch_view(sigma, x)
        return x / (sigma * sigma + self.sigma_data**2) ** 0.5

    def calculate_denoised(self, sigma: torch.Tensor, model_output: torch.Tensor, model_input: torch.Tensor) -> torch.Tensor:
        """x0 from the network output: eps (x - eps·σ) or v (Salimans & Ho 2022)."""
        sigma = _batch_view(sigma, model_output)
        if self.prediction_type == "eps":
            return model_input - model_output * sigma
        variance = sigma * sigma + self.sigma_data**2
        return (
            model_input * self.sigma_data**2 / variance
            - model_output * sigma * self.sigma_data / variance**0.5
        )

    def noise_scaling(
        self, sigma: torch.Tensor, noise: torch.Tensor, latent: torch.Tensor, max_denoise: bool = False
    ) -> torch.Tensor:
        """The starting x: latent + noise·σ, or noise·sqrt(1 + σ²) when starting from pure noise."""
        sigma = _batch_view(sigma, noise)
        scale = (1.0 + sigma * sigma) ** 0.5 if max_denoise else sigma
        return noise * scale + latent

    def inverse_noise_scaling(self, sigma: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
        """Identity for variance-exploding sigmas (kept for flow models, which differ)."""
        return latent
