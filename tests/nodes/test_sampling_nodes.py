"""Sampling nodes: ComfyUI's specs, KSampler semantics, progress and previews through the node context."""

from __future__ import annotations

import importlib

import pytest
import torch

from diffusion.sampling import pipeline, schedules
from diffusion.sampling.noise import prepare_noise
from engine.context import Interrupted
from engine.registry import NodeRegistry
from nodes import sampling
from tests.helpers.sampling_doubles import DummyModel, conditioning
from tests.nodes.test_object_info_parity import comfyui_object_info, node_differences


@pytest.fixture(scope="module")
def registry() -> NodeRegistry:
    registry = NodeRegistry()
    registry.add_module(sampling.NODE_CLASS_MAPPINGS, sampling.NODE_DISPLAY_NAME_MAPPINGS, "nodes.sampling", builtin=True)
    return registry


@pytest.mark.parametrize("class_type", sorted(sampling.NODE_CLASS_MAPPINGS))
def test_node_describes_itself_as_comfyui_does(class_type, registry):
    problems = node_differences(class_type, registry.node_info(class_type), comfyui_object_info()[class_type])
    assert not problems, "\n".join(problems)


def test_sampler_combo_lists_only_implemented_samplers_in_comfyui_order():
    offered = sampling.KSampler.INPUT_TYPES()["required"]["sampler_name"][0]
    comfy = comfyui_object_info()["KSampler"]["input"]["required"]["sampler_name"][0]
    assert offered == [name for name in comfy if name in offered]
    assert {"euler", "dpmpp_2m", "dpmpp_2m_sde", "ddim", "lms"} <= set(offered)


def test_node_module_does_not_import_torch_at_top_level():
    source = importlib.util.find_spec("nodes.sampling").origin
    top_level = [line for line in open(source, encoding="utf-8") if line.startswith(("import ", "from "))]
    assert not any("torch" in line or "diffusion.sampling.pipeline" in line for line in top_level)


def ksampler(model, **overrides):
    arguments = dict(model=model, seed=3, steps=4, cfg=5.0, sampler_name="euler", scheduler="karras",
                     positive=conditioning(1.0), negative=conditioning(-1.0),
                     latent_image={"samples": torch.zeros(1, 4, 8, 8)}, denoise=1.0)
    arguments.update(overrides)
    return sampling.KSampler().sample(**arguments)[0]


def test_ksampler_is_seeded_noise_through_the_pipeline(node_context):
    out = ksampler(DummyModel())
    latent = torch.zeros(1, 4, 8, 8)
    expected = pipeline.sample(DummyModel(), prepare_noise(latent, 3), 4, 5.0, "euler", "karras", conditioning(1.0),
                               conditioning(-1.0), latent)
    torch.testing.assert_close(out["samples"], expected)


def test_ksampler_keeps_the_latents_other_keys_and_uses_batch_index(node_context):
    latent = {"samples": torch.zeros(1, 4, 8, 8), "batch_index": [2]}
    out = ksampler(DummyModel(), latent_image=latent)
    assert out["batch_index"] == [2]
    full = ksampler(DummyModel(), latent_image={"samples": torch.zeros(3, 4, 8, 8)})
    torch.testing.assert_close(out["samples"], full["samples"][2:3], rtol=1e-5, atol=1e-5)


def test_ksampler_also_runs_outside_the_executor():
    out = ksampler(DummyModel(), steps=2)
    assert out["samples"].shape == (1, 4, 8, 8)


def test_progress_is_reported_per_step_with_previews_when_enabled(node_context, progress_reports, server_options):
    server_options["preview_method"] = "latent2rgb"
    server_options["preview_size"] = 256
    ksampler(DummyModel(), steps=3)
    assert [(value, total) for value, total, _ in progress_reports] == [(1, 3), (2, 3), (3, 3)]
    kind, image, size = progress_reports[0][2]
    assert (kind, size, image.size) == ("JPEG", 256, (8, 8))


def test_no_previews_by_default(node_context, progress_reports):
    ksampler(DummyModel(), steps=2)
    assert [preview for _, _, preview in progress_reports] == [None, None]


def test_interrupt_stops_the_sampler_within_one_step(node_context):
    model = DummyModel()
    node_context.interrupt.set()
    with pytest.raises(Interrupted):
        ksampler(model, steps=20)
    assert len(model.calls) == 1


def test_ksampler_advanced_runs_a_step_window_and_can_leave_noise(node_context):
    model = DummyModel()
    latent = {"samples": torch.zeros(1, 4, 8, 8)}
    common = dict(model=model, noise_seed=3, steps=10, cfg=1.0, sampler_name="euler", scheduler="normal",
                  positive=conditioning(1.0), negative=conditioning(0.0))
    first = sampling.KSamplerAdvanced().sample(add_noise="enable", latent_image=latent, start_at_step=0, end_at_step=4,
                                               return_with_leftover_noise="enable", **common)[0]
    assert len(model.calls) == 4
    second = sampling.KSamplerAdvanced().sample(add_noise="disable", latent_image=first, start_at_step=4,
                                                end_at_step=10000, return_with_leftover_noise="disable", **common)[0]
    whole = sampling.KSampler().sample(model=DummyModel(), seed=3, steps=10, cfg=1.0, sampler_name="euler",
                                       scheduler="normal", positive=conditioning(1.0), negative=conditioning(0.0),
                                       latent_image=latent)[0]
    torch.testing.assert_close(second["samples"], whole["samples"], rtol=1e-4, atol=1e-4)


def test_start_step_past_the_end_returns_the_latent_unchanged(node_context):
    latent = {"samples": torch.randn(1, 4, 8, 8)}
    out = sampling.KSamplerAdvanced().sample(DummyModel(), "enable", 0, 5, 8.0, "euler", "normal", conditioning(1),
                                             conditioning(0), latent, 5, 10000, "disable")[0]
    assert torch.equal(out["samples"], latent["samples"])


def test_basic_scheduler_with_denoise_and_karras_scheduler():
    model = DummyModel()
    (sigmas,) = sampling.BasicScheduler().get_sigmas(model, "normal", 10, 0.5)
    torch.testing.assert_close(sigmas, schedules.calculate_sigmas(model.model_sampling, "normal", 20)[-11:])
    assert len(sampling.BasicScheduler().get_sigmas(model, "normal", 10, 0.0)[0]) == 0
    (karras,) = sampling.KarrasScheduler().get_sigmas(5, 14.614642, 0.0291675, 7.0)
    torch.testing.assert_close(karras, schedules.get_sigmas_karras(5, 0.0291675, 14.614642))


def test_split_sigmas_share_the_boundary_sigma():
    sigmas = torch.tensor([5.0, 3.0, 1.0, 0.0])
    high, low = sampling.SplitSigmas().get_sigmas(sigmas, 1)
    assert high.tolist() == [5.0, 3.0] and low.tolist() == [3.0, 1.0, 0.0]


def test_sampler_custom_advanced_equals_ksampler(node_context):
    model = DummyModel()
    latent = {"samples": torch.zeros(1, 4, 8, 8)}
    (noise,) = sampling.RandomNoise().get_noise(3)
    (guider,) = sampling.CFGGuider().get_guider(model, conditioning(1.0), conditioning(-1.0), 5.0)
    (sampler,) = sampling.KSamplerSelect().get_sampler("dpmpp_2m")
    (sigmas,) = sampling.BasicScheduler().get_sigmas(model, "karras", 4, 1.0)
    out, denoised = sampling.SamplerCustomAdvanced().sample(noise, guider, sampler, sigmas, latent)
    expected = ksampler(DummyModel(), sampler_name="dpmpp_2m")
    torch.testing.assert_close(out["samples"], expected["samples"])
    # the last step lands on sigma 0, where the output is that step's x0 prediction
    torch.testing.assert_close(denoised["samples"], out["samples"], rtol=1e-5, atol=1e-4)
    high, _ = sampling.SplitSigmas().get_sigmas(sigmas, 2)
    partial, partial_x0 = sampling.SamplerCustomAdvanced().sample(noise, guider, sampler, high, latent)
    assert not torch.allclose(partial["samples"], partial_x0["samples"])


def test_sampler_custom_with_and_without_noise(node_context):
    model = DummyModel()
    latent = {"samples": torch.zeros(1, 4, 8, 8)}
    (sampler,) = sampling.KSamplerSelect().get_sampler("euler")
    sigmas = torch.tensor([2.0, 1.0, 0.0])
    noisy, _ = sampling.SamplerCustom().sample(model, True, 3, 1.0, conditioning(1.0), conditioning(0.0), sampler,
                                               sigmas, latent)
    quiet, _ = sampling.SamplerCustom().sample(model, False, 3, 1.0, conditioning(1.0), conditioning(0.0), sampler,
                                               sigmas, latent)
    assert not torch.equal(noisy["samples"], quiet["samples"])
    (basic,) = sampling.BasicGuider().get_guider(model, conditioning(1.0))
    (disabled,) = sampling.DisableNoise().get_noise()
    via_basic, _ = sampling.SamplerCustomAdvanced().sample(disabled, basic, sampler, sigmas, latent)
    torch.testing.assert_close(via_basic["samples"], quiet["samples"])


def test_taesd_previews_use_the_decoder_in_vae_approx(node_context, progress_reports, server_options, folders):
    from safetensors.torch import save_file

    from diffusion.taesd import taesd_decoder

    folder = folders.paths("vae_approx")[0]
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in taesd_decoder().state_dict().items()}, str(folder / "taesd_decoder.safetensors"))
    server_options["preview_method"] = "taesd"
    ksampler(DummyModel(), steps=2)
    kind, image, size = progress_reports[-1][2]
    assert (kind, image.size, size) == ("JPEG", (64, 64), 512)
