"""Upscale nodes: a model file from models/upscale_models upscales an IMAGE, reporting progress per tile."""

from __future__ import annotations

import torch
from safetensors.torch import save_file

from diffusion.upscale.srvgg import SRVGGNetCompact
from nodes.upscale import ImageUpscaleWithModel, UpscaleModelLoader


def test_load_and_upscale_with_progress(node_context, folders, progress_reports):
    folder = folders.paths("upscale_models")[0]
    folder.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(0)
    state = {k: 0.1 * torch.randn(v.shape, generator=g) for k, v in SRVGGNetCompact(3, 3, 4, 1, 2).state_dict().items()}
    save_file(state, str(folder / "2x-compact.safetensors"))
    assert UpscaleModelLoader.INPUT_TYPES()["required"]["model_name"][0] == ["2x-compact.safetensors"]
    (model,) = UpscaleModelLoader().load_model("2x-compact.safetensors")
    assert model.scale == 2
    image = torch.rand(2, 24, 20, 3, generator=g)
    (out,) = ImageUpscaleWithModel().upscale(model, image)
    assert out.shape == (2, 48, 40, 3) and 0 <= out.min() and out.max() <= 1
    assert progress_reports and progress_reports[-1][:2] == (2, 2)
    assert ImageUpscaleWithModel.CATEGORY == "image/upscaling" and UpscaleModelLoader.RETURN_TYPES == ("UPSCALE_MODEL",)
