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
