"""ControlNets give diffusers' ControlNetModel residuals in both file layouts, and gate, chain and scale like ComfyUI.

The reference is diffusers' `ControlNetModel` with random weights on a tiny SD1-shaped
configuration. The original-layout file is made from its weights with a test-side renaming
(`to_ldm_unet_keys` of test_unet plus the hint/zero-conv names of cldm), independent of
Kiln's converter.
"""

from __future__ import annotations

import re

import pytest
import diffusers
import torch
from safetensors.torch import save_file

from diffusion.controlnet import ControlNet, load_controlnet
from diffusion.controlnet.control import broadcast_hint, merge_control, resize_hint
from diffusion.controlnet.load import controlnet_model_from_state_dict
from diffusion.devices import DeviceManager
from diffusion.diffusion_model import DiffusionModel
from diffusion.latent_formats import SD15
from diffusion.models.unet import UNetModel
from diffusion.sampling.model_sampling import ModelSamplingDiscrete
from tests.diffusion.test_unet import SD1_TINY, to_ldm_unet_keys

HINT_CHANNELS = (8, 8, 16, 16)


def diffusers_controlnet(config=SD1_TINY):
    torch.manual_seed(0)
    channels = tuple(config.model_channels * m for m in config.channel_mult)
    model = diffusers.ControlNetModel(
        in_channels=config.in_channels,
        down_block_types=tuple("CrossAttnDownBlock2D" if d else "DownBlock2D" for d in config.transformer_depth),
        block_out_channels=channels, layers_per_block=config.num_res_blocks,
        cross_attention_dim=config.context_dim, attention_head_dim=tuple(config.heads(c)[0] for c in channels),
        use_linear_projection=config.use_linear_in_transformer, norm_num_groups=32,
        conditioning_embedding_out_channels=HINT_CHANNELS,
    ).eval()
    with torch.no_grad():  # zero convs start at zero; randomise so every residual carries signal
        for name, param in model.named_parameters():
            param.copy_(torch.randn_like(param) * 0.05 + (1.0 if "norm" in name and name.endswith("weight") else 0.0))
    return model


def original_layout(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """diffusers ControlNet tensors under cldm's `control_model.` names (test-side renaming)."""
    unet_part = {k: v for k, v in state.items() if not k.startswith("controlnet_")}
    out = {"control_model." + k: v for k, v in to_ldm_unet_keys(unet_part, SD1_TINY).items()}
    blocks = 2 * (len(HINT_CHANNELS) - 1)
    for key, value in state.items():
        if m := re.fullmatch(r"controlnet_cond_embedding\.conv_in\.(\w+)", key):
            out[f"control_model.input_hint_block.0.{m[1]}"] = value
        elif m := re.fullmatch(r"controlnet_cond_embedding\.blocks\.(\d+)\.(\w+)", key):
            out[f"control_model.input_hint_block.{2 * int(m[1]) + 2}.{m[2]}"] = value
        elif m := re.fullmatch(r"controlnet_cond_embedding\.conv_out\.(\w+)", key):
            out[f"control_model.input_hint_block.{2 * blocks + 2}.{m[1]}"] = value
        elif m := re.fullmatch(r"controlnet_down_blocks\.(\d+)\.(\w+)", key):
            out[f"control_model.zero_convs.{m[1]}.0.{m[2]}"] = value
        elif m := re.fullmatch(r"controlnet_mid_block\.(\w+)", key):
            out[f"control_model.middle_block_out.0.{m[1]}"] = value
    return out


@pytest.fixture(scope="module")
def reference():
    return diffusers_controlnet()


@pytest.fixture(scope="module")
def inputs():
    g = torch.Generator().manual_seed(1)
    return (torch.randn(2, 4, 8, 8, generator=g), torch.rand(2, 3, 64, 64, generator=g),
            torch.tensor([700.0, 12.0]), torch.randn(2, 5, SD1_TINY.context_dim, generator=g))


def expected_residuals(reference, inputs):
    x, hint, t, ctx = inputs
    with torch.no_grad():
        down, mid = reference(x, t, encoder_hidden_states=ctx, controlnet_cond=hint, return_dict=False)
    return list(down) + [mid]


@pytest.mark.parametrize("layout", ["original", "diffusers"])
def test_both_layouts_give_diffusers_residuals(tmp_path, reference, inputs, layout):
    state = {k: v.contiguous() for k, v in reference.state_dict().items()}
    path = tmp_path / f"cn-{layout}.safetensors"
    save_file(original_layout(state) if layout == "original" else state, str(path))
    control = load_controlnet(path, DeviceManager(cpu=True))
    x, hint, t, ctx = inputs
    with torch.no_grad():
        ours = control.control_model(x, hint, t, ctx)
    expected = expected_residuals(reference, inputs)
    assert len(ours) == len(expected) == len(UNetModel(SD1_TINY).input_blocks) + 1
    for got, want in zip(ours, expected):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_diff_controlnet_adds_the_base_unet(reference, inputs):
    state = original_layout({k: v.contiguous() for k, v in reference.state_dict().items()})
    torch.manual_seed(2)
    base_unet = UNetModel(SD1_TINY).eval()
    base = DiffusionModel(base_unet, ModelSamplingDiscrete(), SD15, DeviceManager(cpu=True))
    base_weights = base_unet.state_dict()
    diff = {k: (v - base_weights[k[len("control_model."):]]) if k[len("control_model."):] in base_weights else v
            for k, v in state.items()}
    diff["difference"] = torch.tensor([])
    model = controlnet_model_from_state_dict(diff, "diff.safetensors", base)
    x, hint, t, ctx = inputs
    with torch.no_grad():
        ours = model(x, hint, t, ctx)
    for got, want in zip(ours, expected_residuals(reference, inputs)):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


class RecordingControlNet(ControlNet):
    """Counts the steps at which it produced residuals."""

    def __init__(self, *args):
        super().__init__(*args)
        self.sigmas_seen: list[float] = []

    def copy(self):
        return self.copy_to(RecordingControlNet(self.control_model, self.devices))

    def residuals(self, x_noisy, t, cond, batched_number):
        self.sigmas_seen.append(float(t[0]))
        return super().residuals(x_noisy, t, cond, batched_number)


def test_get_control_matches_model_residuals_times_strength_and_chains(reference, inputs):
    devices = DeviceManager(cpu=True)
    model = controlnet_model_from_state_dict(original_layout(reference.state_dict()))
    sampling = ModelSamplingDiscrete()
    diffusion_model = DiffusionModel(UNetModel(SD1_TINY), sampling, SD15, devices)
    x, hint, _, ctx = inputs
    sigma = torch.tensor([2.5, 2.5])
    first = ControlNet(model, devices).copy().set_cond_hint(hint, 0.5, (0.0, 1.0))
    second = ControlNet(model, devices).copy().set_cond_hint(hint.flip(-1), 2.0).set_previous_controlnet(first)
    second.pre_run(diffusion_model)
    control = second.get_control(x, sigma, {"c_crossattn": ctx}, 1)
    with torch.no_grad():
        x_in, t = sampling.calculate_input(sigma, x), sampling.timestep(sigma).float()
        plain = model(x_in, hint, t, ctx)
        flipped = model(x_in, hint.flip(-1), t, ctx)
    expected = [0.5 * a + 2.0 * b for a, b in zip(plain, flipped)]
    assert control["input"] == []
    torch.testing.assert_close(control["middle"][0], expected[-1])
    for got, want in zip(control["output"], expected[:-1]):
        torch.testing.assert_close(got, want)


def test_start_and_end_percent_gate_the_steps(reference):
    from diffusion.sampling.pipeline import sample

    devices = DeviceManager(cpu=True)
    torch.manual_seed(3)
    unet = UNetModel(SD1_TINY).eval()
    model = DiffusionModel(unet, ModelSamplingDiscrete(), SD15, devices)
    control = RecordingControlNet(controlnet_model_from_state_dict(original_layout(reference.state_dict())), devices)
    control = control.copy().set_cond_hint(torch.rand(1, 3, 64, 64), 1.0, (0.25, 0.6))
    ctx = torch.randn(1, 5, SD1_TINY.context_dim)
    positive = [[ctx, {"control": control}]]
    noise = torch.randn(1, 4, 8, 8)
    sample(model, noise, 10, 1.0, "euler", "normal", positive, [[ctx, {}]], torch.zeros(1, 4, 8, 8))
    from diffusion.sampling.pipeline import denoise_sigmas

    sigmas = denoise_sigmas(model.model_sampling, "normal", 10, 1.0, "euler")[:-1]
    high, low = model.model_sampling.percent_to_sigma(0.25), model.model_sampling.percent_to_sigma(0.6)
    expected = [float(s) for s in sigmas if low <= float(s) <= high]
    assert 0 < len(expected) < len(sigmas)
    assert control.sigmas_seen == pytest.approx(expected)


def test_hint_is_centre_cropped_resized_and_batched():
    hint = torch.arange(2 * 1 * 4 * 8, dtype=torch.float32).reshape(2, 1, 4, 8)
    resized = resize_hint(hint, 4, 4)  # wide -> square: the middle 4 columns
    torch.testing.assert_close(resized, hint[:, :, :, 2:6])
    batched = broadcast_hint(resized, 6, 2)  # 2 conds × 3 latents: hints 0, 1, 0 per cond
    assert torch.equal(batched, torch.cat([resized, resized[:1], resized, resized[:1]]))


def test_merge_control_adds_positionwise_and_keeps_missing_entries():
    a, b = torch.ones(1), torch.full((1,), 2.0)
    merged = merge_control({"output": [a, None], "middle": [a]}, {"output": [b, b, b], "input": [None, b]})
    assert [float(t) for t in merged["output"]] == [3.0, 2.0, 2.0]
    assert float(merged["middle"][0]) == 1.0 and merged["input"] == [None, b]


def test_not_a_controlnet_names_the_file():
    from diffusion.controlnet.load import ControlNetFileError

    with pytest.raises(ControlNetFileError, match="weird.safetensors"):
        controlnet_model_from_state_dict({"foo": torch.zeros(1)}, "weird.safetensors")


def test_t2i_adapter_in_diffusers_layout_matches_diffusers_and_feeds_each_level(tmp_path):
    from tests.helpers.tiny_checkpoint import SD1_UNET

    torch.manual_seed(4)
    reference = diffusers.T2IAdapter(in_channels=3, channels=[32, 64], num_res_blocks=2, downscale_factor=8,
                                     adapter_type="full_adapter").eval()
    with torch.no_grad():
        for param in reference.parameters():
            param.copy_(torch.randn_like(param) * 0.1)
    path = tmp_path / "t2i.safetensors"
    save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, str(path))
    control = load_controlnet(path, DeviceManager(cpu=True))
    hint = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        expected = reference(hint)
    ours = control.adapter(hint)
    assert len(ours) == len(expected) == 2
    for got, want in zip(ours, expected):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)

    unet = DiffusionModel(UNetModel(SD1_UNET), ModelSamplingDiscrete(), SD15, DeviceManager(cpu=True))
    applied = control.copy().set_cond_hint(hint, 0.5)
    applied.pre_run(unet)
    x = torch.randn(2, 4, 8, 8)
    residuals = applied.get_control(x, torch.tensor([1.0, 1.0]), {}, 2)["input"]
    # SD1_UNET input blocks: conv_in, ResBlock (level 0), downsampler, ResBlock (level 1); popped from the end.
    popped = list(reversed(residuals))
    assert len(popped) == 4 and popped[0] is None and popped[2] is None
    torch.testing.assert_close(popped[1], 0.5 * expected[0].repeat(2, 1, 1, 1))
    torch.testing.assert_close(popped[3], 0.5 * expected[1].repeat(2, 1, 1, 1))
