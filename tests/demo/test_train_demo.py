"""tools/train_demo.py writes an ordinary SD1 single-file checkpoint that Kiln's loader reads."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from diffusion.demo.checkpoint import SD1_LATENT_SCALE, TEXT_PREFIX, UNET_PREFIX, VAE_PREFIX, fold_latent_normalisation
from diffusion.demo.dataset import scene_batch
from diffusion.models.vae import AutoencoderKL, VAEConfig
from tools.train_demo import parse_args

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(900)
POOL = 128
SEED = 3


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    work = tmp_path_factory.mktemp("train_demo")
    out = work / "kiln-demo.safetensors"
    command = [sys.executable, str(ROOT / "tools" / "train_demo.py"), "--steps", "5", "--vae-steps", "5",
               "--pool", str(POOL), "--seed", str(SEED), "--batch", "8", "--vae-batch", "4", "--vae-bf16", "true",
               "--out", str(out), "--save-every", "0"]
    completed = subprocess.run(command, cwd=work, capture_output=True, text=True, timeout=280)
    assert completed.returncode == 0, completed.stderr[-3000:]
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    return out, report, completed.stdout


def test_reports_wall_time_and_steps(trained):
    _, report, stdout = trained
    assert "wall time" in stdout
    assert report["wall_seconds"] > 0 and report["steps_done"] == 5


def test_checkpoint_has_the_sd1_prefixes_in_fp16(trained):
    out, _, _ = trained
    assert out.stat().st_size < 30_000_000
    with safe_open(str(out), "pt") as handle:
        keys = list(handle.keys())
        prefixes = {key for key in keys if not key.startswith((UNET_PREFIX, VAE_PREFIX, TEXT_PREFIX + "text_model."))}
        assert not prefixes
        assert UNET_PREFIX + "input_blocks.0.0.weight" in keys
        assert VAE_PREFIX + "encoder.conv_in.weight" in keys
        assert TEXT_PREFIX + "text_model.embeddings.token_embedding.weight" in keys
        assert handle.get_tensor(TEXT_PREFIX + "text_model.embeddings.token_embedding.weight").shape[0] == 49408
        assert {handle.get_tensor(key).dtype for key in keys} == {torch.float16}
        assert "kiln_demo" in handle.metadata()


def test_checkpoint_loads_like_any_sd1_file(trained):
    from diffusion.devices import DeviceManager
    from diffusion.loading import load_checkpoint

    out, _, _ = trained
    model, clip, vae = load_checkpoint(out, DeviceManager(cpu=True))
    assert model.latent_format.scale_factor == SD1_LATENT_SCALE
    unet = model.unet
    assert model.family == "SD15" and model.model_sampling.prediction_type == "eps"
    assert unet.config.num_heads == 8 and unet.config.context_dim == 128
    assert unet.config.in_channels == 4 and unet.config.out_channels == 4
    assert vae is not None and clip is not None


def test_latents_are_normalised_for_the_sd1_scale_factor(trained):
    """Scaled by 0.18215, the demo VAE's latents of training scenes have about unit variance."""
    from safetensors.torch import load_file

    out, _, _ = trained
    state = {key[len(VAE_PREFIX):]: value.float() for key, value in load_file(str(out)).items()
             if key.startswith(VAE_PREFIX)}
    from diffusion.demo.checkpoint import DEMO_VAE

    vae = AutoencoderKL(DEMO_VAE)
    vae.load_state_dict(state)
    images, _, _ = scene_batch(SEED, 0, POOL)
    pixels = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1
    with torch.no_grad():
        latents = vae.encode(pixels) * SD1_LATENT_SCALE
    assert latents.shape == (POOL, 4, 8, 8)
    per_channel_std = latents.std(dim=(0, 2, 3))
    assert torch.allclose(per_channel_std, torch.ones(4), atol=0.05), per_channel_std
    assert latents.mean(dim=(0, 2, 3)).abs().max() < 0.05


def test_folding_the_latent_normalisation_keeps_reconstructions():
    torch.manual_seed(0)
    vae = AutoencoderKL(VAEConfig(ch=32, ch_mult=(1, 2), num_res_blocks=1)).double()
    with torch.no_grad():
        for parameter in vae.parameters():
            if parameter.ndim == 1:
                parameter.normal_(0, 0.1)
    pixels = torch.rand(2, 3, 16, 16, dtype=torch.float64) * 2 - 1
    mean_before, logvar_before = vae.encode_moments(pixels)
    decoded_before = vae.decode(mean_before)
    shift, std = torch.tensor([0.1, -0.2, 0.3, 0.0]), torch.tensor([0.5, 2.0, 1.0, 0.3])
    fold_latent_normalisation(vae, shift, std, target_std=4.0)
    mean_after, logvar_after = vae.encode_moments(pixels)
    expected = (mean_before - shift.double().view(1, 4, 1, 1)) / std.double().view(1, 4, 1, 1) * 4.0
    torch.testing.assert_close(mean_after, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(logvar_after, logvar_before + 2 * torch.log(4.0 / std.double()).view(1, 4, 1, 1),
                               rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(vae.decode(mean_after), decoded_before, rtol=1e-9, atol=1e-9)


def test_continuing_with_a_frozen_text_encoder_trains_only_the_unet(trained, tmp_path):
    """``--init-from`` keeps the VAE; ``--freeze-text true`` also keeps the text encoder bit for bit."""
    from safetensors.torch import load_file

    start, _, _ = trained
    out = tmp_path / "continued.safetensors"
    command = [sys.executable, str(ROOT / "tools" / "train_demo.py"), "--init-from", str(start), "--freeze-text", "true",
               "--steps", "3", "--pool", str(POOL), "--seed", str(SEED), "--batch", "8", "--lr", "1e-2",
               "--warmup", "1", "--ema", "0", "--out", str(out), "--save-every", "0"]
    completed = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=280)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert json.loads(completed.stdout.strip().splitlines()[-1])["settings"]["freeze_text"] is True
    with safe_open(str(out), "pt") as handle:
        lineage = json.loads(handle.metadata()["kiln_demo"])["init_from"]
    assert lineage["file"] == start.name and lineage["steps_done"] == "5"
    assert lineage["kiln_demo"]["settings"]["seed"] == SEED
    before, after = load_file(str(start)), load_file(str(out))
    assert before.keys() == after.keys()
    changed = {key for key in before if not torch.equal(before[key], after[key])}
    assert changed and all(key.startswith(UNET_PREFIX) for key in changed)


def test_boolean_settings_read_true_and_false_and_refuse_anything_else():
    assert parse_args(["--freeze-text", "false"])[0].freeze_text is False
    assert parse_args(["--freeze-text", "True"])[0].freeze_text is True
    with pytest.raises(SystemExit):
        parse_args(["--freeze-text", "maybe"])


def test_text_encoder_trains_jointly_for_text_steps_then_freezes(trained, tmp_path):
    """``--text-steps N`` with ``--freeze-text true``: N joint steps, then the text encoder stops."""
    from safetensors.torch import load_file

    start, _, _ = trained
    out = tmp_path / "joint-then-frozen.safetensors"
    command = [sys.executable, str(ROOT / "tools" / "train_demo.py"), "--init-from", str(start), "--freeze-text", "true",
               "--text-steps", "2", "--steps", "4", "--pool", str(POOL), "--seed", str(SEED), "--batch", "8",
               "--lr", "1e-2", "--warmup", "1", "--ema", "0", "--out", str(out), "--save-every", "0"]
    completed = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=280)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "text encoder frozen at step 2" in completed.stdout
    before, after = load_file(str(start)), load_file(str(out))
    changed = {key for key in before if not torch.equal(before[key], after[key])}
    assert any(key.startswith(TEXT_PREFIX) for key in changed)
    assert any(key.startswith(UNET_PREFIX) for key in changed)
    assert not any(key.startswith(VAE_PREFIX) for key in changed)


def test_bfloat16_autoencoder_loss_matches_float32():
    """``--vae-bf16`` changes the arithmetic, not what is optimised: the two losses agree closely."""
    from diffusion.demo.checkpoint import DEMO_VAE
    from tools.train_demo import vae_loss

    torch.manual_seed(0)
    vae = AutoencoderKL(DEMO_VAE)
    images, _, _ = scene_batch(SEED, 0, 8)
    pixels = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1
    exact, _ = vae_loss(vae, pixels, 1e-5, torch.Generator().manual_seed(1))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        approximate, l1 = vae_loss(vae, pixels, 1e-5, torch.Generator().manual_seed(1))
    assert approximate.dtype == torch.float32 and l1.dtype == torch.float32
    assert abs(approximate.item() - exact.item()) < 0.02 * exact.item()


def test_two_processes_share_the_batches_and_write_one_checkpoint(tmp_path):
    """``--processes 2``: both phases data parallel; the weights stay equal in both processes (the run
    fails otherwise), and the leader alone writes the file and the report."""
    out = tmp_path / "parallel.safetensors"
    command = [sys.executable, str(ROOT / "tools" / "train_demo.py"), "--processes", "2", "--steps", "3",
               "--vae-steps", "2", "--pool", "64", "--seed", str(SEED), "--batch", "8", "--vae-batch", "4",
               "--freeze-text", "true", "--text-steps", "1", "--out", str(out), "--save-every", "0"]
    completed = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=280)
    assert completed.returncode == 0, completed.stderr[-3000:]
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    assert report["steps_done"] == 3
    assert completed.stdout.count("wall time") == 1 and completed.stdout.count("text encoder frozen") == 1
    with safe_open(str(out), "pt") as handle:
        assert json.loads(handle.metadata()["kiln_demo"])["processes"] == 2


def test_high_noise_share_moves_to_its_end_value_over_the_run():
    from tools.train_demo import timestep_weighting

    settings = parse_args(["--high-noise-share", "0.4", "--high-noise-share-end", "0.1"])[0]
    assert timestep_weighting(settings, 0.0).high_noise_share == pytest.approx(0.4)
    assert timestep_weighting(settings, 0.5).high_noise_share == pytest.approx(0.25)
    assert timestep_weighting(settings, 1.0).high_noise_share == pytest.approx(0.1)
    fixed = parse_args(["--high-noise-share", "0.4"])[0]
    assert timestep_weighting(fixed, 0.7).high_noise_share == 0.4


def test_batches_that_do_not_divide_between_the_processes_are_refused():
    from tools.train_demo import main

    with pytest.raises(SystemExit, match="divide evenly"):
        main(["--processes", "2", "--batch", "7", "--steps", "1"])
