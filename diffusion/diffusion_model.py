"""The MODEL value: a UNet with its noise parameterisation, latent space and patches.

Plays the role of ComfyUI's `ModelPatcher` + `BaseModel` (comfy-compat §8): nodes clone it
to attach patches (LoRA weights, a replacement `model_sampling`), and the sampler calls
`apply_model` as the denoiser D(x, σ) of Karras et al. 2022.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import Tensor, nn

from diffusion.devices import DeviceManager
from diffusion.latent_formats import LatentFormat
from diffusion.lora.patching import apply_weight_patches


class DiffusionModel:
    """A denoiser over latents in model space.

    Attributes:
        unet: the network (weights shared between clones).
        model_sampling: sigma ↔ timestep and eps/v parameterisation
            (`diffusion.sampling.model_sampling.ModelSamplingDiscrete`).
        latent_format: scaling between VAE and model latents, preview factors.
        devices: where the UNet runs and in what dtype.
        family: "SD15", "SD20", ... (from detection).
        patches: weight patches by parameter name, for LoRA (applied by the patching code).
        model_options: per-clone options for the sampler (`transformer_options`, CFG hooks).
    """

    def __init__(self, unet: nn.Module, model_sampling: Any, latent_format: LatentFormat,
                 devices: DeviceManager, family: str = "SD15"):
        self.unet = unet
        self.model_sampling = model_sampling
        self.latent_format = latent_format
        self.devices = devices
        self.family = family
        self.patches: dict[str, list[Any]] = {}
        self.model_options: dict[str, Any] = {"transformer_options": {}}

    def clone(self) -> DiffusionModel:
        """A copy that shares the UNet weights but owns its patches and options."""
        twin = copy.copy(self)
        twin.patches = {name: list(entries) for name, entries in self.patches.items()}
        twin.model_options = copy.deepcopy(self.model_options)
        return twin

    def torch_modules(self) -> list[nn.Module]:
        return [self.unet]

    @property
    def config(self) -> Any:
        return getattr(self.unet, "config", None)

    @property
    def latent_channels(self) -> int:
        return self.latent_format.latent_channels

    def apply_model(self, x: Tensor, sigma: Tensor, context: Tensor | None = None, y: Tensor | None = None,
                    control: dict[str, list[Tensor | None]] | None = None,
                    transformer_options: dict[str, Any] | None = None,
                    concat: Tensor | None = None) -> Tensor:
        """The denoised latent x0 predicted from a noisy one.

        Args:
            x: noisy latent in model space `[B, C, h, w]` (σ-scaled, as the samplers keep it).
            sigma: noise level per batch item `[B]`.
            context: text conditioning `[B, T, D]`.
            y: vector conditioning `[B, adm]` (SDXL-style models).
            control: ControlNet residuals (see `UNetModel.forward`).
            transformer_options: attention patches, passed to the UNet.
            concat: extra input channels `[B, c, h, w]` (inpainting models: mask + masked latent).

        Returns:
            x0 `[B, C, h, w]`, float32-accurate, on the device and in the dtype of `x`.
        """
        device, dtype = self.devices.device, self.devices.compute_dtype
        self.devices.load(self)
        apply_weight_patches(self.unet, self.patches)  # this clone's LoRA weights, restored for others
        sigma = torch.as_tensor(sigma, device=x.device).float()
        if sigma.ndim == 0:
            sigma = sigma.expand(x.shape[0])
        model_input = self.model_sampling.calculate_input(sigma, x.float())
        if concat is not None:
            model_input = torch.cat([model_input, concat.to(model_input)], dim=1)
        timesteps = self.model_sampling.timestep(sigma).float()
        options = dict(self.model_options.get("transformer_options", {}))
        options.update(transformer_options or {})
        with self.devices.inference():
            output = self.unet(
                model_input.to(device, dtype), timesteps.to(device),
                None if context is None else context.to(device, dtype),
                y=None if y is None else y.to(device, dtype),
                control=control, transformer_options=options,
            )
        denoised = self.model_sampling.calculate_denoised(sigma, output.float().to(x.device), x.float())
        return denoised.to(x.dtype)

    def memory_required(self, shape: tuple[int, ...] | torch.Size) -> int:
        """Estimated peak bytes of activations for one UNet call on a latent batch `[B, C, h, w]`.

        Measured on SD1.5 and SD2.1 UNets in fp16 on an H200 (batch 2-4, 64² and 96² latents):
        the peak is 26 · B·h·w · model_channels · element bytes; 32 leaves a margin.
        Without CUDA's fused attention kernels the first level's self-attention also holds a
        `[B·heads, h·w, h·w]` score matrix.
        """
        batch, _, *spatial = shape
        area = int(torch.tensor(spatial).prod())
        config = self.config
        channels = getattr(config, "model_channels", 320)
        element = torch.finfo(self.devices.compute_dtype).bits // 8
        activations = 32 * batch * area * channels * element
        if self.devices.device.type == "cuda" or config is None or not config.transformer_depth[0]:
            return activations
        heads = config.heads(channels)[0]
        return activations + batch * heads * area * area * element

    def __repr__(self) -> str:
        return f"DiffusionModel(family={self.family}, prediction={getattr(self.model_sampling, 'prediction_type', '?')})"
