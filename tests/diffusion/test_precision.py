"""CPU bfloat16 mode: weights stored once in bf16, results close to float32, LoRA still exact.

The reference everywhere is the same model run by a float32 `DeviceManager` (which keeps the
file's dtype and casts per call, so it computes exactly as plain float32 torch).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from diffusion.devices import DeviceManager
from diffusion.loading import load_checkpoint
from diffusion.lora.adapters import LoRA
from diffusion.lora.patching import WeightPatch, apply_weight_patches
from diffusion.models.packing import dense_weight
from diffusion.sampling.noise import prepare_noise
from diffusion.sampling.pipeline import sample
from tests.helpers.tiny_checkpoint import write_tiny_checkpoint

DEMO_CHECKPOINT = Path(__file__).resolve().parents[2] / "models" / "checkpoints" / "kiln-demo.safetensors"
BF16 = DeviceManager(cpu=True, cpu_dtype=torch.bfloat16)
FP32 = DeviceManager(cpu=True)


@pytest.fixture(scope="module")
def fp16_checkpoint(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("precision") / "tiny_fp16.safetensors"
    write_tiny_checkpoint(path, "sd1", dtype=torch.float16)
    return path


def relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return float((actual.float() - expected.float()).norm() / expected.float().norm())


def test_bf16_mode_stores_unet_and_vae_weights_once_in_bf16_channels_last(fp16_checkpoint):
    """Convolutions channels_last, or packed for oneDNN (`diffusion.models.packing`) where it can."""
    model, _, vae = load_checkpoint(fp16_checkpoint, BF16, output_clip=False)
    for module in (model.unet, vae.autoencoder):
        assert {p.dtype for p in module.parameters()} == {torch.bfloat16}
        convolutions = [p for p in module.parameters() if p.ndim == 4]
        assert convolutions and all(p.is_mkldnn or p.is_contiguous(memory_format=torch.channels_last)
                                    for p in convolutions)
    file_bytes = fp16_checkpoint.stat().st_size
    held = sum(p.numel() * p.element_size() for m in (model.unet, vae.autoencoder) for p in m.parameters())
    assert held <= file_bytes  # no float32 copy anywhere


def test_fp32_mode_keeps_the_files_dtype_and_layout(fp16_checkpoint):
    model, _, vae = load_checkpoint(fp16_checkpoint, FP32, output_clip=False)
    for module in (model.unet, vae.autoencoder):
        assert {p.dtype for p in module.parameters()} == {torch.float16}
        assert all(p.is_contiguous() for p in module.parameters())


def test_bf16_weights_are_never_cast_while_the_unet_runs(fp16_checkpoint, monkeypatch):
    model, _, _ = load_checkpoint(fp16_checkpoint, BF16, output_clip=False)
    casts = []
    original_to = torch.Tensor.to

    def recording_to(self, *args, **kwargs):
        if isinstance(self, torch.nn.Parameter):
            casts.append(self.shape)
        return original_to(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "to", recording_to)
    model.apply_model(torch.randn(1, 4, 8, 8), torch.tensor([3.0]), torch.randn(1, 5, 64))
    assert casts == []


def test_bf16_sampling_stays_close_to_fp32(fp16_checkpoint):
    """Four euler steps with CFG on the tiny model: the final latent within 3 % (relative L2)."""
    latents = {}
    for name, devices in (("fp32", FP32), ("bf16", BF16)):
        model, _, _ = load_checkpoint(fp16_checkpoint, devices, output_clip=False)
        context = torch.randn(1, 5, 64, generator=torch.Generator().manual_seed(1))
        positive, negative = [[context, {}]], [[torch.zeros_like(context), {}]]
        latent = torch.zeros(1, 4, 8, 8)
        noise = prepare_noise(latent, seed=42)
        latents[name] = sample(model, noise, 4, 5.0, "euler", "normal", positive, negative, latent,
                               disable_pbar=True, seed=42)
    assert latents["bf16"].dtype == torch.float32
    assert relative_error(latents["bf16"], latents["fp32"]) < 0.03


def test_bf16_vae_decode_stays_close_to_fp32(fp16_checkpoint):
    latent = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(3))
    _, _, vae32 = load_checkpoint(fp16_checkpoint, FP32, output_clip=False)
    _, _, vae16 = load_checkpoint(fp16_checkpoint, BF16, output_clip=False)
    expected, actual = vae32.decode(latent), vae16.decode(latent)
    assert actual.dtype == torch.float32 and actual.shape == expected.shape
    assert float((actual - expected).abs().mean()) < 0.01


def test_lora_on_bf16_weights_is_computed_in_fp32_and_restored_exactly(fp16_checkpoint):
    model, _, _ = load_checkpoint(fp16_checkpoint, BF16, output_clip=False)
    name = "input_blocks.1.1.proj_in.weight"  # a 1×1 convolution, stored channels_last
    parameter = dict(model.unet.named_parameters())[name]
    original = dense_weight(parameter).clone()  # the weight may be packed for oneDNN
    out_ch, in_ch = parameter.shape[:2]
    generator = torch.Generator().manual_seed(5)
    up, down = torch.randn(out_ch, 2, 1, 1, generator=generator), torch.randn(2, in_ch, 1, 1, generator=generator)
    lora = LoRA(up=up, down=down, alpha=2.0)
    apply_weight_patches(model.unet, {name: [WeightPatch(0.5, lora)]})
    patched = dict(model.unet.named_parameters())[name]
    expected = (original.float() + 0.5 * (up.flatten(1) @ down.flatten(1)).reshape(original.shape)).bfloat16()
    assert patched.dtype == torch.bfloat16
    torch.testing.assert_close(patched, expected, rtol=0, atol=0)
    apply_weight_patches(model.unet, {})
    restored = dense_weight(dict(model.unet.named_parameters())[name])
    torch.testing.assert_close(restored, original, rtol=0, atol=0)


def test_the_demo_model_draws_the_same_picture_in_bf16_and_fp32():
    """Same prompt and seed through text encoder, 6 euler steps and VAE decode: ≤ 2/255 mean difference."""
    images = {}
    for name, devices in (("fp32", FP32), ("bf16", BF16)):
        model, clip, vae = load_checkpoint(DEMO_CHECKPOINT, devices)
        positive, negative = clip.encode("a red circle on a blue background"), clip.encode("")
        latent = torch.zeros(1, 4, 8, 8)
        samples = sample(model, prepare_noise(latent, seed=7), 6, 5.0, "euler", "normal", positive, negative,
                         latent, disable_pbar=True, seed=7)
        images[name] = vae.decode(samples)
    difference = (images["bf16"] - images["fp32"]).abs().mean()
    assert float(difference) < 2 / 255


def test_server_flags_choose_the_cpu_precision():
    import server

    assert server.parse_args([]).cpu_precision == "auto"
    assert server.parse_args(["--cpu-bf16"]).cpu_precision == "bf16"
    args = server.parse_args(["--cpu-fp32"])
    assert server.server_options(args)["cpu_precision"] == "fp32"
    with pytest.raises(SystemExit):
        server.parse_args(["--cpu-bf16", "--cpu-fp32"])
    assert server.device_manager_factory(True, False, "bf16")().compute_dtype == torch.bfloat16
    assert server.device_manager_factory(True, False, "fp32")().compute_dtype == torch.float32
    forced = server.device_manager_factory(True, True, "bf16")()
    assert forced.compute_dtype == torch.float32 and forced.vae_dtype == torch.float32
