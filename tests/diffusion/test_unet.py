"""The SD1/SD2 UNet matches diffusers' UNet2DConditionModel (the reference) on tiny random configurations.

SD1 layout: 1×1-conv `proj_in`, 8 heads at every level. SD2 layout: linear `proj_in`,
64 channels per head (comfy-compat §11.4).
"""

from __future__ import annotations

import re

import pytest
import torch

from diffusion.models.unet import UNetConfig, UNetModel, timestep_embedding

import diffusers

SD1_TINY = UNetConfig(model_channels=32, channel_mult=(1, 2, 2), num_res_blocks=1,
                      transformer_depth=(1, 1, 0), context_dim=24, num_heads=8)
SD2_TINY = UNetConfig(model_channels=64, channel_mult=(1, 2), num_res_blocks=1,
                      transformer_depth=(1, 1), context_dim=32, num_heads=-1, num_head_channels=64,
                      use_linear_in_transformer=True)


def diffusers_unet(config: UNetConfig):
    """The same network built by diffusers; its `attention_head_dim` is a head count per level."""
    torch.manual_seed(0)
    channels = tuple(config.model_channels * m for m in config.channel_mult)
    down = tuple("CrossAttnDownBlock2D" if d else "DownBlock2D" for d in config.transformer_depth)
    up = tuple("CrossAttnUpBlock2D" if d else "UpBlock2D" for d in reversed(config.transformer_depth))
    heads = tuple(config.heads(c)[0] for c in channels)
    model = diffusers.UNet2DConditionModel(
        sample_size=8, in_channels=config.in_channels, out_channels=config.out_channels,
        down_block_types=down, up_block_types=up, block_out_channels=channels,
        layers_per_block=config.num_res_blocks, cross_attention_dim=config.context_dim,
        attention_head_dim=heads, use_linear_projection=config.use_linear_in_transformer,
        norm_num_groups=32,
    ).eval()
    with torch.no_grad():  # the default init zeroes some outputs; randomise everything
        for param in model.parameters():
            param.copy_(torch.randn_like(param) * 0.05)
        for name, param in model.named_parameters():
            if "norm" in name and name.endswith("weight"):
                param.add_(1.0)
    return model


def to_ldm_unet_keys(state: dict[str, torch.Tensor], config: UNetConfig) -> dict[str, torch.Tensor]:
    """diffusers UNet2DConditionModel names -> the original `model.diffusion_model.` names (test-only)."""
    per_level = config.num_res_blocks + 1
    resnet_names = {"norm1": "in_layers.0", "conv1": "in_layers.2", "time_emb_proj": "emb_layers.1",
                    "norm2": "out_layers.0", "conv2": "out_layers.3", "conv_shortcut": "skip_connection"}

    def resnet(rest: str) -> str:
        name, tail = rest.split(".", 1)
        return f"{resnet_names[name]}.{tail}"

    converted = {}
    for key, value in state.items():
        if m := re.fullmatch(r"down_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", key):
            new = f"input_blocks.{1 + int(m[1]) * per_level + int(m[2])}.0.{resnet(m[3])}"
        elif m := re.fullmatch(r"down_blocks\.(\d+)\.attentions\.(\d+)\.(.+)", key):
            new = f"input_blocks.{1 + int(m[1]) * per_level + int(m[2])}.1.{m[3]}"
        elif m := re.fullmatch(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)", key):
            new = f"input_blocks.{(int(m[1]) + 1) * per_level}.0.op.{m[2]}"
        elif m := re.fullmatch(r"mid_block\.resnets\.(\d+)\.(.+)", key):
            new = f"middle_block.{2 * int(m[1])}.{resnet(m[2])}"
        elif m := re.fullmatch(r"mid_block\.attentions\.0\.(.+)", key):
            new = f"middle_block.1.{m[1]}"
        elif m := re.fullmatch(r"up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", key):
            new = f"output_blocks.{int(m[1]) * per_level + int(m[2])}.0.{resnet(m[3])}"
        elif m := re.fullmatch(r"up_blocks\.(\d+)\.attentions\.(\d+)\.(.+)", key):
            new = f"output_blocks.{int(m[1]) * per_level + int(m[2])}.1.{m[3]}"
        elif m := re.fullmatch(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.+)", key):
            level = len(config.channel_mult) - 1 - int(m[1])
            slot = 2 if config.transformer_depth[level] else 1
            new = f"output_blocks.{int(m[1]) * per_level + config.num_res_blocks}.{slot}.conv.{m[2]}"
        else:
            new = (key.replace("time_embedding.linear_1", "time_embed.0")
                   .replace("time_embedding.linear_2", "time_embed.2")
                   .replace("conv_in", "input_blocks.0.0").replace("conv_norm_out", "out.0")
                   .replace("conv_out", "out.2"))
        converted[new] = value
    return converted


def paired(config: UNetConfig):
    reference = diffusers_unet(config)
    ours = UNetModel(config).eval()
    ours.load_state_dict(to_ldm_unet_keys(reference.state_dict(), config), strict=True)
    return reference, ours


@pytest.mark.parametrize("config", [SD1_TINY, SD2_TINY], ids=["sd1-conv-proj", "sd2-linear-proj"])
def test_noise_prediction_matches_diffusers(config):
    reference, ours = paired(config)
    torch.manual_seed(3)
    latent = torch.randn(2, 4, 16, 16)
    timesteps = torch.tensor([999.0, 37.5])
    context = torch.randn(2, 7, config.context_dim)
    with torch.no_grad():
        expected = reference(latent, timesteps, encoder_hidden_states=context).sample
        actual = ours(latent, timesteps, context)
    assert actual.shape == latent.shape
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=2e-5)


def test_odd_latent_sizes_meet_their_skip_connections():
    reference, ours = paired(SD1_TINY)
    latent = torch.randn(1, 4, 9, 7)
    with torch.no_grad():
        actual = ours(latent, torch.tensor([500.0]), torch.randn(1, 3, 24))
    assert actual.shape == (1, 4, 9, 7)


def test_head_rules_follow_the_family():
    assert SD1_TINY.heads(64) == (8, 8)
    assert SD2_TINY.heads(128) == (2, 64)
    block = UNetModel(SD1_TINY).input_blocks[1][1].transformer_blocks[0].attn1
    assert block.heads == 8


def test_proj_in_layout_per_family():
    sd1 = UNetModel(SD1_TINY).state_dict()
    sd2 = UNetModel(SD2_TINY).state_dict()
    assert sd1["input_blocks.1.1.proj_in.weight"].ndim == 4
    assert sd2["input_blocks.1.1.proj_in.weight"].ndim == 2


def test_timestep_embedding_is_cos_then_sin():
    emb = timestep_embedding(torch.tensor([0.0, 10.0]), 8)
    freqs = torch.exp(-torch.log(torch.tensor(10000.0)) * torch.arange(4) / 4)
    torch.testing.assert_close(emb[1], torch.cat([torch.cos(10 * freqs), torch.sin(10 * freqs)]))
    torch.testing.assert_close(emb[0], torch.tensor([1.0, 1, 1, 1, 0, 0, 0, 0]))


def test_control_residuals_are_added_without_consuming_the_callers_lists():
    _, ours = paired(SD1_TINY)
    latent = torch.randn(1, 4, 8, 8)
    context = torch.randn(1, 3, 24)
    t = torch.tensor([200.0])
    middle = torch.randn(1, 64, 2, 2)
    control = {"middle": [middle], "output": [None] * len(ours.output_blocks)}
    with torch.no_grad():
        plain = ours(latent, t, context)
        controlled = ours(latent, t, context, control=control)
    assert len(control["middle"]) == 1 and len(control["output"]) == len(ours.output_blocks)
    assert not torch.allclose(plain, controlled)
