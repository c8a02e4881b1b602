"""engine.folders: ComfyUI's folder table, listings and extra_model_paths.yaml (§11.1-§11.2)."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from engine.folders import PT_EXTENSIONS, ModelFolders, partial_write_path


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


@pytest.fixture
def folders(tmp_path: Path) -> ModelFolders:
    return ModelFolders(tmp_path)


def test_default_folder_keys_match_comfyui(folders: ModelFolders):
    expected = {
        "checkpoints", "configs", "loras", "vae", "text_encoders", "diffusion_models", "clip_vision",
        "style_models", "embeddings", "diffusers", "vae_approx", "controlnet", "gligen",
        "upscale_models", "hypernetworks", "photomaker", "classifiers", "model_patches",
        "audio_encoders", "custom_nodes",
    }
    assert set(folders.folder_keys()) == expected


def test_pt_extension_set_is_comfyuis():
    assert PT_EXTENSIONS == {".ckpt", ".pt", ".pt2", ".bin", ".pth", ".safetensors", ".pkl", ".sft"}


def test_shared_directories_and_aliases(folders: ModelFolders, tmp_path: Path):
    models = tmp_path / "models"
    assert folders.paths("diffusion_models")[:2] == [models / "unet", models / "diffusion_models"]
    assert folders.paths("unet") == folders.paths("diffusion_models")
    assert folders.paths("text_encoders")[:2] == [models / "text_encoders", models / "clip"]
    assert folders.paths("clip") == folders.paths("text_encoders")
    assert folders.paths("controlnet")[:2] == [models / "controlnet", models / "t2i_adapter"]
    assert "unet" in folders and "clip" in folders and "nonsense" not in folders


def test_output_model_folders_come_last(folders: ModelFolders, tmp_path: Path):
    assert folders.paths("checkpoints")[-1] == tmp_path / "output" / "checkpoints"
    assert folders.paths("text_encoders")[-1] == tmp_path / "output" / "clip"
    assert folders.paths("loras")[-1] == tmp_path / "output" / "loras"


def test_unknown_key_raises_key_error(folders: ModelFolders):
    with pytest.raises(KeyError):
        folders.list_files("no_such_folder")
    with pytest.raises(KeyError):
        folders.paths("no_such_folder")


def test_listing_is_recursive_sorted_filtered_and_slash_separated(folders: ModelFolders, tmp_path: Path):
    ckpts = tmp_path / "models" / "checkpoints"
    touch(ckpts / "b.safetensors")
    touch(ckpts / "A.ckpt")
    touch(ckpts / "sd1" / "deep" / "c.SFT")
    touch(ckpts / "notes.txt")
    touch(ckpts / ".git" / "objects" / "x.pt")
    assert folders.list_files("checkpoints") == ["A.ckpt", "b.safetensors", "sd1/deep/c.SFT"]


def test_listing_merges_all_dirs_of_a_key(folders: ModelFolders, tmp_path: Path):
    touch(tmp_path / "models" / "unet" / "old.safetensors")
    touch(tmp_path / "models" / "diffusion_models" / "new.safetensors")
    touch(tmp_path / "models" / "diffusion_models" / "old.safetensors")
    assert folders.list_files("unet") == ["new.safetensors", "old.safetensors"]


def test_new_file_shows_up_without_restart(folders: ModelFolders, tmp_path: Path):
    loras = tmp_path / "models" / "loras"
    touch(loras / "first.safetensors")
    assert folders.list_files("loras") == ["first.safetensors"]
    touch(loras / "sub" / "second.safetensors")
    assert folders.list_files("loras") == ["first.safetensors", "sub/second.safetensors"]
    touch(loras / "sub" / "third.safetensors")
    assert folders.list_files("loras") == ["first.safetensors", "sub/second.safetensors", "sub/third.safetensors"]


def test_folder_created_after_start_is_listed(tmp_path: Path):
    folders = ModelFolders(tmp_path)
    assert folders.list_files("gligen") == []
    touch(tmp_path / "models" / "gligen" / "g.pth")
    assert folders.list_files("gligen") == ["g.pth"]


def test_listing_follows_symlinks_and_survives_cycles(folders: ModelFolders, tmp_path: Path):
    store = tmp_path / "elsewhere"
    touch(store / "linked.safetensors")
    vae = tmp_path / "models" / "vae"
    vae.mkdir(parents=True, exist_ok=True)
    os.symlink(store, vae / "external")
    os.symlink(vae, vae / "loop")
    assert folders.list_files("vae") == ["external/linked.safetensors"]


def test_extension_rules_for_special_folders(folders: ModelFolders, tmp_path: Path):
    touch(tmp_path / "models" / "configs" / "v1.yaml")
    touch(tmp_path / "models" / "configs" / "v1.safetensors")
    touch(tmp_path / "models" / "classifiers" / "noext")
    touch(tmp_path / "models" / "classifiers" / "with.ext")
    assert folders.list_files("configs") == ["v1.yaml"]
    assert folders.list_files("classifiers") == ["noext"]


def test_full_path_finds_the_first_dir_holding_the_file(folders: ModelFolders, tmp_path: Path):
    first = touch(tmp_path / "models" / "unet" / "m.safetensors")
    touch(tmp_path / "models" / "diffusion_models" / "m.safetensors")
    only_second = touch(tmp_path / "models" / "diffusion_models" / "sub" / "n.safetensors")
    assert folders.full_path("diffusion_models", "m.safetensors") == first.resolve()
    assert folders.full_path("unet", "sub/n.safetensors") == only_second.resolve()
    assert folders.full_path("diffusion_models", "missing.safetensors") is None


@pytest.mark.parametrize("name", ["../../etc/passwd", "/etc/passwd", "..\\x.pt", "%2e%2e/x.pt"])
def test_full_path_refuses_traversal(folders: ModelFolders, tmp_path: Path, name: str):
    touch(tmp_path / "x.pt")
    assert folders.full_path("checkpoints", name) is None


def test_add_path_appends_or_prepends_and_creates_keys(folders: ModelFolders, tmp_path: Path):
    extra = tmp_path / "extra"
    folders.add_path("checkpoints", extra)
    assert folders.paths("checkpoints")[-1] == extra
    folders.add_path("checkpoints", extra, first=True)
    assert folders.paths("checkpoints")[0] == extra
    assert folders.paths("checkpoints").count(extra) == 1
    folders.add_path("my_plugin_models", extra)
    touch(extra / "anything.bin")
    touch(extra / "readme.md")
    assert folders.list_files("my_plugin_models") == ["anything.bin", "readme.md"]


def test_add_path_invalidates_the_cached_listing(folders: ModelFolders, tmp_path: Path):
    assert folders.list_files("embeddings") == []
    other = tmp_path / "more_embeddings"
    touch(other / "e.pt")
    folders.add_path("embeddings", other)
    assert folders.list_files("embeddings") == ["e.pt"]


def test_io_dirs_exist_and_temp_is_wiped_at_start(tmp_path: Path):
    touch(tmp_path / "temp" / "stale.png")
    touch(tmp_path / "output" / "kept.png")
    folders = ModelFolders(tmp_path)
    assert folders.temp_dir.is_dir() and list(folders.temp_dir.iterdir()) == []
    assert (folders.output_dir / "kept.png").exists()
    assert folders.input_dir.is_dir() and folders.user_dir.is_dir()
    assert folders.directory_for_type("temp") == folders.temp_dir
    assert folders.directory_for_type("output") == folders.output_dir
    assert folders.directory_for_type("../etc") is None


def test_files_half_written_before_a_crash_are_swept_at_start(tmp_path: Path):
    partial = partial_write_path(tmp_path / "output" / "sub" / "Kiln_00001_.png")
    touch(partial)
    touch(tmp_path / "output" / ".hidden-but-mine.tmp")  # not the writer's shape: kept
    touch(tmp_path / "output" / "Kiln_00002_.png")
    ModelFolders(tmp_path)
    assert not partial.exists()
    assert (tmp_path / "output" / ".hidden-but-mine.tmp").exists()
    assert (tmp_path / "output" / "Kiln_00002_.png").exists()


def test_partial_write_names_are_hidden_siblings(tmp_path: Path):
    target = tmp_path / "out.png"
    partial = partial_write_path(target)
    assert partial.parent == tmp_path and partial.name.startswith(".out.png.") and partial.suffix == ".tmp"
    assert partial != partial_write_path(target)


def test_explicit_dirs_override_the_base(tmp_path: Path):
    folders = ModelFolders(tmp_path / "base", output_dir=tmp_path / "out", models_dir=tmp_path / "m")
    assert folders.output_dir == tmp_path / "out"
    assert folders.paths("vae")[0] == tmp_path / "m" / "vae"


def write_yaml(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_extra_paths_yaml_a1111_section(folders: ModelFolders, tmp_path: Path):
    a1111 = tmp_path / "webui"
    yaml_file = write_yaml(
        tmp_path / "conf" / "extra_model_paths.yaml",
        f"""\
        a111:
            base_path: {a1111}
            checkpoints: models/Stable-diffusion
            vae: models/VAE
            loras: |
                 models/Lora
                 models/LyCORIS
            upscale_models: |
                              models/ESRGAN
                              models/RealESRGAN
                              models/SwinIR
            embeddings: embeddings
            controlnet: models/ControlNet
        """,
    )
    folders.load_extra_paths_yaml(yaml_file)
    assert folders.paths("checkpoints")[-1] == a1111 / "models" / "Stable-diffusion"
    assert folders.paths("loras")[-2:] == [a1111 / "models" / "Lora", a1111 / "models" / "LyCORIS"]
    assert folders.paths("upscale_models")[-3:] == [
        a1111 / "models" / "ESRGAN", a1111 / "models" / "RealESRGAN", a1111 / "models" / "SwinIR",
    ]
    touch(a1111 / "models" / "Lora" / "style.safetensors")
    assert folders.list_files("loras") == ["style.safetensors"]


def test_extra_paths_yaml_relative_default_env_and_unknown_keys(
    folders: ModelFolders, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("KILN_TEST_MODELS", str(tmp_path / "from_env"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    yaml_file = write_yaml(
        tmp_path / "conf" / "extra.yaml",
        """\
        relative_base:
            base_path: shared
            is_default: true
            checkpoints: ckpt
            unet: unets
        env_base:
            base_path: $KILN_TEST_MODELS
            clip: encoders
        home_base:
            base_path: ~/models
            brand_new_kind: stuff
        no_base:
            vae: local_vae
        empty_section:
        """,
    )
    folders.load_extra_paths_yaml(yaml_file)
    conf = tmp_path / "conf"
    assert folders.paths("checkpoints")[0] == conf / "shared" / "ckpt"
    assert folders.paths("diffusion_models")[0] == conf / "shared" / "unets"
    assert folders.paths("text_encoders")[-1] == tmp_path / "from_env" / "encoders"
    assert folders.paths("brand_new_kind") == [tmp_path / "home" / "models" / "stuff"]
    assert folders.paths("vae")[-1] == conf / "local_vae"
