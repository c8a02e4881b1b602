"""Loading checkpoints: file formats, safety, detection from shapes, and splitting by prefix (comfy-compat §11.3–§11.4)."""

from __future__ import annotations

import pickle
import sys
import types
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from diffusion.devices import DeviceManager
from diffusion.loading import (
    CheckpointError, UnsafeCheckpoint, UnsupportedModel, load_checkpoint, load_unet, load_vae, read_state_dict,
)
from diffusion.loading.detect import detect_family, detect_unet_config, detect_vae_config, unet_prefix, vae_prefix
from diffusion.models.unet import UNetConfig, UNetModel
from diffusion.models.vae import AutoencoderKL, VAEConfig
from tests.helpers.tiny_checkpoint import SD1_UNET, SD2_UNET, TINY_VAE, tiny_state_dict, write_tiny_checkpoint

SD15_FULL = UNetConfig()  # the published SD 1.5 configuration
SD21_FULL = UNetConfig(context_dim=1024, num_heads=-1, num_head_channels=64, use_linear_in_transformer=True)


@pytest.fixture(scope="module")
def sd1(tmp_path_factory):
    return write_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny_sd1.safetensors", "sd1")


@pytest.fixture(scope="module")
def devices():
    return DeviceManager(cpu=True)


def meta_state_dict(config: UNetConfig, prefix: str = "model.diffusion_model.") -> dict[str, torch.Tensor]:
    """A full-size UNet's names and shapes without allocating its weights."""
    with torch.device("meta"):
        unet = UNetModel(config)
    return {prefix + name: tensor for name, tensor in unet.state_dict().items()}


# -- detection ------------------------------------------------------------------------------


@pytest.mark.parametrize("config", [SD15_FULL, SD21_FULL], ids=["sd15", "sd21"])
def test_full_size_unet_configs_are_read_back_from_shapes(config):
    state = meta_state_dict(config)
    assert unet_prefix(state) == "model.diffusion_model."
    assert detect_unet_config(state, "model.diffusion_model.", "x") == config


def test_tiny_models_follow_their_familys_head_rule(sd1):
    detected = detect_unet_config(sd1.state_dict, "model.diffusion_model.", sd1.path)
    assert detected == SD1_UNET and detected.num_heads == 8
    sd2 = tiny_state_dict("sd2")
    detected = detect_unet_config(sd2, "model.diffusion_model.", "tiny_sd2")
    assert detected == SD2_UNET and detected.num_head_channels == 64


def test_sd1_family_predicts_eps():
    family = detect_family(meta_state_dict(SD15_FULL), "model.diffusion_model.", "x")
    assert (family.name, family.prediction_type, family.latent_format.scale_factor) == ("SD15", "eps", 0.18215)


@pytest.mark.parametrize(("spread", "expected"), [(0.2, "v"), (0.05, "eps")])
def test_sd2_v_prediction_is_told_by_the_spread_of_one_norm_bias(spread, expected):
    state = meta_state_dict(SD21_FULL)
    key = "model.diffusion_model.output_blocks.11.1.transformer_blocks.0.norm1.bias"
    probe = torch.randn(state[key].shape, generator=torch.Generator().manual_seed(0))
    state[key] = probe / probe.std(unbiased=False) * spread
    family = detect_family(state, "model.diffusion_model.", "x")
    assert (family.name, family.prediction_type) == ("SD20", expected)


def test_vae_config_is_read_back_from_shapes(sd1):
    assert vae_prefix(sd1.state_dict) == "first_stage_model."
    assert detect_vae_config(sd1.state_dict, "first_stage_model.", sd1.path) == TINY_VAE
    with torch.device("meta"):
        full = {k: v for k, v in AutoencoderKL(VAEConfig()).state_dict().items()}
    assert vae_prefix(full) == ""
    assert detect_vae_config(full, "", "x") == VAEConfig()


@pytest.mark.parametrize(("marker", "family"), [
    ("double_blocks.0.img_attn.norm.key_norm.scale", "Flux"),
    ("joint_blocks.0.context_block.attn.qkv.weight", "SD3"),
])
def test_unsupported_families_are_named(tmp_path, devices, marker, family):
    path = tmp_path / "other.safetensors"
    save_file({f"model.diffusion_model.{marker}": torch.zeros(2)} | {f"model.diffusion_model.pad{i}": torch.zeros(1)
                                                                     for i in range(6)}, str(path))
    with pytest.raises(UnsupportedModel, match=family) as error:
        load_checkpoint(path, devices)
    assert str(path) in str(error.value)


def test_sdxl_layout_is_refused_as_unsupported():
    config = UNetConfig(model_channels=64, channel_mult=(1, 2), transformer_depth=(0, 1), context_dim=64,
                        num_heads=-1, num_head_channels=64, use_linear_in_transformer=True, adm_in_channels=32)
    with pytest.raises(UnsupportedModel, match="SDXL"):
        detect_family(meta_state_dict(config), "model.diffusion_model.", "xl.safetensors")


def test_a_file_without_a_diffusion_model_says_so(tmp_path, devices):
    path = tmp_path / "empty.safetensors"
    save_file({"something.else": torch.zeros(1)}, str(path))
    with pytest.raises(UnsupportedModel, match="no diffusion model") as error:
        load_checkpoint(path, devices)
    assert str(path) in str(error.value)


# -- splitting a checkpoint -------------------------------------------------------------------


def test_checkpoint_splits_into_unet_and_vae_by_prefix(sd1, devices):
    model, _, vae = load_checkpoint(sd1.path, devices, output_clip=False)
    assert model.family == "SD15" and model.model_sampling.prediction_type == "eps"
    for name, tensor in model.unet.state_dict().items():
        assert torch.equal(tensor, sd1.state_dict["model.diffusion_model." + name]), name
    for name, tensor in vae.autoencoder.state_dict().items():
        assert torch.equal(tensor, sd1.state_dict["first_stage_model." + name]), name
    assert vae.downscale_ratio == 8 and vae.latent_channels == 4


def test_text_encoder_gets_the_cond_stage_model_tensors(sd1, devices, monkeypatch):
    received = {}

    def fake_text_encoder_from_state_dict(state_dict, prefix, devices_arg, embedding_dirs=()):
        received.update(keys=set(state_dict), prefix=prefix, devices=devices_arg, dirs=list(embedding_dirs))
        return "text encoder"

    double = types.ModuleType("diffusion.text_encoder")
    double.text_encoder_from_state_dict = fake_text_encoder_from_state_dict
    monkeypatch.setitem(sys.modules, "diffusion.text_encoder", double)
    _, text_encoder, _ = load_checkpoint(sd1.path, devices, embeddings_dirs=[Path("emb")])
    assert text_encoder == "text encoder"
    assert received["dirs"] == [Path("emb")]
    assert received["prefix"] == "cond_stage_model." and received["devices"] is devices
    assert received["keys"] == {k for k in sd1.state_dict if k.startswith("cond_stage_model.")}
    assert "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight" in received["keys"]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_files_keep_one_copy_in_their_dtype(tmp_path, sd1, devices, dtype):
    path = tmp_path / f"tiny_{dtype}.safetensors"
    write_tiny_checkpoint(path, "sd1", dtype=dtype)
    half, _, half_vae = load_checkpoint(path, devices, output_clip=False)
    full, _, _ = load_checkpoint(sd1.path, devices, output_clip=False)
    assert {p.dtype for p in half.unet.parameters()} == {dtype}
    assert {p.dtype for p in half_vae.autoencoder.parameters()} == {dtype}
    x = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    context = torch.randn(1, 5, 64, generator=torch.Generator().manual_seed(1))
    sigma = torch.tensor([2.0])
    expected = full.apply_model(x, sigma, context)
    actual = half.apply_model(x, sigma, context)
    assert actual.dtype == torch.float32
    torch.testing.assert_close(actual, expected, rtol=0, atol=0.05)


def test_pickled_checkpoints_load_through_weights_only(tmp_path, sd1, devices):
    path = tmp_path / "tiny.ckpt"
    write_tiny_checkpoint(path, "sd1")
    state = read_state_dict(path)  # unwrapped from {"state_dict": ...}
    assert set(state) == set(sd1.state_dict)
    model, _, _ = load_checkpoint(path, devices, output_clip=False)
    assert torch.equal(model.unet.out[2].weight, sd1.state_dict["model.diffusion_model.out.2.weight"])


class _Exploit:
    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_a_pickle_that_runs_code_is_refused_naming_the_file(tmp_path, devices):
    marker = tmp_path / "pwned"
    exploit = _Exploit()
    exploit.marker = str(marker)
    path = tmp_path / "evil.ckpt"
    with open(path, "wb") as handle:
        pickle.dump({"state_dict": {"x": exploit}}, handle, protocol=2)
    with pytest.raises(UnsafeCheckpoint, match="refused") as error:
        load_checkpoint(path, devices)
    assert str(path) in str(error.value)
    assert not marker.exists()


@pytest.mark.parametrize("suffix", [".safetensors", ".ckpt"])
def test_a_truncated_file_is_an_error_naming_the_file(tmp_path, sd1, suffix):
    source = tmp_path / f"whole{suffix}"
    write_tiny_checkpoint(source, "sd1")
    data = source.read_bytes()
    path = tmp_path / f"cut{suffix}"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError) as error:
        state = read_state_dict(path)
        for key in state:  # safetensors reads lazily: touching every tensor must fail too
            state[key]
    assert str(path) in str(error.value)


def test_a_missing_file_is_an_error_naming_it(tmp_path):
    with pytest.raises(CheckpointError, match="nowhere.safetensors"):
        read_state_dict(tmp_path / "nowhere.safetensors")


def test_weights_of_the_wrong_shape_name_the_file_and_key(tmp_path, sd1, devices):
    state = dict(sd1.state_dict)
    state["first_stage_model.decoder.conv_out.weight"] = torch.zeros(3, 32, 1, 1)
    path = tmp_path / "bad.safetensors"
    save_file(state, str(path))
    with pytest.raises(CheckpointError, match="decoder.conv_out.weight") as error:
        load_checkpoint(path, devices, output_clip=False)
    assert str(path) in str(error.value)


# -- single-model files -------------------------------------------------------------------------


def test_a_vae_file_without_prefix_loads(tmp_path, sd1, devices):
    path = tmp_path / "vae.safetensors"
    prefix = "first_stage_model."
    save_file({k[len(prefix):]: v for k, v in sd1.state_dict.items() if k.startswith(prefix)}, str(path))
    vae = load_vae(path, devices)
    assert vae.autoencoder.config == TINY_VAE
    assert load_vae(sd1.path, devices).autoencoder.config == TINY_VAE


def test_a_diffusion_model_file_loads_and_can_store_fp8(tmp_path, sd1, devices):
    path = tmp_path / "unet.safetensors"
    prefix = "model.diffusion_model."
    save_file({k[len(prefix):]: v for k, v in sd1.state_dict.items() if k.startswith(prefix)}, str(path))
    model = load_unet(path, devices)
    assert model.unet.config == SD1_UNET
    fp8 = load_unet(path, devices, weight_dtype=torch.float8_e4m3fn)
    assert fp8.unet.input_blocks[0][0].weight.dtype == torch.float8_e4m3fn
    assert fp8.unet.out[0].weight.dtype == torch.float32  # norms keep their precision
    x = torch.randn(1, 4, 8, 8)
    torch.testing.assert_close(fp8.apply_model(x, torch.tensor([1.0]), torch.randn(1, 3, 64)).shape, x.shape)


@pytest.mark.parametrize(("layout", "family"), [("sd1", "SD15"), ("sd2", "SD20")])
def test_both_layouts_load_with_their_text_encoder(tmp_path, devices, layout, family):
    checkpoint = write_tiny_checkpoint(tmp_path / f"{layout}.safetensors", layout)
    model, text_encoder, vae = load_checkpoint(checkpoint.path, devices)
    assert model.family == family and model.unet.config == checkpoint.unet
    assert text_encoder.width == 64
    assert vae.autoencoder.config == TINY_VAE


def test_vae_attention_stored_as_linear_weights_loads_as_1x1_convolutions(tmp_path, sd1, devices):
    state = dict(sd1.state_dict)
    for name in ("q", "k", "v", "proj_out"):
        key = f"first_stage_model.decoder.mid.attn_1.{name}.weight"
        state[key] = state[key][:, :, 0, 0].contiguous()
    path = tmp_path / "linear_attn.safetensors"
    save_file(state, str(path))
    vae = load_vae(path, devices)
    torch.testing.assert_close(vae.autoencoder.decoder.mid.attn_1.q.weight,
                               sd1.state_dict["first_stage_model.decoder.mid.attn_1.q.weight"])


def test_original_sd_ckpt_files_with_a_lightning_callback_load(tmp_path, sd1, monkeypatch):
    """SD 1.x release .ckpt files pickle a pytorch_lightning ModelCheckpoint beside the weights."""
    lightning = types.ModuleType("pytorch_lightning.callbacks.model_checkpoint")

    class ModelCheckpoint:
        def __init__(self):
            self.monitor = "val/loss"

    ModelCheckpoint.__module__, ModelCheckpoint.__qualname__ = lightning.__name__, "ModelCheckpoint"
    lightning.ModelCheckpoint = ModelCheckpoint
    for name in ("pytorch_lightning", "pytorch_lightning.callbacks", lightning.__name__):
        monkeypatch.setitem(sys.modules, name, lightning if name == lightning.__name__ else types.ModuleType(name))
    path = tmp_path / "release.ckpt"
    unet_keys = {k: v for k, v in sd1.state_dict.items() if k.startswith("model.diffusion_model.")}
    torch.save({"epoch": 6, "global_step": 840000, "callbacks": {ModelCheckpoint: ModelCheckpoint()},
                "state_dict": unet_keys}, path)
    monkeypatch.delitem(sys.modules, lightning.__name__)  # loading must not need the real package
    assert set(read_state_dict(path)) == set(unet_keys)


def test_weights_converted_while_loading_are_read_without_the_memory_map(sd1, monkeypatch):
    """Converted tensors come from plain reads (so no mapped page stays resident) and equal the file's."""
    from diffusion.loading import checkpoint
    from diffusion.loading.files import LazySafetensors

    mapped = read_state_dict(sd1.path)
    assert isinstance(mapped, LazySafetensors)
    unmapped = checkpoint._for_conversion(mapped, torch.bfloat16)
    assert checkpoint._for_conversion(mapped, None) is mapped
    assert list(unmapped) == list(mapped) and len(unmapped) == len(mapped)
    for key in mapped:
        torch.testing.assert_close(unmapped[key], mapped[key], rtol=0, atol=0)
    bf16 = DeviceManager(cpu=True, cpu_dtype=torch.bfloat16)
    model, _, vae = load_checkpoint(sd1.path, bf16, output_clip=False)
    expected = sd1.state_dict["model.diffusion_model.out.2.weight"].bfloat16()
    # state_dict() gives the dense form of a weight packed for oneDNN
    torch.testing.assert_close(model.unet.state_dict()["out.2.weight"], expected, rtol=0, atol=0)
