"""The SD VAE matches diffusers' AutoencoderKL (the reference) on a tiny random configuration."""

from __future__ import annotations

import re

import pytest
import torch

from diffusion.models.vae import AutoencoderKL, VAEConfig

import diffusers

TINY = VAEConfig(ch=32, ch_mult=(1, 2), num_res_blocks=1, z_channels=4)


def diffusers_vae(config: VAEConfig):
    torch.manual_seed(0)
    channels = tuple(config.ch * m for m in config.ch_mult)
    model = diffusers.AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=config.z_channels,
        down_block_types=("DownEncoderBlock2D",) * len(channels),
        up_block_types=("UpDecoderBlock2D",) * len(channels),
        block_out_channels=channels, layers_per_block=config.num_res_blocks, norm_num_groups=32,
    ).eval()
    with torch.no_grad():  # random norms so that a swapped affine shows up
        for name, param in model.named_parameters():
            if "norm" in name:
                param.add_(torch.randn_like(param) * 0.1)
    return model


def to_ldm_vae_keys(state: dict[str, torch.Tensor], levels: int) -> dict[str, torch.Tensor]:
    """diffusers AutoencoderKL names -> the original `first_stage_model.` names (test-only)."""
    converted = {}
    for key, value in state.items():
        new = key
        new = re.sub(r"encoder\.down_blocks\.(\d+)\.resnets\.", r"encoder.down.\1.block.", new)
        new = re.sub(r"encoder\.down_blocks\.(\d+)\.downsamplers\.0\.", r"encoder.down.\1.downsample.", new)
        new = re.sub(r"decoder\.up_blocks\.(\d+)\.",
                     lambda m: f"decoder.up.{levels - 1 - int(m.group(1))}.", new)
        new = new.replace("mid_block.resnets.0.", "mid.block_1.").replace("mid_block.resnets.1.", "mid.block_2.")
        new = new.replace(".resnets.", ".block.").replace(".upsamplers.0.", ".upsample.")
        new = new.replace("mid_block.attentions.0.", "mid.attn_1.")
        new = new.replace("conv_shortcut", "nin_shortcut").replace("conv_norm_out", "norm_out")
        for old_name, ldm_name in (("group_norm", "norm"), ("to_q", "q"), ("to_k", "k"),
                                   ("to_v", "v"), ("to_out.0", "proj_out")):
            new = new.replace(f"attn_1.{old_name}.", f"attn_1.{ldm_name}.")
        if ".attn_1." in new and new.endswith("weight") and value.ndim == 2:
            value = value[:, :, None, None]  # diffusers' linear q/k/v are the original 1×1 convs
        converted[new] = value
    return converted


@pytest.fixture(scope="module")
def models():
    reference = diffusers_vae(TINY)
    ours = AutoencoderKL(TINY).eval()
    ours.load_state_dict(to_ldm_vae_keys(reference.state_dict(), len(TINY.ch_mult)), strict=True)
    return reference, ours


def test_key_layout_is_the_original_checkpoint_layout():
    keys = set(AutoencoderKL(TINY).state_dict())
    assert {"encoder.down.0.downsample.conv.weight", "encoder.mid.attn_1.q.weight",
            "decoder.up.1.upsample.conv.weight", "decoder.up.0.block.1.conv2.bias",
            "encoder.down.1.block.0.nin_shortcut.weight", "quant_conv.weight",
            "post_quant_conv.bias"} <= keys
    assert not any("up.0.upsample" in k or "down.1.downsample" in k for k in keys)


def test_encode_mean_matches_diffusers(models):
    reference, ours = models
    torch.manual_seed(1)
    pixels = torch.rand(2, 3, 32, 24) * 2 - 1
    with torch.no_grad():
        expected = reference.encode(pixels).latent_dist.mean
        mean, logvar = ours.encode_moments(pixels)
    torch.testing.assert_close(ours.encode(pixels), expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(logvar, reference.encode(pixels).latent_dist.logvar, rtol=1e-5, atol=1e-5)
    assert mean.shape == (2, 4, 16, 12)


def test_decode_matches_diffusers(models):
    reference, ours = models
    torch.manual_seed(2)
    latent = torch.randn(2, 4, 8, 6)
    with torch.no_grad():
        expected = reference.decode(latent).sample
        actual = ours.decode(latent)
    assert actual.shape == (2, 3, 16, 12)
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5)


def test_half_precision_weights_compute_in_the_input_dtype(models):
    _, ours = models
    half = AutoencoderKL(TINY).eval()
    half.load_state_dict(ours.state_dict())
    half.half()
    latent = torch.randn(1, 4, 4, 4)
    with torch.no_grad():
        out = half.decode(latent)  # fp16 weights, fp32 activations: cast per layer
        expected = ours.decode(latent)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, expected, rtol=0, atol=5e-2)
