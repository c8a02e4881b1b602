"""The ComfyUI import shims in comfy_compat/ (comfy-compat §11.1, §6.9, §12, §15 item 7).

(Kept under tests/api/ with the server's other plugin-compatibility tests.)
"""

from __future__ import annotations

import importlib
import os

import pytest

from tests.helpers.kiln_server import REPO_ROOT
from engine.context import InterruptFlag, Interrupted, NodeContext, ProgressReporter, use_context
from engine.folders import ModelFolders
from engine.plugins import ensure_compat_path

ensure_compat_path(REPO_ROOT / "comfy_compat")
folder_paths = importlib.import_module("folder_paths")
comfy_utils = importlib.import_module("comfy.utils")
model_management = importlib.import_module("comfy.model_management")
node_helpers = importlib.import_module("node_helpers")
latent_preview = importlib.import_module("latent_preview")
kiln_host = importlib.import_module("kiln_host")


class Recorder:
    def __init__(self) -> None:
        self.reports: list[tuple] = []

    def __call__(self, value, total, preview):
        self.reports.append((value, total, preview))


@pytest.fixture
def context(tmp_path):
    folders = ModelFolders(tmp_path)
    recorder = Recorder()
    interrupt = InterruptFlag()
    ctx = NodeContext(prompt_id="p", node_id="7", display_node_id="7",
                      reporter=ProgressReporter(recorder, interrupt), interrupt=interrupt,
                      resources={"folders": folders, "options": {}})
    ctx.recorder = recorder
    with use_context(ctx):
        yield ctx


def test_folder_lookups_use_the_servers_folders(context, tmp_path):
    (tmp_path / "models" / "checkpoints" / "sd").mkdir(parents=True)
    (tmp_path / "models" / "checkpoints" / "sd" / "model.safetensors").write_bytes(b"x")
    (tmp_path / "models" / "unet").mkdir(parents=True, exist_ok=True)
    (tmp_path / "models" / "unet" / "u.sft").write_bytes(b"x")
    assert str(tmp_path / "models" / "checkpoints") in folder_paths.get_folder_paths("checkpoints")
    assert folder_paths.get_filename_list("checkpoints") == ["sd/model.safetensors"]
    assert folder_paths.get_full_path("checkpoints", "sd/model.safetensors") == str(
        tmp_path / "models" / "checkpoints" / "sd" / "model.safetensors")
    assert folder_paths.get_full_path("checkpoints", "../../etc/passwd") is None
    assert "u.sft" in folder_paths.get_filename_list("unet")  # legacy alias of diffusion_models
    with pytest.raises(FileNotFoundError):
        folder_paths.get_full_path_or_raise("vae", "missing.safetensors")


def test_module_attributes_are_computed_from_the_folders(context, tmp_path):
    assert folder_paths.models_dir == str(tmp_path.resolve() / "models")
    assert folder_paths.output_directory == str(tmp_path.resolve() / "output")
    paths, extensions = folder_paths.folder_names_and_paths["loras"]
    assert ".safetensors" in extensions and paths
    with pytest.raises(AttributeError):
        folder_paths.no_such_attribute


def test_added_model_folders_are_searched(context, tmp_path):
    extra = tmp_path / "elsewhere"
    extra.mkdir()
    (extra / "lora.safetensors").write_bytes(b"x")
    folder_paths.add_model_folder_path("loras", str(extra), is_default=True)
    assert folder_paths.get_folder_paths("loras")[0] == str(extra)
    assert "lora.safetensors" in folder_paths.get_filename_list("loras")


def test_annotated_names_pick_their_folder(context, tmp_path):
    assert folder_paths.get_annotated_filepath("a.png [output]") == os.path.join(folder_paths.get_output_directory(), "a.png")
    assert folder_paths.get_annotated_filepath("b.png") == os.path.join(folder_paths.get_input_directory(), "b.png")
    assert folder_paths.annotated_filepath("c.png [temp]") == ("c.png", folder_paths.get_temp_directory())


def test_save_image_path_counts_past_existing_files(context):
    output = folder_paths.get_output_directory()
    folder, filename, counter, subfolder, _ = folder_paths.get_save_image_path("shots/cat_%width%", output, 64, 32)
    assert (filename, counter, subfolder) == ("cat_64", 1, "shots")
    open(os.path.join(folder, "cat_64_00007_.png"), "wb").close()
    assert folder_paths.get_save_image_path("shots/cat_%width%", output, 64, 32)[2] == 8
    with pytest.raises(ValueError):
        folder_paths.get_save_image_path("../outside", output)


def test_progress_bar_reports_through_the_node_context(context):
    bar = comfy_utils.ProgressBar(3)
    bar.update(1)
    bar.update_absolute(3, preview=("JPEG", None, 8))
    assert context.recorder.reports == [(1, 3, None), (3, 3, ("JPEG", None, 8))]


def test_progress_bar_raises_when_interrupted(context):
    bar = comfy_utils.ProgressBar(2)
    model_management.interrupt_current_processing()
    assert model_management.processing_interrupted()
    with pytest.raises(Interrupted):
        bar.update(1)
    assert not model_management.processing_interrupted()
    model_management.interrupt_current_processing()
    with pytest.raises(model_management.InterruptProcessingException):
        model_management.throw_exception_if_processing_interrupted()


def test_outside_a_node_the_installed_host_is_used(tmp_path):
    previous = kiln_host.installed()
    flag = InterruptFlag()
    try:
        kiln_host.install(kiln_host.CompatHost(resources={"folders": ModelFolders(tmp_path)}, interrupt=flag))
        assert folder_paths.get_input_directory() == str(tmp_path.resolve() / "input")
        model_management.interrupt_current_processing(True)
        assert flag.is_set()
        model_management.interrupt_current_processing(False)
        assert not flag.is_set()
    finally:
        kiln_host._SLOT.host = previous


def test_conditioning_set_values_copies_and_merges():
    conditioning = [["t0", {"a": 1}], ["t1", {}]]
    updated = node_helpers.conditioning_set_values(conditioning, {"strength": 0.5})
    assert updated == [["t0", {"a": 1, "strength": 0.5}], ["t1", {"strength": 0.5}]]
    assert conditioning[0][1] == {"a": 1}
    appended = node_helpers.conditioning_set_values(updated, {"area": (1, 2)}, append=True)
    assert appended[0][1]["area"] == [(1, 2)]


def test_latent_preview_callback_advances_the_progress_bar(context):
    x0_output = {}
    callback = latent_preview.prepare_callback(None, 4, x0_output)
    callback(0, "x0-first", None, 4)
    callback(3, "x0-last", None, 4)
    assert [report[:2] for report in context.recorder.reports] == [(1, 4), (4, 4)]
    assert x0_output["x0"] == "x0-last"
    assert latent_preview.get_previewer() is None


# ---- comfy.samplers, nodes.*, comfy.utils helpers, comfy.model_management (§15 item 7) --------

def test_sampler_and_scheduler_names_match_the_builtin_ksampler():
    from nodes.sampling import KSampler

    comfy_samplers = importlib.import_module("comfy.samplers")
    required = KSampler.INPUT_TYPES()["required"]
    assert comfy_samplers.KSampler.SAMPLERS == comfy_samplers.SAMPLER_NAMES == required["sampler_name"][0]
    assert comfy_samplers.KSampler.SCHEDULERS == comfy_samplers.SCHEDULER_NAMES == required["scheduler"][0]
    assert comfy_samplers.SAMPLER_NAMES[:3] == ["euler", "euler_cfg_pp", "euler_ancestral"]
    assert "karras" in comfy_samplers.SCHEDULER_NAMES


@pytest.fixture
def host_with_registry(tmp_path):
    from engine.registry import NodeRegistry

    class Core:
        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {}}

        RETURN_TYPES = ()
        FUNCTION = "run"

    registry = NodeRegistry()
    registry.add_module({"Core": Core}, {"Core": "Core Node"}, "nodes.core", True)
    previous = kiln_host.installed()
    host = kiln_host.CompatHost(resources={"folders": ModelFolders(tmp_path)}, interrupt=InterruptFlag(), registry=registry)
    kiln_host.install(host)
    try:
        yield host
    finally:
        kiln_host._SLOT.host = previous


def test_node_class_mappings_are_live_views_of_the_registry(host_with_registry):
    import nodes

    registry = host_with_registry.registry
    mappings = nodes.NODE_CLASS_MAPPINGS
    assert mappings["Core"] is registry.classes["Core"]
    assert nodes.NODE_DISPLAY_NAME_MAPPINGS["Core"] == "Core Node"
    registry.add_module({"Later": type("Later", (), {})}, None, "custom_nodes.later", False)
    assert "Later" in mappings and len(mappings) == 2  # the view reads the registry on each access
    with pytest.raises(TypeError):
        mappings["Mine"] = object  # read-only, as the registry has one owner


def test_nodes_interrupt_processing_sets_and_clears_the_servers_flag(host_with_registry):
    import nodes

    nodes.interrupt_processing()
    assert host_with_registry.interrupt.is_set() and model_management.interrupt_processing
    nodes.interrupt_processing(False)
    assert not host_with_registry.interrupt.is_set() and not model_management.interrupt_processing


def test_the_loader_shares_its_registry_with_the_installed_host(tmp_path):
    from engine.plugins import load_plugins
    from engine.registry import NodeRegistry

    previous = kiln_host.installed()
    try:
        kiln_host.install(kiln_host.CompatHost(resources={"folders": ModelFolders(tmp_path)}))
        registry = NodeRegistry()
        load_plugins(registry, [tmp_path / "custom_nodes"])
        assert kiln_host.current_registry() is registry
    finally:
        kiln_host._SLOT.host = previous


def test_common_upscale_is_comfyuis_resize_without_antialiasing():
    import torch
    import torch.nn.functional as F

    samples = torch.rand(1, 3, 8, 12, generator=torch.Generator().manual_seed(0))
    for method in ("bilinear", "bicubic", "nearest-exact"):
        expected = F.interpolate(samples, size=(4, 6), mode=method)
        assert torch.equal(comfy_utils.common_upscale(samples, 6, 4, method, "disabled"), expected), method
    assert comfy_utils.common_upscale(samples, 4, 4, "lanczos", "center").shape == (1, 3, 4, 4)
    with pytest.raises(ValueError, match="unknown upscale method"):
        comfy_utils.common_upscale(samples, 4, 4, "bilinear-ish", "disabled")


def test_load_torch_file_reads_safetensors_and_refuses_code_in_pickles(tmp_path):
    import pickle

    import torch
    from safetensors.torch import save_file

    weights = {"layer.weight": torch.arange(6, dtype=torch.float32).reshape(2, 3)}
    save_file(weights, str(tmp_path / "w.safetensors"), metadata={"format": "pt"})
    state_dict, metadata = comfy_utils.load_torch_file(str(tmp_path / "w.safetensors"), safe_load=True,
                                                       return_metadata=True)
    assert type(state_dict) is dict and torch.equal(state_dict["layer.weight"], weights["layer.weight"])
    assert metadata == {"format": "pt"}
    torch.save({"state_dict": weights}, tmp_path / "w.ckpt")
    assert torch.equal(comfy_utils.load_torch_file(str(tmp_path / "w.ckpt"))["layer.weight"], weights["layer.weight"])
    (tmp_path / "evil.ckpt").write_bytes(pickle.dumps(os.system, protocol=2))  # a pickle that names a callable
    with pytest.raises(Exception, match="evil.ckpt"):
        comfy_utils.load_torch_file(str(tmp_path / "evil.ckpt"))


def test_model_management_devices_and_cache(context):
    import torch

    class Devices:
        device = torch.device("cpu")

    with use_context(NodeContext(prompt_id="p", node_id="1", display_node_id="1", reporter=context.reporter,
                                 interrupt=context.interrupt, resources={"devices": Devices()})):
        assert model_management.get_torch_device() == torch.device("cpu")
    assert model_management.intermediate_device() == torch.device("cpu")
    assert model_management.unet_offload_device() == torch.device("cpu")
    model_management.soft_empty_cache()


def test_a_real_server_loads_and_runs_a_plugin_built_on_the_core_nodes(tmp_path):
    import json
    import time
    import urllib.request

    from tests.helpers.kiln_server import launch

    failing = tmp_path / "custom_nodes" / "prestartup_fails"
    failing.mkdir(parents=True)
    (failing / "prestartup_script.py").write_text("raise RuntimeError('prestartup exploded')\n")
    (failing / "__init__.py").write_text("NODE_CLASS_MAPPINGS = {}\n")
    kiln = launch(tmp_path, plugins=("core_nodes_user.py",))
    try:
        def get(path):
            with urllib.request.urlopen(kiln.url + path, timeout=10) as response:
                return json.loads(response.read())

        info = get("/object_info")
        picker, ksampler = info["FixtureSamplerPicker"]["input"]["required"], info["KSampler"]["input"]["required"]
        assert picker["sampler_name"][0] == ksampler["sampler_name"][0]
        assert picker["scheduler"][0] == ksampler["scheduler"][0]
        assert "ConditioningAverage" in info and "ConditioningAverage " not in info  # an alias is never listed
        reports = {r["name"]: r for r in get("/system_stats")["kiln"]["plugins"]}
        assert reports["core_nodes_user"]["error"] is None
        assert "(PRESTARTUP FAILED)" in reports["prestartup_fails"]["error"]
        assert "prestartup exploded" in reports["prestartup_fails"]["error"]

        prompt = {"1": {"class_type": "FixtureSamplerPicker", "inputs": {"sampler_name": "euler", "scheduler": "karras"}}}
        request = urllib.request.Request(kiln.url + "/prompt", data=json.dumps({"prompt": prompt}).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            prompt_id = json.loads(response.read())["prompt_id"]
        deadline = time.monotonic() + 30
        while prompt_id not in (history := get(f"/history/{prompt_id}")):
            assert time.monotonic() < deadline, "the prompt did not finish"
            time.sleep(0.05)
        assert history[prompt_id]["outputs"]["1"]["text"] == [
            "euler/karras core=KSampler same=True attribute=True accepted=True label=KSampler"]
    finally:
        kiln.stop()
