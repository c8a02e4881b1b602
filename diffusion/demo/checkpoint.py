"""The ``kiln-demo`` model: its sizes, and how its parts become one SD1 single-file checkpoint.

The demo model is an ordinary Stable Diffusion 1.x checkpoint with small dimensions:

* ``first_stage_model.*``: an ldm ``AutoencoderKL`` with SD's 8x downscale and 4 latent channels,
  whose latents are normalised so that SD1's scale factor 0.18215 gives them unit variance;
* ``cond_stage_model.transformer.text_model.*``: a small CLIP text transformer in the Hugging Face
  layout (real CLIP vocabulary of 49408 tokens, 77 positions, 64 channels per head);
* ``model.diffusion_model.*``: an ldm ``UNetModel`` with ``num_heads = 8`` and cross-attention to
  the text at every level (eps prediction, SD's scaled-linear schedule).

Nothing here is special to loading: the file is read back by the same code as any SD1 file.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from diffusion.models.unet import UNetConfig
from diffusion.models.vae import AutoencoderKL, VAEConfig

SD1_LATENT_SCALE = 0.18215
UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
TEXT_PREFIX = "cond_stage_model.transformer."

DEMO_VAE = VAEConfig(ch=32, ch_mult=(1, 1, 2, 2), num_res_blocks=1, z_channels=4, in_channels=3)
TEXT_WIDTH = 128
TEXT_LAYERS = 3
DEMO_UNET = UNetConfig(
    in_channels=4, out_channels=4, model_channels=64, channel_mult=(1, 1, 2), num_res_blocks=1,
    transformer_depth=(1, 1, 1), transformer_depth_middle=1, context_dim=TEXT_WIDTH, num_heads=8,
    num_head_channels=-1, use_linear_in_transformer=False, adm_in_channels=None,
)


def fold_latent_normalisation(vae: AutoencoderKL, mean: Tensor, std: Tensor, target_std: float) -> None:
    """Make the encoder emit ``(z - mean) / std · target_std`` and the decoder undo it, in place.

    ``quant_conv`` gives the posterior (mean, logvar) and ``post_quant_conv`` is the decoder's first
    layer, both 1x1 convolutions, so a per-channel affine map of the latent folds into their
    weights exactly: the autoencoder's reconstructions do not change, only its latent space.

    Args:
        vae: the trained autoencoder.
        mean: per-channel latent mean ``[z]`` measured on data.
        std: per-channel latent standard deviation ``[z]``.
        target_std: wanted standard deviation (``1 / 0.18215`` for SD1's scale factor).
    """
    z = vae.config.z_channels
    device = vae.quant_conv.weight.device
    gain = (target_std / std).to(device=device, dtype=torch.float64)
    mean = mean.to(device=device, dtype=torch.float64)
    with torch.no_grad():
        quant_w = vae.quant_conv.weight.double()
        quant_b = vae.quant_conv.bias.double()
        quant_w[:z] *= gain[:, None, None, None]
        quant_b[:z] = (quant_b[:z] - mean) * gain
        # logvar of the scaled posterior grows by log(gain^2).
        quant_b[z:] += 2.0 * gain.log()
        vae.quant_conv.weight.copy_(quant_w)
        vae.quant_conv.bias.copy_(quant_b)
        post_w = vae.post_quant_conv.weight.double()
        post_b = vae.post_quant_conv.bias.double()
        # post(z_old) = W z_old + b with z_old = z_new / gain + mean.
        new_b = post_b + (post_w[:, :, 0, 0] @ mean)
        post_w = post_w / gain[None, :, None, None]
        vae.post_quant_conv.weight.copy_(post_w)
        vae.post_quant_conv.bias.copy_(new_b)


def prefixed(prefix: str, state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    return {prefix + key: value for key, value in state.items()}


def sd1_state_dict(unet: nn.Module, vae: nn.Module, text_model_state: Mapping[str, Tensor],
                   dtype: torch.dtype = torch.float16) -> dict[str, Tensor]:
    """All weights under SD1's single-file prefixes, contiguous CPU tensors of ``dtype``.

    ``text_model_state`` is the text encoder's state dict in the Hugging Face ``CLIPTextModel``
    layout (keys beginning ``text_model.``).
    """
    state: dict[str, Tensor] = {}
    state.update(prefixed(UNET_PREFIX, unet.state_dict()))
    state.update(prefixed(VAE_PREFIX, vae.state_dict()))
    state.update(prefixed(TEXT_PREFIX, text_model_state))
    converted = {}
    for key, value in state.items():
        value = value.detach().to("cpu")
        if value.is_floating_point():
            value = value.to(dtype)
        converted[key] = value.contiguous()
    return converted
