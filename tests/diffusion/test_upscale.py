"""Kiln's own upscalers (the path where spandrel does not import) load from their key layouts and
compute what ESRGAN's and Real-ESRGAN's papers define.

References are functional re-statements written here with `F.conv2d` over the raw state dict
(RRDB: dense blocks with 0.2 residual scaling; SRVGG: convs + PReLU, pixel shuffle plus nearest
upsampling), independent of the module code. spandrel is kept from importing here, as on a machine
without torchvision; `test_upscale_spandrel.py` tests the other path.
"""

from __future__ import annotations

import sys

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from diffusion.devices import DeviceManager
from diffusion.upscale.model import load_upscale_model, tiled_upscale, upscale_image, upscale_model_from_state_dict
from diffusion.upscale.rrdbnet import RRDBNet
from diffusion.upscale.srvgg import SRVGGNetCompact


@pytest.fixture(autouse=True)
def without_spandrel(monkeypatch):
    monkeypatch.setitem(sys.modules, "spandrel", None)


def random_state(module: torch.nn.Module, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(v.shape, generator=g) * 0.1 for k, v in module.state_dict().items()}


def conv(x, state, name):
    return F.conv2d(x, state[name + ".weight"], state[name + ".bias"], padding=1)


def reference_rrdbnet(x, state, nb, steps, unshuffle=1):
    lrelu = lambda t: F.leaky_relu(t, 0.2)  # noqa: E731
    feat = conv(F.pixel_unshuffle(x, unshuffle) if unshuffle > 1 else x, state, "conv_first")
    body = feat
    for b in range(nb):
        block_in = body
        for r in (1, 2, 3):
            dense = [body]
            for c in range(1, 5):
                dense.append(lrelu(conv(torch.cat(dense, 1), state, f"body.{b}.rdb{r}.conv{c}")))
            body = conv(torch.cat(dense, 1), state, f"body.{b}.rdb{r}.conv5") * 0.2 + body
        body = body * 0.2 + block_in
    feat = feat + conv(body, state, "conv_body")
    for s in range(1, steps + 1):
        feat = lrelu(conv(F.interpolate(feat, scale_factor=2, mode="nearest"), state, f"conv_up{s}"))
    return conv(lrelu(conv(feat, state, "conv_hr")), state, "conv_last")


def old_esrgan_keys(state, nb, steps):
    """BasicSR names -> the original ESRGAN repository's `model.N` names (test-side)."""
    out = {}
    for key, value in state.items():
        parts = key.split(".")
        if parts[0] == "body":
            out[f"model.1.sub.{parts[1]}.RDB{parts[2][-1]}.{parts[3]}.0.{parts[4]}"] = value
        elif parts[0] == "conv_body":
            out[f"model.1.sub.{nb}.{parts[1]}"] = value
        elif parts[0] == "conv_first":
            out[f"model.0.{parts[1]}"] = value
        elif parts[0].startswith("conv_up"):
            out[f"model.{3 * int(parts[0][-1])}.{parts[1]}"] = value
        elif parts[0] == "conv_hr":
            out[f"model.{3 * steps + 2}.{parts[1]}"] = value
        elif parts[0] == "conv_last":
            out[f"model.{3 * steps + 4}.{parts[1]}"] = value
    return out


@pytest.mark.parametrize("steps, unshuffle, scale", [(2, 1, 4), (2, 2, 2), (1, 1, 2)])
def test_rrdbnet_new_and_old_keys(steps, unshuffle, scale):
    state = random_state(RRDBNet(3, 3, nf=8, gc=4, nb=2, upsample_steps=steps, unshuffle=unshuffle), seed=steps)
    x = torch.rand(1, 3, 8, 12, generator=torch.Generator().manual_seed(0))
    expected = reference_rrdbnet(x, state, 2, steps, unshuffle)
    layouts = [state] + ([old_esrgan_keys(state, 2, steps)] if unshuffle == 1 else [])
    for layout in layouts:
        model = upscale_model_from_state_dict(layout)
        assert model.scale == scale and model.architecture == "RRDBNet"
        with torch.no_grad():
            torch.testing.assert_close(model.model(x), expected, rtol=1e-4, atol=1e-5)
    assert expected.shape == (1, 3, 8 * scale, 12 * scale)


def test_srvgg_compact():
    state = random_state(SRVGGNetCompact(3, 3, nf=8, num_conv=3, scale=4), seed=5)
    x = torch.rand(2, 3, 6, 5, generator=torch.Generator().manual_seed(1))
    h = x
    for index in range(0, 8, 2):
        h = F.prelu(conv(h, state, f"body.{index}"), state[f"body.{index + 1}.weight"])
    expected = F.pixel_shuffle(conv(h, state, "body.8"), 4) + F.interpolate(x, scale_factor=4, mode="nearest")
    model = upscale_model_from_state_dict(state)
    assert (model.scale, model.architecture) == (4, "SRVGGNetCompact")
    with torch.no_grad():
        torch.testing.assert_close(model.model(x), expected, rtol=1e-4, atol=1e-5)


def test_tiles_blend_to_the_untiled_result_and_report_progress():
    image = torch.rand(2, 3, 40, 50, generator=torch.Generator().manual_seed(2))
    nearest = lambda tile: F.interpolate(tile, scale_factor=3, mode="nearest")  # noqa: E731
    reports = []
    tiled = tiled_upscale(nearest, image, 3, tile=16, overlap=4, progress=lambda done, total: reports.append((done, total)))
    torch.testing.assert_close(tiled, nearest(image))
    total = reports[-1][1]
    assert reports == [(i, total) for i in range(1, total + 1)] and total > 2


def test_node_path_from_file_clamps_and_keeps_layout(tmp_path):
    state = random_state(SRVGGNetCompact(3, 3, nf=4, num_conv=1, scale=2), seed=6)
    path = tmp_path / "2x-tiny.safetensors"
    save_file(state, str(path))
    model = load_upscale_model(path)
    image = torch.rand(1, 20, 24, 3, generator=torch.Generator().manual_seed(3))
    out = upscale_image(model, image, DeviceManager(cpu=True), tile=16, overlap=4)
    assert out.shape == (1, 40, 48, 3) and out.min() >= 0 and out.max() <= 1
    with torch.no_grad():
        untiled = model.model(image.movedim(-1, 1)).clamp(0, 1).movedim(1, -1)
    # Tiles see less context at their borders; the blend stays close to the whole-image result.
    assert (out - untiled).abs().mean() < 0.05


def test_unknown_file_is_refused_with_its_name(tmp_path):
    path = tmp_path / "mystery.safetensors"
    save_file({"foo.weight": torch.zeros(2, 2)}, str(path))
    with pytest.raises(ValueError, match="mystery.safetensors: is not an ESRGAN or SRVGGNetCompact model") as refused:
        load_upscale_model(path)
    assert "need the spandrel package" in str(refused.value)
