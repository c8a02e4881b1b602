"""Weights packed for oneDNN (CPU bfloat16): same outputs as dense weights, LoRA still exact.

The reference is the same bf16 model with packing turned off (`DeviceManager.cpu_prepack =
False`), which runs `F.conv2d` / `F.linear` on the dense bf16 weights. oneDNN may block the
reductions differently for a packed weight, so outputs agree to bf16 rounding, not bitwise.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from diffusion.devices import DeviceManager
from diffusion.loading import load_checkpoint
from diffusion.lora.adapters import LoRA
from diffusion.lora.patching import WeightPatch
from diffusion.models.layers import Conv2d, Linear
from diffusion.models.packing import dense_weight, pack_module, packing_supported, unpack_module
from tests.helpers.tiny_checkpoint import write_tiny_checkpoint

pytestmark = pytest.mark.skipif(not packing_supported(), reason="torch without oneDNN's prepacked operators")


def bf16_devices(prepack: bool) -> DeviceManager:
    devices = DeviceManager(cpu=True, cpu_dtype=torch.bfloat16)
    devices.cpu_prepack = prepack
    return devices


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("packing") / "tiny_fp16.safetensors"
    write_tiny_checkpoint(path, "sd1", dtype=torch.float16)
    return path


@pytest.fixture(scope="module")
def models(checkpoint):
    """(packed, dense) copies of the same tiny SD1 checkpoint's UNet and VAE."""
    packed = load_checkpoint(checkpoint, bf16_devices(True), output_clip=False)
    dense = load_checkpoint(checkpoint, bf16_devices(False), output_clip=False)
    return packed, dense


def unet_inputs(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(2, 4, 8, 8, generator=generator), torch.tensor([3.0, 0.5]),
            torch.randn(2, 5, 64, generator=generator))


def relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return float((actual.float() - expected.float()).norm() / expected.float().norm())


def kiln_layers(module: torch.nn.Module) -> list[torch.nn.Module]:
    return [m for m in module.modules() if isinstance(m, (Conv2d, Linear))]


def test_bf16_cpu_loading_packs_every_convolution_and_linear_layer_in_place(models):
    (packed_model, _, packed_vae), (dense_model, _, dense_vae) = models
    for packed, dense in ((packed_model.unet, dense_model.unet), (packed_vae.autoencoder, dense_vae.autoencoder)):
        assert all(layer.weight.is_mkldnn for layer in kiln_layers(packed))
        assert not any(p.is_mkldnn for p in dense.parameters())
        # Packed weights replace the dense ones: the same bytes, no second copy.
        held = sum(p.numel() * p.element_size() for p in packed.parameters())
        assert held == sum(p.numel() * p.element_size() for p in dense.parameters())


def test_state_dict_of_a_packed_model_is_the_dense_weights(models):
    (packed_model, _, _), (dense_model, _, _) = models
    packed_state, dense_state = packed_model.unet.state_dict(), dense_model.unet.state_dict()
    assert packed_state.keys() == dense_state.keys()
    for key, tensor in dense_state.items():
        assert not packed_state[key].is_mkldnn
        torch.testing.assert_close(packed_state[key], tensor, rtol=0, atol=0)


def test_packed_unet_matches_the_dense_bf16_unet(models):
    (packed_model, _, _), (dense_model, _, _) = models
    x, sigma, context = unet_inputs()
    expected = dense_model.apply_model(x, sigma, context)
    actual = packed_model.apply_model(x, sigma, context)
    assert actual.dtype == expected.dtype and actual.shape == expected.shape
    assert relative_error(actual, expected) < 1e-2


def test_packed_vae_matches_the_dense_bf16_vae(models):
    (_, _, packed_vae), (_, _, dense_vae) = models
    latent = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(3))
    expected, actual = dense_vae.decode(latent), packed_vae.decode(latent)
    assert actual.shape == expected.shape
    assert float((actual - expected).abs().max()) < 2 / 255


def lora_for(parameter: torch.Tensor, seed: int) -> LoRA:
    out_ch, in_ch = parameter.shape[:2]
    extra = (1,) * (parameter.dim() - 2)
    generator = torch.Generator().manual_seed(seed)
    return LoRA(up=torch.randn(out_ch, 2, *extra, generator=generator),
                down=torch.randn(2, in_ch, *parameter.shape[2:], generator=generator), alpha=2.0)


LORA_TARGETS = ("input_blocks.1.0.in_layers.2.weight",                 # 3×3 convolution
                "input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight",  # linear
                "input_blocks.1.1.proj_in.weight")                      # 1×1 convolution


def test_lora_on_packed_weights_changes_the_output_exactly_as_on_dense_weights(checkpoint):
    """Patch, run, restore: the packed model follows the dense one at every stage."""
    packed, dense = (load_checkpoint(checkpoint, bf16_devices(p), output_clip=False)[0] for p in (True, False))
    parameters = dict(dense.unet.named_parameters())
    patches = {name: [WeightPatch(0.8, lora_for(parameters[name], seed))] for seed, name in enumerate(LORA_TARGETS)}
    x, sigma, context = unet_inputs(1)
    before = packed.apply_model(x, sigma, context)
    packed_original = {name: dense_weight(dict(packed.unet.named_parameters())[name]) for name in LORA_TARGETS}

    with_lora = {}
    for name, model in (("packed", packed.clone()), ("dense", dense.clone())):
        model.patches = patches
        with_lora[name] = model.apply_model(x, sigma, context)
    for name in LORA_TARGETS:
        # the patched weight was packed again when the layer ran, and equals the dense patched one
        weight = dict(packed.unet.named_parameters())[name]
        assert weight.is_mkldnn
        torch.testing.assert_close(dense_weight(weight), dict(dense.unet.named_parameters())[name], rtol=0, atol=0)
    assert relative_error(with_lora["packed"], with_lora["dense"]) < 1e-2
    assert relative_error(with_lora["packed"], before) > 0.05  # the LoRA does change the picture

    after = packed.apply_model(x, sigma, context)  # the unpatched value runs: originals come back
    for name in LORA_TARGETS:
        weight = dict(packed.unet.named_parameters())[name]
        assert weight.is_mkldnn
        torch.testing.assert_close(dense_weight(weight), packed_original[name], rtol=0, atol=0)
    torch.testing.assert_close(after, before, rtol=0, atol=0)


def test_unpacking_gives_back_the_dense_weights(checkpoint):
    model, _, _ = load_checkpoint(checkpoint, bf16_devices(True), output_clip=False)
    state = model.unet.state_dict()
    unpack_module(model.unet)
    assert not any(p.is_mkldnn for p in model.unet.parameters())
    for name, parameter in model.unet.named_parameters():
        torch.testing.assert_close(parameter, state[name], rtol=0, atol=0)
    assert pack_module(model.unet) == len(kiln_layers(model.unet))


def test_float32_and_switched_off_managers_never_pack(checkpoint):
    assert not DeviceManager(cpu=True).pack_weights(torch.float32)
    assert not DeviceManager(cpu=True, force_fp32=True, cpu_dtype=torch.bfloat16).pack_weights(
        DeviceManager(cpu=True, force_fp32=True, cpu_dtype=torch.bfloat16).compute_dtype)
    assert not bf16_devices(False).pack_weights(torch.bfloat16)
    model, _, vae = load_checkpoint(checkpoint, DeviceManager(cpu=True), output_clip=False)
    assert not any(p.is_mkldnn for m in (model.unet, vae.autoencoder) for p in m.parameters())


def test_layers_do_not_pack_while_training():
    layer = Conv2d(8, 8, 3, padding=1).bfloat16()
    layer.pack_weights = True
    layer(torch.randn(1, 8, 4, 4, dtype=torch.bfloat16))
    assert not layer.weight.is_mkldnn and layer.weight.requires_grad
