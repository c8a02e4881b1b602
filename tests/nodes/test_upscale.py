"""Upscale nodes: a model file from models/upscale_models upscales an IMAGE, reporting progress per tile.

Both paths: spandrel (imported with a stand-in for the torchvision names it imports, see
`tests/diffusion/test_upscale_spandrel.py`) and Kiln's own networks where spandrel does not import.
"""

from __future__ import annotations

import sys

import pytest
import torch
from safetensors.torch import save_file

from diffusion.upscale.srvgg import SRVGGNetCompact
from nodes.upscale import ImageUpscaleWithModel, UpscaleModelLoader
from tests.diffusion.test_upscale_spandrel import random_state, spandrel_importable, tiny_swinir


@pytest.fixture(scope="module")
def spandrel():
    with spandrel_importable() as module:
        yield module


def test_a_spandrel_architecture_loads_and_upscales_as_spandrel_does(spandrel, node_context, folders,
                                                                     progress_reports):
    folder = folders.paths("upscale_models")[0]
    folder.mkdir(parents=True, exist_ok=True)
    save_file(random_state(tiny_swinir(spandrel), seed=0, std=None), str(folder / "2x-swinir.safetensors"))
    (model,) = UpscaleModelLoader().load_model("2x-swinir.safetensors")
    assert (model.loader, model.architecture, model.scale) == ("spandrel", "SwinIR", 2)
    image = torch.rand(1, 24, 20, 3, generator=torch.Generator().manual_seed(1))
    (out,) = ImageUpscaleWithModel().upscale(model, image)
    reference = spandrel.ModelLoader().load_from_file(folder / "2x-swinir.safetensors").eval()
    torch.testing.assert_close(out, reference(image.movedim(-1, 1)).movedim(1, -1), rtol=0, atol=1e-6)
    assert progress_reports and progress_reports[-1][:2] == (1, 1)


def test_the_loader_says_which_architectures_need_spandrel():
    description = UpscaleModelLoader.DESCRIPTION
    assert "spandrel" in description and "torchvision" in description
    assert "ESRGAN" in description and "SwinIR" in description


def test_load_and_upscale_with_progress(node_context, folders, progress_reports, monkeypatch):
    monkeypatch.setitem(sys.modules, "spandrel", None)  # Kiln's own network, as without torchvision
    folder = folders.paths("upscale_models")[0]
    folder.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(0)
    state = {k: 0.1 * torch.randn(v.shape, generator=g) for k, v in SRVGGNetCompact(3, 3, 4, 1, 2).state_dict().items()}
    save_file(state, str(folder / "2x-compact.safetensors"))
    assert UpscaleModelLoader.INPUT_TYPES()["required"]["model_name"][0] == ["2x-compact.safetensors"]
    (model,) = UpscaleModelLoader().load_model("2x-compact.safetensors")
    assert (model.loader, model.architecture, model.scale) == ("kiln", "SRVGGNetCompact", 2)
    image = torch.rand(2, 24, 20, 3, generator=g)
    (out,) = ImageUpscaleWithModel().upscale(model, image)
    assert out.shape == (2, 48, 40, 3) and 0 <= out.min() and out.max() <= 1
    assert progress_reports and progress_reports[-1][:2] == (2, 2)
    assert ImageUpscaleWithModel.CATEGORY == "image/upscaling" and UpscaleModelLoader.RETURN_TYPES == ("UPSCALE_MODEL",)
