"""Preview factors fitted to a checkpoint's own VAE: the fit, the tools that write them, and the demo model.

The fit is checked on a synthetic linear "VAE" whose decoder is exactly `latent · F + b` per
latent pixel, so least squares must give back that `F` and `b`; on the shipped demo model, a
red square must preview red.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors import safe_open

from diffusion.demo.dataset import SIZE_FRACTIONS, Scene, ShapeLabel, nominal_center, render
from diffusion.demo.preview_factors import demo_scene_pixels, fit_latent_rgb_factors, fit_vae_preview_factors
from diffusion.devices import DeviceManager
from diffusion.latent_formats import PREVIEW_FACTORS_KEY, SD15, parse_preview_factors
from diffusion.preview import make_previewer
from tools import set_preview_factors, train_demo

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "models" / "checkpoints" / "kiln-demo.safetensors"
pytestmark = pytest.mark.timeout(600)


def test_the_fit_recovers_the_factors_of_a_linear_vae():
    generator = torch.Generator().manual_seed(0)
    factors = torch.randn(4, 3, generator=generator) * 0.5
    bias = torch.tensor([0.1, -0.2, 0.05])
    # Encoder: a random linear map of each 8x8 pixel block (full rank over real pictures); decoder:
    # each latent pixel's colour, latent · F + b in model space, painted over its block.
    patches = torch.randn(4, 3, 8, 8, generator=generator) * 0.05

    def encode(pixels):
        return F.conv2d(pixels, patches, stride=8)

    def decode(latent):
        rgb = torch.einsum("nchw,cr->nrhw", SD15.process_in(latent), factors) + bias[:, None, None]
        return F.interpolate(rgb, scale_factor=8, mode="nearest")

    fitted, fitted_bias = fit_vae_preview_factors(encode, decode, SD15, demo_scene_pixels(48))
    torch.testing.assert_close(fitted, factors, rtol=0, atol=1e-4)
    torch.testing.assert_close(fitted_bias, bias, rtol=0, atol=1e-4)


def test_the_fit_pools_each_latent_pixels_block():
    latents = torch.randn(2, 4, 3, 5, generator=torch.Generator().manual_seed(1))
    factors = torch.randn(4, 3, generator=torch.Generator().manual_seed(2))
    colours = torch.einsum("nchw,cr->nrhw", latents, factors)
    # Each 8x8 block holds its colour plus a pattern that averages to zero over the block.
    checker = (torch.arange(8)[:, None] + torch.arange(8)[None, :]) % 2 * 2.0 - 1.0
    decoded = F.interpolate(colours, scale_factor=8, mode="nearest") + 0.3 * checker.repeat(3, 5)
    fitted, bias = fit_latent_rgb_factors(latents, decoded)
    torch.testing.assert_close(fitted, factors, rtol=0, atol=1e-4)
    torch.testing.assert_close(bias, torch.zeros(3), rtol=0, atol=1e-4)


def tiny_checkpoint(path: Path) -> None:
    from safetensors.torch import save_file

    from diffusion.models.unet import UNetModel
    from diffusion.models.vae import AutoencoderKL
    from tests.helpers.tiny_checkpoint import SD1_UNET, TINY_VAE

    torch.manual_seed(0)
    state = {"model.diffusion_model." + k: v for k, v in UNetModel(SD1_UNET).state_dict().items()}
    state.update({"first_stage_model." + k: v.half() for k, v in AutoencoderKL(TINY_VAE).state_dict().items()})
    save_file({k: v.contiguous() for k, v in state.items()}, str(path), metadata={"format": "pt", "note": "kept"})


def test_set_preview_factors_adds_the_key_and_changes_no_tensor(tmp_path):
    path = tmp_path / "tiny.safetensors"
    tiny_checkpoint(path)
    before = tmp_path / "before.safetensors"
    shutil.copy(path, before)
    set_preview_factors.main([str(path), "--scenes", "16"])
    with safe_open(str(before), "pt") as old, safe_open(str(path), "pt") as new:
        assert set(new.keys()) == set(old.keys())
        for key in old.keys():
            a, b = old.get_tensor(key), new.get_tensor(key)
            assert a.dtype == b.dtype and torch.equal(a, b), key
        metadata = new.metadata()
    assert metadata["note"] == "kept" and metadata["format"] == "pt"
    factors, bias = parse_preview_factors(metadata[PREVIEW_FACTORS_KEY], 4)
    assert len(factors) == 4 and bias is not None
    assert not list(tmp_path.glob("*.partial"))


def test_train_demo_writes_the_key_when_it_saves(tmp_path):
    from diffusion.demo.checkpoint import DEMO_VAE
    from diffusion.models.vae import AutoencoderKL

    torch.manual_seed(0)
    path = tmp_path / "demo.safetensors"
    train_demo.save_checkpoint(path, train_demo.Diffusion().eval(), AutoencoderKL(DEMO_VAE).eval(), {"format": "pt"})
    with safe_open(str(path), "pt") as saved:
        metadata = saved.metadata()
    assert metadata["format"] == "pt"
    assert len(parse_preview_factors(metadata[PREVIEW_FACTORS_KEY], 4)[0]) == 4


def red_square(background: str) -> np.ndarray:
    label = ShapeLabel("square", "red", "large", "center", nominal_center("center", "large"),
                       SIZE_FRACTIONS["large"] * 64)
    return render(Scene((label,), (background,), f"a large red square in the center on a {background} background"))


def test_the_demo_model_previews_a_red_square_red(tmp_path):
    from diffusion.loading import load_checkpoint

    path = tmp_path / "kiln-demo.safetensors"
    shutil.copy(SHIPPED, path)
    set_preview_factors.main([str(path), "--scenes", "96"])
    model, _, vae = load_checkpoint(path, DeviceManager(cpu=True), output_clip=False)
    previewer = make_previewer(model.latent_format, "latent2rgb")
    for background in ("blue", "white", "gray"):
        pixels = torch.from_numpy(red_square(background)).float()[None] / 255.0
        x0 = model.latent_format.process_in(vae.encode(pixels))  # what the sampler's callback sees
        preview = np.asarray(previewer.decode(x0)).astype(int)
        assert preview.shape == (8, 8, 3)
        red, green, blue = preview[3:5, 3:5].reshape(-1, 3).mean(0)  # the square covers latent pixels 2..5
        assert red > 150 and red > green + 60 and red > blue + 60, (background, preview[3:5, 3:5].tolist())
    corner = preview[0, 0]
    assert abs(corner[0] - corner[1]) < 60 and abs(corner[1] - corner[2]) < 60, corner.tolist()  # gray stays grey
