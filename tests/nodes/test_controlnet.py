"""ControlNet nodes: loading, applying, chaining and gating, through sampling with a tiny checkpoint."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

import nodes.controlnet as controlnet_nodes
from diffusion.controlnet import ControlNet
from diffusion.controlnet.model import ControlNetModel
from diffusion.devices import DeviceManager
from diffusion.loading import load_checkpoint
from nodes.controlnet import ControlNetApply, ControlNetApplyAdvanced, ControlNetLoader, DiffControlNetLoader
from nodes.sampling import KSampler
from tests.helpers.tiny_checkpoint import SD1_UNET, write_tiny_checkpoint
from tests.nodes.test_lora import assert_matches_comfyui


def random_controlnet_state(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    module = ControlNetModel(SD1_UNET)
    return {"control_model." + k: (1.0 if "norm" in k and k.endswith("weight") else 0.0) + 0.05 * torch.randn(v.shape, generator=g)
            for k, v in module.state_dict().items()}


@pytest.fixture
def setup(folders, tmp_path):
    checkpoint = write_tiny_checkpoint(tmp_path / "tiny.safetensors")
    model, clip, vae = load_checkpoint(checkpoint.path, DeviceManager(cpu=True))
    folder = folders.paths("controlnet")[0]
    folder.mkdir(parents=True, exist_ok=True)
    state = random_controlnet_state()
    save_file(state, str(folder / "cn.safetensors"))
    base = model.unet.state_dict()
    diff = {k: v - base[k[len("control_model."):]] if k[len("control_model."):] in base else v for k, v in state.items()}
    diff["difference"] = torch.zeros(1)
    save_file(diff, str(folder / "cn-diff.safetensors"))
    return model, clip, state


def test_specs_match_comfyui(node_context):
    assert_matches_comfyui(controlnet_nodes)


def test_loaders_give_the_same_network(node_context, setup):
    model, _, state = setup
    (plain,) = ControlNetLoader().load_controlnet("cn.safetensors")
    (diff,) = DiffControlNetLoader().load_controlnet(model, "cn.safetensors".replace(".", "-diff.", 1))
    assert isinstance(plain, ControlNet)
    for name, tensor in plain.control_model.state_dict().items():
        torch.testing.assert_close(tensor, state["control_model." + name])
        torch.testing.assert_close(diff.control_model.state_dict()[name], tensor, rtol=0, atol=1e-6)


def test_apply_advanced_shares_one_control_per_chain_and_chains(node_context, setup):
    _, clip, _ = setup
    (control_net,) = ControlNetLoader().load_controlnet("cn.safetensors")
    positive, negative = clip.encode("a house"), clip.encode("")
    image = torch.rand(1, 64, 64, 3)
    node = ControlNetApplyAdvanced()
    assert node.apply_controlnet(positive, negative, control_net, image, 0.0, 0.0, 1.0) == (positive, negative)
    pos1, neg1 = node.apply_controlnet(positive, negative, control_net, image, 0.8, 0.1, 0.9)
    first = pos1[0][1]["control"]
    assert neg1[0][1]["control"] is first and first is not control_net and "control" not in positive[0][1]
    assert first.strength == 0.8 and first.timestep_percent_range == (0.1, 0.9)
    assert torch.equal(first.cond_hint_original, image.movedim(-1, 1))
    assert pos1[0][1]["control_apply_to_uncond"] is False
    pos2, neg2 = node.apply_controlnet(pos1, neg1, control_net, image, 0.5, 0.0, 1.0)
    second = pos2[0][1]["control"]
    assert second.previous_controlnet is first and neg2[0][1]["control"] is second


def test_old_apply_shares_the_control_with_uncond_during_sampling(node_context, setup):
    model, clip, _ = setup
    (control_net,) = ControlNetLoader().load_controlnet("cn.safetensors")
    (positive,) = ControlNetApply().apply_controlnet(clip.encode("a house"), control_net, torch.rand(1, 64, 64, 3), 1.0)
    control = positive[0][1]["control"]
    assert positive[0][1]["control_apply_to_uncond"] is True
    batches = []
    original = control.residuals
    control.residuals = lambda x, t, cond, n: batches.append(n) or original(x, t, cond, n)
    latent = {"samples": torch.zeros(1, 4, 8, 8)}
    (with_control,) = KSampler().sample(model, 3, 2, 4.0, "euler", "normal", positive, clip.encode(""), latent, 1.0)
    assert batches == [2, 2]  # cond and uncond in one batch, both controlled
    (without,) = KSampler().sample(model, 3, 2, 4.0, "euler", "normal", clip.encode("a house"), clip.encode(""),
                                   latent, 1.0)
    assert not torch.allclose(with_control["samples"], without["samples"])
