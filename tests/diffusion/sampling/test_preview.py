"""latent2rgb previews (comfy-compat §12)."""

from __future__ import annotations

import pytest
import torch

from diffusion.latent_formats import SD15, SDXL
from diffusion.preview import make_previewer


def test_latent2rgb_maps_item_zero_through_the_sd15_factors():
    x0 = torch.randn(2, 4, 3, 5, generator=torch.Generator().manual_seed(0))
    image = make_previewer(SD15, "latent2rgb").decode(x0)
    assert image.size == (5, 3) and image.mode == "RGB"
    factors = torch.tensor(SD15.latent_rgb_factors)
    expected = (((x0[0].permute(1, 2, 0) @ factors + 1) / 2).clamp(0, 1) * 255).to(torch.uint8)
    assert torch.equal(torch.tensor(list(image.getdata())).reshape(3, 5, 3), expected.to(torch.int64))


def test_sdxl_adds_its_bias():
    x0 = torch.zeros(1, 4, 2, 2)
    pixel = make_previewer(SDXL, "auto").decode(x0).getpixel((0, 0))
    assert pixel == tuple(int((b + 1) / 2 * 255) for b in SDXL.latent_rgb_factors_bias)


def test_none_disables_previews_and_unknown_methods_raise():
    assert make_previewer(SD15, "none") is None
    with pytest.raises(ValueError):
        make_previewer(SD15, "magic")


def write_decoder(path, seed: int = 0):
    from safetensors.torch import save_file

    from diffusion.taesd import taesd_decoder

    torch.manual_seed(seed)
    decoder = taesd_decoder()
    save_file({name: tensor.contiguous() for name, tensor in decoder.state_dict().items()}, str(path))
    return decoder


def test_taesd_decoder_uses_the_published_sequential_key_layout():
    from diffusion.taesd import taesd_decoder

    keys = set(taesd_decoder().state_dict())
    assert {"1.weight", "1.bias", "3.conv.0.weight", "3.conv.4.bias", "7.weight", "18.conv.2.weight",
            "19.weight", "19.bias"} <= keys
    assert "7.bias" not in keys  # the convolutions after each upsampling have no bias
    assert len([k for k in keys if k.endswith(".weight")]) == 2 + 3 + 10 * 3  # convs: in/out, 3 post-upsample, 10 blocks


def test_taesd_previewer_decodes_item_zero_at_eight_times_the_size(tmp_path):
    decoder = write_decoder(tmp_path / "taesd_decoder.safetensors")
    previewer = make_previewer(SD15, "taesd", tmp_path / "taesd_decoder.safetensors")
    x0 = torch.randn(2, 4, 4, 6, generator=torch.Generator().manual_seed(1))
    image = previewer.decode(x0)
    assert image.size == (48, 32)
    with torch.inference_mode():
        expected = (decoder(x0[:1])[0].clamp(0, 1) * 255).to(torch.uint8).movedim(0, -1)
    assert torch.equal(torch.tensor(list(image.getdata()), dtype=torch.uint8).reshape(32, 48, 3), expected)


def test_taesd_falls_back_to_latent2rgb_without_a_loadable_decoder(tmp_path, caplog):
    from diffusion.preview import Latent2RGBPreviewer

    assert isinstance(make_previewer(SD15, "taesd", None), Latent2RGBPreviewer)
    broken = tmp_path / "taesd_decoder.safetensors"
    from safetensors.torch import save_file

    save_file({"unrelated": torch.zeros(1)}, str(broken))
    assert isinstance(make_previewer(SD15, "taesd", broken), Latent2RGBPreviewer)
    assert "not a TAESD decoder" in caplog.text
