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


# -- preview factors carried by a checkpoint (diffusion.latent_formats.PREVIEW_FACTORS_KEY) ---------

# Channel c of the latent drives colour c; the bias puts a zero latent at black (-1 in preview RGB).
OWN_FACTORS = {"factors": [[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 0]], "bias": [-1, -1, -1]}


def write_unet_and_vae(path, metadata: dict[str, str] | None = None) -> None:
    """A checkpoint with a tiny SD1 UNet and VAE (no text encoder), carrying `metadata`."""
    from safetensors.torch import save_file

    from diffusion.models.unet import UNetModel
    from diffusion.models.vae import AutoencoderKL
    from tests.helpers.tiny_checkpoint import SD1_UNET, TINY_VAE

    torch.manual_seed(0)
    state = {"model.diffusion_model." + k: v for k, v in UNetModel(SD1_UNET).state_dict().items()}
    state.update({"first_stage_model." + k: v for k, v in AutoencoderKL(TINY_VAE).state_dict().items()})
    save_file({k: v.contiguous() for k, v in state.items()}, str(path), metadata=metadata)


def test_a_checkpoint_with_its_own_factors_previews_with_them(tmp_path):
    import json

    from diffusion.devices import DeviceManager
    from diffusion.latent_formats import PREVIEW_FACTORS_KEY
    from diffusion.loading import load_checkpoint, load_unet

    path = tmp_path / "own-vae.safetensors"
    write_unet_and_vae(path, {PREVIEW_FACTORS_KEY: json.dumps(OWN_FACTORS), "format": "pt"})
    devices = DeviceManager(cpu=True)
    model, _, vae = load_checkpoint(path, devices, output_clip=False)  # CheckpointLoaderSimple
    unet_only = load_unet(path, devices)  # UNETLoader
    for latent_format in (model.latent_format, vae.latent_format, unet_only.latent_format):
        assert latent_format.latent_rgb_factors == tuple(tuple(map(float, row)) for row in OWN_FACTORS["factors"])
        assert latent_format.scale_factor == SD15.scale_factor  # scaling stays the family's
    # A latent that is 2 in channel 0 and 0 elsewhere: RGB (1, -1, -1), pure red.
    x0 = torch.zeros(1, 4, 2, 3)
    x0[:, 0] = 2.0
    image = make_previewer(model.latent_format, "latent2rgb").decode(x0)
    assert set(image.getdata()) == {(255, 0, 0)}
    # SD1's own factors colour the same latent otherwise.
    assert make_previewer(SD15, "latent2rgb").decode(x0).getpixel((0, 0)) != (255, 0, 0)


def test_a_checkpoint_without_the_key_keeps_the_family_factors(tmp_path):
    from diffusion.devices import DeviceManager
    from diffusion.loading import load_unet

    path = tmp_path / "plain.safetensors"
    write_unet_and_vae(path, {"format": "pt"})
    assert load_unet(path, DeviceManager(cpu=True)).latent_format == SD15


@pytest.mark.parametrize("value", [
    "not json",
    '{"factors": [[1, 0, 0], [0, 1, 0], [0, 0, 1]]}',  # 3 rows for 4 latent channels
    '{"factors": [[1, 0], [0, 1], [0, 0], [1, 1]]}',  # rows of two
    '{"factors": [[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, NaN]]}',
    '{"factors": [[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 1e999]]}',
    '{"factors": [[1, 0, 0], [0, 1, 0], [0, 0, 1], ["0", 0, 0]]}',
    '{"factors": [[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 0]], "bias": [0, 0]}',
    '[[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 0]]',
])
def test_a_malformed_key_is_ignored_with_a_warning(tmp_path, caplog, value):
    from diffusion.devices import DeviceManager
    from diffusion.latent_formats import PREVIEW_FACTORS_KEY
    from diffusion.loading import load_unet

    path = tmp_path / "odd.safetensors"
    write_unet_and_vae(path, {PREVIEW_FACTORS_KEY: value})
    assert load_unet(path, DeviceManager(cpu=True)).latent_format == SD15
    assert f"ignoring {PREVIEW_FACTORS_KEY}" in caplog.text and "odd.safetensors" in caplog.text


def test_preview_factors_json_round_trips():
    from diffusion.latent_formats import parse_preview_factors, preview_factors_json

    factors = torch.tensor(SDXL.latent_rgb_factors)
    parsed, bias = parse_preview_factors(preview_factors_json(factors, SDXL.latent_rgb_factors_bias), 4)
    assert parsed == SDXL.latent_rgb_factors and bias == SDXL.latent_rgb_factors_bias
    assert parse_preview_factors(preview_factors_json(factors, None), 4)[1] is None
