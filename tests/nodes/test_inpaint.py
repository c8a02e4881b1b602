"""Inpainting: the nodes prepare pixels and masks as ComfyUI does, and sampling keeps what is not masked.

An inpainting checkpoint (9-channel UNet input, detected from the weights) receives
`[x_in, mask, masked-image latent]`, checked by recording the UNet's input.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from diffusion.devices import DeviceManager
from diffusion.loading import load_checkpoint
from nodes.image_compose import ImageCompositeMasked
from nodes.inpaint import InpaintModelConditioning, VAEEncodeForInpaint
from nodes.sampling import KSampler
from tests.helpers.tiny_checkpoint import tiny_state_dict


class RecordingVAE:
    """Encodes by 8×8 average pooling of (pixels·2 - 1) into 4 channels, and remembers what it saw."""

    downscale_ratio = 8

    def __init__(self):
        self.seen = []

    def encode(self, pixels):
        self.seen.append(pixels.clone())
        pooled = F.avg_pool2d(pixels[..., :3].movedim(-1, 1) * 2 - 1, 8)
        return torch.cat([pooled, pooled.mean(1, keepdim=True)], dim=1)


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    from safetensors.torch import save_file

    folder = tmp_path_factory.mktemp("ckpt")
    normal = tiny_state_dict("sd1", seed=1)
    inpainting = dict(normal)
    inpainting["model.diffusion_model.input_blocks.0.0.weight"] = 0.05 * torch.randn(32, 9, 3, 3)
    save_file(normal, str(folder / "tiny.safetensors"))
    save_file(inpainting, str(folder / "tiny-inpainting.safetensors"))
    devices = DeviceManager(cpu=True)
    return (load_checkpoint(folder / "tiny.safetensors", devices),
            load_checkpoint(folder / "tiny-inpainting.safetensors", devices))


def test_vae_encode_for_inpaint_crops_greys_and_grows_the_mask():
    pixels = torch.rand(1, 36, 43, 3, generator=torch.Generator().manual_seed(0))
    mask = torch.zeros(1, 36, 43)
    mask[0, 10:14, 20:22] = 1.0
    vae = RecordingVAE()
    (latent,) = VAEEncodeForInpaint().encode(vae, pixels, mask, grow_mask_by=6)
    encoded = vae.seen[0]
    assert encoded.shape == (1, 32, 40, 3)  # centre crop: 2 rows off the top, 1 column off the left
    cropped_mask = mask[:, 2:34, 1:41]
    grey = cropped_mask[0].bool()
    assert torch.all(encoded[0][grey] == 0.5)
    torch.testing.assert_close(encoded[0][~grey], pixels[:, 2:34, 1:41][0][~grey])
    noise_mask = latent["noise_mask"]
    assert noise_mask.shape == (1, 1, 32, 40)
    # A 6×6 box of ones with padding ceil(5/2) = 3: output o sums input rows o-3..o+2, so the
    # masked rows 8..11 reach rows 6..14 and the masked columns 19..20 reach columns 17..23.
    expected = torch.zeros(32, 40)
    expected[6:15, 17:24] = 1.0
    assert torch.equal(noise_mask[0, 0], expected)
    assert latent["samples"].shape == (1, 4, 4, 5)


def test_inpaint_model_conditioning_stores_concat_inputs():
    pixels = torch.rand(1, 32, 40, 3, generator=torch.Generator().manual_seed(1))
    mask = torch.zeros(1, 32, 40)
    mask[0, 8:24, 8:16] = 1.0
    vae = RecordingVAE()
    positive = [[torch.zeros(1, 77, 64), {"strength": 0.5}]]
    negative = [[torch.ones(1, 77, 64), {}]]
    pos, neg, latent = InpaintModelConditioning().encode(positive, negative, pixels, vae, mask, noise_mask=True)
    filled, original = vae.seen
    assert torch.all(filled[0, 8:24, 8:16] == 0.5) and torch.equal(original, pixels)
    for out in (pos, neg):
        options = out[0][1]
        assert torch.equal(options["concat_latent_image"], vae.encode(filled))
        assert torch.equal(options["concat_mask"][0, 0], mask[0])
    assert pos[0][1]["strength"] == 0.5 and "concat_mask" not in positive[0][1]
    assert torch.equal(latent["noise_mask"][0, 0], mask[0])
    _, _, without = InpaintModelConditioning().encode(positive, negative, pixels, vae, mask, noise_mask=False)
    assert "noise_mask" not in without


def test_masked_sampling_keeps_the_unmasked_latent(tiny_models):
    (model, clip, vae), _ = tiny_models
    pixels = torch.rand(1, 64, 64, 3, generator=torch.Generator().manual_seed(2))
    mask = torch.zeros(1, 64, 64)
    mask[0, 16:40, 24:48] = 1.0
    (latent,) = VAEEncodeForInpaint().encode(vae, pixels, mask, grow_mask_by=0)
    conditioning = clip.encode("a cat")
    (result,) = KSampler().sample(model, 7, 4, 3.0, "euler", "normal", conditioning, clip.encode(""), latent, 1.0)
    keep = F.interpolate(latent["noise_mask"], size=latent["samples"].shape[-2:], mode="bilinear") == 0
    keep = keep.expand_as(latent["samples"])
    assert keep.any() and (~keep).any()
    assert (result["samples"][keep] - latent["samples"][keep]).abs().max() < 1e-4
    assert not torch.allclose(result["samples"][~keep], latent["samples"][~keep])


def test_inpainting_checkpoint_gets_mask_and_masked_latent_channels(tiny_models):
    _, (model, clip, vae) = tiny_models
    assert model.unet.config.in_channels == 9
    pixels = torch.rand(1, 64, 64, 3, generator=torch.Generator().manual_seed(3))
    mask = torch.zeros(1, 64, 64)
    mask[0, :, 32:] = 1.0
    positive, negative, latent = InpaintModelConditioning().encode(
        clip.encode("a dog"), clip.encode(""), pixels, vae, mask, noise_mask=True)
    inputs = []
    hook = model.unet.register_forward_pre_hook(lambda module, args: inputs.append(args[0].clone()))
    try:
        KSampler().sample(model, 1, 2, 2.0, "euler", "normal", positive, negative, latent, 1.0)
    finally:
        hook.remove()
    assert inputs and all(x.shape[1] == 9 for x in inputs)
    concat_latent = model.latent_format.process_in(positive[0][1]["concat_latent_image"])
    for x in inputs:
        for item in range(x.shape[0]):  # cond and uncond share a batch
            assert torch.equal(x[item, 4], (torch.arange(8) >= 4).float().expand(8, 8))
            torch.testing.assert_close(x[item, 5:], concat_latent[0])


def test_inpainting_checkpoint_without_mask_sees_blank_inputs(tiny_models):
    from diffusion.inpaint import BLANK_INPAINT_LATENT, inpaint_concat

    _, (model, _, _) = tiny_models
    concat = inpaint_concat(model, {}, (2, 4, 3, 5), "cpu")
    assert concat.shape == (2, 5, 3, 5)
    assert torch.all(concat[:, 0] == 1.0)
    assert torch.allclose(concat[0, 1:, 0, 0], torch.tensor(BLANK_INPAINT_LATENT))
    ordinary = tiny_models[0][0]
    assert inpaint_concat(ordinary, {"concat_mask": torch.ones(1, 1, 3, 5)}, (1, 4, 3, 5), "cpu") is None


@pytest.mark.parametrize("resize", [False, True])
def test_image_composite_masked(resize):
    destination = torch.zeros(1, 16, 16, 3)
    source = torch.ones(1, 8, 8, 3)
    mask = torch.zeros(1, 8, 8)
    mask[:, :, :4] = 1.0
    (out,) = ImageCompositeMasked().composite(destination, source, 4, 2, resize, mask)
    assert out.shape == destination.shape
    if resize:  # the source covers the destination from (x, y) on; the mask is stretched with it
        assert out[0, 2:, 4:11].min() == 1.0 and out[0, 2:, 13:].max() == 0.0 and out[0, :2].max() == 0.0
    else:
        expected = torch.zeros(16, 16)
        expected[2:10, 4:8] = 1.0
        assert torch.equal(out[0, :, :, 0], expected)
    (plain,) = ImageCompositeMasked().composite(destination, torch.ones(1, 4, 4, 4), 0, 0, False)
    assert plain.shape == (1, 16, 16, 4) and plain[0, :4, :4].min() == 1.0 and plain[0, 8:, 8:, :3].max() == 0.0
    assert math.isclose(float(plain[0, 8, 8, 3]), 1.0)


def test_specs_match_comfyui(node_context):
    import nodes.image_compose
    import nodes.inpaint
    from tests.nodes.test_lora import assert_matches_comfyui

    assert_matches_comfyui(nodes.inpaint)
    assert_matches_comfyui(nodes.image_compose)
