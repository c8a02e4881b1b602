"""Train Kiln's demo text-to-image model and write it as an SD1 single-file checkpoint.

    python tools/train_demo.py --device cuda --workers 14      # the shipped recipe (one H200: ~6 min)
    python tools/train_demo.py --steps 5 --vae-steps 5 --pool 256 --out /tmp/k.safetensors

The defaults are the recipe of the shipped ``models/checkpoints/kiln-demo.safetensors`` (see
``models/README.md`` for the exact commands and measured results). On a CPU they take hours; pass
``--vae-minutes`` and ``--minutes`` to fit a time budget.

Three phases, all seeded from ``--seed``:

1. the autoencoder learns to reconstruct the procedurally drawn scenes (``diffusion.demo.dataset``);
   its latent space is then normalised so SD1's scale factor 0.18215 gives unit variance.
   ``--vae-bf16 true`` runs it under bfloat16 autocast, at the same loss per step: 1.5 to 1.9x faster on
   this project's CPU (which has AMX); ``tools/bench_training.py`` measures a machine;
2. the UNet and the text encoder learn jointly to predict the noise (eps) of SD's scaled-linear
   1000-step schedule, with 10 % empty captions for classifier-free guidance. Layout is decided at
   the noisiest steps, where SD's schedule still leaves about 7 % of the image in the latent, so the
   timesteps are drawn with extra weight on t >= 600 and the loss is weighted towards low SNR;
   ``--high-noise-share-end`` moves that extra share linearly over the run, so that a run can
   learn layout first and shape detail later.
   ``--freeze-text true`` stops the text encoder after ``--text-steps`` joint steps (0: from the
   start) and caches its output per caption, which halves the cost of a step on a CPU;
3. the EMA weights are written as fp16 safetensors under SD1's prefixes; this happens every
   ``--save-every`` steps too, so a usable file exists while training runs.

Every phase can stop early at a wall-clock budget (``--vae-minutes``, ``--minutes``); the learning
rate then follows whichever of step count and time runs out first. The wall time is printed.

On a CPU, ``--processes 2`` runs both phases data parallel in two one-thread processes, each
taking half of every batch (``tools/data_parallel.py``). A second thread does not make a step faster
on this project's two-core machine; a second process helps less than it promises: two independent
one-thread processes running UNet steps of 64 pictures side by side took 1.0 and 1.2 s a step where
one alone took 0.9 s, yet over whole runs an autoencoder step of 32 pictures took 0.72 s on two
processes against 0.88 s on one (1.2x), and a 76-minute UNet run was no faster per picture than one
process (``models/README.md``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from copy import deepcopy
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from pathlib import Path


os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch: no spinning threads on shared CPUs

import numpy as np
import torch
from torch import Tensor, nn

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from diffusion.demo.checkpoint import DEMO_VAE, SD1_LATENT_SCALE, fold_latent_normalisation, sd1_state_dict  # noqa: E402
from diffusion.demo.dataset import evaluation_scenes, render, scene_batch  # noqa: E402
from diffusion.demo.metrics import read_image, score_readings  # noqa: E402
from diffusion.demo.preview_factors import autoencoder_preview_factors  # noqa: E402
from diffusion.demo.text import encode_tokens, token_rows  # noqa: E402
from diffusion.latent_formats import PREVIEW_FACTORS_KEY, SD15, preview_factors_json  # noqa: E402
from diffusion.models.tokenizer import CLIPTokenizer  # noqa: E402
from diffusion.models.vae import AutoencoderKL  # noqa: E402
from diffusion.sampling.model_sampling import ModelSamplingDiscrete  # noqa: E402
from tools import data_parallel  # noqa: E402
from tools.demo_training import (  # noqa: E402
    Diffusion, add_settings_arguments, diffusion_loss, encode_pool, learning_rate, log, progress, read_checkpoint,
    settings_from, to_pixels, to_uint8, update_ema,
)

DEFAULT_OUT = ROOT / "models" / "checkpoints" / "kiln-demo.safetensors"


@dataclass
class Settings:
    """Everything that decides the result; written into the checkpoint's metadata."""

    seed: int = 7
    pool: int = 200000
    vae_steps: int = 3500
    vae_batch: int = 128
    vae_lr: float = 1e-3
    vae_kl: float = 1e-5
    vae_bf16: bool = False
    steps: int = 2000
    batch: int = 256
    lr: float = 6e-4
    warmup: int = 200
    ema: float = 0.998
    uncond_share: float = 0.1
    high_noise_share: float = 0.3
    high_noise_share_end: float = -1.0
    high_noise_from: int = 600
    snr_weight_cap: float = 5.0
    freeze_text: bool = False
    text_steps: int = 0
    vae_minutes: float = 0.0
    minutes: float = 0.0


# --- data ----------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _tokenizer() -> CLIPTokenizer:
    return CLIPTokenizer()


def _render_chunk(arguments: tuple[int, int, int]) -> tuple[np.ndarray, list[str], np.ndarray]:
    seed, start, count = arguments
    images, captions, _ = scene_batch(seed, start, count)
    return images, captions, token_rows(_tokenizer(), captions).numpy()


def render_pool(seed: int, count: int, workers: int) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Scenes ``0 .. count-1`` of data set ``seed``: uint8 images ``[N, H, W, 3]``, captions and
    their SD1 token rows ``[N, 77]``."""
    chunk = 2000
    jobs = [(seed, start, min(chunk, count - start)) for start in range(0, count, chunk)]
    if workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(workers) as pool:
            parts = list(pool.map(_render_chunk, jobs))
    else:
        parts = [_render_chunk(job) for job in jobs]
    images = np.concatenate([part[0] for part in parts])
    captions = [caption for part in parts for caption in part[1]]
    return images, captions, np.concatenate([part[2] for part in parts])


def load_or_render_pool(settings: Settings, workers: int, cache: Path | None) -> tuple[np.ndarray, list[str], np.ndarray]:
    """The scene pool, from ``cache`` when it holds the same seed and size, else drawn (and cached)."""
    if cache is not None and cache.exists():
        with np.load(cache) as stored:
            if int(stored["seed"]) == settings.seed and len(stored["tokens"]) == settings.pool:
                return stored["images"], [], stored["tokens"]
    images, captions, tokens = render_pool(settings.seed, settings.pool, workers)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        with open(cache, "wb") as handle:
            np.savez(handle, images=images, tokens=tokens, seed=np.array(settings.seed))
    return images, captions, tokens


# --- phase 1: autoencoder ------------------------------------------------------------------------


def vae_loss(vae: AutoencoderKL, pixels: Tensor, kl_weight: float, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Reconstruction (L1 + MSE + image-gradient L1) plus a small KL term; returns (loss, L1)."""
    mean, logvar = (moment.float() for moment in vae.encode_moments(pixels))
    noise = torch.randn(mean.shape, generator=generator, device=mean.device)
    reconstruction = vae.decode(mean + torch.exp(0.5 * logvar) * noise).float()
    l1 = (reconstruction - pixels).abs().mean()
    mse = (reconstruction - pixels).square().mean()

    def gradients(x: Tensor) -> tuple[Tensor, Tensor]:
        return x[..., 1:, :] - x[..., :-1, :], x[..., :, 1:] - x[..., :, :-1]

    (ry, rx), (py, px) = gradients(reconstruction), gradients(pixels)
    edges = (ry - py).abs().mean() + (rx - px).abs().mean()
    kl = 0.5 * (mean.square() + logvar.exp() - 1.0 - logvar).mean()
    return l1 + mse + 0.5 * edges + kl_weight * kl, l1


def train_vae(settings: Settings, images: Tensor, device: torch.device) -> AutoencoderKL:
    """Phase 1. ``images``: the pool, uint8 ``[N, H, W, 3]`` on ``device``."""
    vae = AutoencoderKL(DEMO_VAE).to(device)
    optimiser = torch.optim.AdamW(vae.parameters(), lr=settings.vae_lr, weight_decay=0.0)
    generator = torch.Generator(device).manual_seed(settings.seed + 1 + 1000 * data_parallel.rank())
    batch = data_parallel.share(settings.vae_batch)
    started = time.time()
    step = 0
    while step < settings.vae_steps:
        done = data_parallel.leader_value(progress(step, settings.vae_steps, started, settings.vae_minutes))
        if done >= 1.0:
            log(f"vae: time budget reached at step {step}")
            break
        for group in optimiser.param_groups:
            group["lr"] = learning_rate(settings.vae_lr, step, 100, done)
        index = torch.randint(0, images.shape[0], (batch,), generator=generator, device=device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=settings.vae_bf16):
            loss, l1 = vae_loss(vae, to_pixels(images[index]), settings.vae_kl, generator)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        data_parallel.average_gradients(vae.parameters())
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        optimiser.step()
        step += 1
        if step % 100 == 0 or step == settings.vae_steps:
            log(f"vae step {step}/{settings.vae_steps} loss {loss.item():.4f} l1 {l1.item():.4f}")
    return vae.eval()


@torch.no_grad()
def normalise_latents(vae: AutoencoderKL, images: Tensor) -> dict[str, list[float]]:
    """Fold per-channel centring and scaling into the VAE so ``0.18215 · z`` has unit variance."""
    mean = data_parallel.gather_rows(lambda start, end: encode_pool(vae, images[start:end])[0],
                                     min(4096, images.shape[0]))
    channel_mean = mean.mean(dim=(0, 2, 3)).cpu()
    channel_std = mean.std(dim=(0, 2, 3)).cpu()
    fold_latent_normalisation(vae, channel_mean, channel_std, 1.0 / SD1_LATENT_SCALE)
    return {"latent_mean_before": channel_mean.tolist(), "latent_std_before": channel_std.tolist()}


@torch.no_grad()
def vae_ceiling(vae: AutoencoderKL, device: torch.device, count: int = 216) -> dict[str, float]:
    """Pixel-metric accuracy of the VAE's reconstructions of the evaluation scenes: the best the
    diffusion model can reach."""
    scenes = evaluation_scenes(count)
    images = torch.from_numpy(np.stack([render(scene) for scene in scenes])).to(device)
    reconstructions = to_uint8(vae.decode(vae.encode(to_pixels(images))))
    readings = [read_image(image) for image in reconstructions]
    return score_readings(readings, [_expected(scene) for scene in scenes])


def _expected(scene) -> tuple[str, str, str, str]:
    label = scene.shapes[0]
    return label.shape, label.colour, label.size, label.position


# --- phase 2: UNet and text encoder --------------------------------------------------------------


@torch.no_grad()
def monitor(ema: Diffusion, vae: AutoencoderKL, tokenizer: CLIPTokenizer, device: torch.device, count: int = 54,
            steps: int = 20, cfg: float = 5.0) -> dict[str, float]:
    """Training monitor: Euler sampling with CFG on the EMA model and the pixel metrics.

    The evaluator (``tools/eval_demo.py``) measures through Kiln's nodes; this is a quick look.
    """
    scenes = evaluation_scenes(count)
    sampling = ModelSamplingDiscrete()
    tokens = token_rows(tokenizer, [scene.caption for scene in scenes] + [""]).to(device)
    context = encode_tokens(ema.text, tokens)
    cond, uncond = context[:-1], context[-1:].expand(count, -1, -1)
    generator = torch.Generator("cpu").manual_seed(0)
    x = torch.randn((count, 4, 8, 8), generator=generator).to(device)
    timesteps = torch.linspace(999, 0, steps)
    sigmas = torch.cat([sampling.sigma(timesteps), torch.zeros(1)]).to(device)
    x = x * (1 + sigmas[0] ** 2).sqrt()
    for index in range(steps):
        sigma = sigmas[index]
        scaled = x / (sigma**2 + 1).sqrt()
        t = sampling.timestep(sigma.cpu()).float().to(device).expand(2 * count)
        eps = ema.unet(torch.cat([scaled, scaled]), t, torch.cat([cond, uncond]))
        eps_cond, eps_uncond = eps.chunk(2)
        denoised = x - sigma * (eps_uncond + cfg * (eps_cond - eps_uncond))
        x = denoised + (x - denoised) / sigma * sigmas[index + 1]
    images = to_uint8(vae.decode(x / SD1_LATENT_SCALE))
    readings = [read_image(image) for image in images]
    return score_readings(readings, [_expected(scene) for scene in scenes])


def timestep_weighting(settings: Settings, done: float) -> Settings:
    """The settings with this point's share of high-noise timesteps: ``high_noise_share`` moving
    linearly to ``high_noise_share_end`` over the run (a negative end keeps it fixed).

    Layout is settled at the noisiest steps and learned first; shape detail lives at the middle
    ones, so a run can start noisy and move its weight down as it goes.
    """
    if settings.high_noise_share_end < 0:
        return settings
    share = settings.high_noise_share + (settings.high_noise_share_end - settings.high_noise_share) * done
    return replace(settings, high_noise_share=share)


@torch.no_grad()
def encode_all_tokens(text: nn.Module, tokens: Tensor, batch: int = 1024) -> Tensor:
    """The frozen text encoder's context for every token row, stored as fp16 ``[N, 77, width]``."""
    return torch.cat([encode_tokens(text, tokens[start : start + batch]).half()
                      for start in range(0, tokens.shape[0], batch)])


def freeze_text_encoder(model: Diffusion, ema: Diffusion, tokens: Tensor, empty: Tensor) -> tuple[Tensor, Tensor]:
    """Stop training the text encoder; return its context for every pool caption and for "".

    Its output is then fixed per caption, so computing it once for the pool halves the cost of a
    step on a CPU. The EMA's text encoder takes the frozen weights, the ones the UNet trains against
    from here on (AdamW skips parameters without gradients, so they stay put).
    """
    model.text.requires_grad_(False).eval()
    ema.text.load_state_dict(model.text.state_dict())
    contexts = data_parallel.gather_rows(lambda start, end: encode_all_tokens(model.text, tokens[start:end]),
                                         tokens.shape[0])
    return contexts, encode_tokens(model.text, empty)


def continued_from(path: Path) -> dict[str, object]:
    """What a continued run started from: the file's name, SHA-256 and its own ``kiln_demo`` record."""
    import hashlib

    from safetensors import safe_open

    with safe_open(str(path), "pt") as handle:
        metadata = handle.metadata() or {}
    return {"file": path.name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "steps_done": metadata.get("steps_done"), "kiln_demo": json.loads(metadata.get("kiln_demo", "{}"))}


def preview_factors_value(vae: AutoencoderKL) -> str:
    """The checkpoint metadata value of the VAE's preview factors (fitted on demo scenes)."""
    factors, bias = autoencoder_preview_factors(vae, SD15)
    return preview_factors_json(factors, bias)


def save_checkpoint(path: Path, ema: Diffusion, vae: AutoencoderKL, metadata: dict[str, str]) -> None:
    """Write the fp16 SD1 single file atomically (a reader never sees half a file).

    The metadata also carries the latent2rgb preview factors of this VAE (its latent space is not
    SD's, so SD1's factors would preview the wrong colours): fitted here unless ``metadata`` has them.
    """
    from safetensors.torch import save_file

    state = sd1_state_dict(ema.unet, vae, ema.text.state_dict())
    if PREVIEW_FACTORS_KEY not in metadata:
        metadata = {**metadata, PREVIEW_FACTORS_KEY: preview_factors_value(vae)}
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    save_file(state, str(partial), metadata=metadata)
    partial.chmod(0o644)
    os.replace(partial, path)


def train_diffusion(settings: Settings, vae: AutoencoderKL, images: Tensor, tokens: Tensor,
                    device: torch.device, out: Path, metadata: dict[str, str], save_every: int,
                    monitor_every: int, initial: dict[str, dict[str, Tensor]] | None = None) -> Diffusion:
    """Phase 2 (and periodic phase 3); ``initial`` holds UNet and text weights to start from."""
    tokenizer = CLIPTokenizer()
    empty = token_rows(tokenizer, [""]).to(device)
    moments = data_parallel.gather_rows(lambda start, end: torch.cat(encode_pool(vae, images[start:end]), dim=1),
                                        images.shape[0])
    latent_mean, latent_std = moments.chunk(2, dim=1)
    log(f"encoded {images.shape[0]} scenes; scaled latent std {(latent_mean * SD1_LATENT_SCALE).std().item():.3f}")
    alphas_cumprod = (1.0 / (1.0 + ModelSamplingDiscrete().sigmas ** 2)).to(device)

    torch.manual_seed(settings.seed + 2)
    model = Diffusion()
    if initial is not None:
        model.unet.load_state_dict(initial["unet"])
        model.text.load_state_dict(initial["text"])
    model = model.to(device)
    ema = deepcopy(model).eval().requires_grad_(False)
    optimiser = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=0.01)
    contexts: Tensor | None = None
    generator = torch.Generator(device).manual_seed(settings.seed + 3 + 1000 * data_parallel.rank())
    batch = data_parallel.share(settings.batch)
    leader = data_parallel.is_leader()
    started = time.time()
    step = 0
    while step < settings.steps:
        done = data_parallel.leader_value(progress(step, settings.steps, started, settings.minutes))
        if done >= 1.0:
            log(f"diffusion: time budget reached at step {step}")
            break
        if settings.freeze_text and contexts is None and step >= settings.text_steps:
            contexts, empty_context = freeze_text_encoder(model, ema, tokens, empty)
            log(f"text encoder frozen at step {step}; contexts of {contexts.shape[0]} captions cached")
        for group in optimiser.param_groups:
            group["lr"] = learning_rate(settings.lr, step, settings.warmup, done)
        index = torch.randint(0, images.shape[0], (batch,), generator=generator, device=device)
        x0 = (latent_mean[index] + latent_std[index] * torch.randn(
            latent_mean[index].shape, generator=generator, device=device)) * SD1_LATENT_SCALE
        drop = torch.rand(batch, generator=generator, device=device) < settings.uncond_share
        weighting = timestep_weighting(settings, done)
        if contexts is not None:
            context = torch.where(drop[:, None, None], empty_context, contexts[index].float())
            loss = diffusion_loss(lambda x, t: model.unet(x, t, context), x0, alphas_cumprod, weighting, generator)
        else:
            batch_tokens = torch.where(drop[:, None], empty, tokens[index])
            loss = diffusion_loss(lambda x, t: model(x, t, batch_tokens), x0, alphas_cumprod, weighting, generator)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        data_parallel.average_gradients(model.parameters())
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimiser.step()
        step += 1
        update_ema(ema, model, min(settings.ema, (1 + step) / (10 + step)))
        if step % 100 == 0 or step == settings.steps:
            log(f"step {step}/{settings.steps} loss {loss.item():.4f} lr {optimiser.param_groups[0]['lr']:.2e} "
                f"({time.time() - started:.0f} s)")
        if leader and monitor_every and step % monitor_every == 0:
            log(f"monitor at step {step}: {monitor(ema, vae, tokenizer, device)}")
        if leader and save_every and step % save_every == 0:
            save_checkpoint(out, ema, vae, {**metadata, "steps_done": str(step)})
            log(f"saved {out} at step {step}")
    if not data_parallel.in_step(ema):
        raise RuntimeError("the processes' weights drifted apart")
    metadata["steps_done"] = str(step)
    return ema


# --- command line --------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> tuple[Settings, argparse.Namespace]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_settings_arguments(parser, Settings())
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="checkpoint to write")
    parser.add_argument("--vae-in", type=Path, default=None, help="reuse a trained VAE (.pt from --vae-out)")
    parser.add_argument("--init-from", type=Path, default=None,
                        help="continue from a demo checkpoint (.safetensors): its VAE is kept, UNet and text encoder train on")
    parser.add_argument("--vae-out", type=Path, default=None, help="also save the normalised VAE here (.pt)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, or auto")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (per process)")
    parser.add_argument("--processes", type=int, default=1,
                        help="CPU processes sharing each batch (data parallel; tools/data_parallel.py)")
    parser.add_argument("--workers", type=int, default=1, help="processes drawing the scene pool")
    parser.add_argument("--save-every", type=int, default=500, help="write the checkpoint every N steps (0: end only)")
    parser.add_argument("--monitor-every", type=int, default=0, help="sample and score every N steps (0: never)")
    parser.add_argument("--monitor-count", type=int, default=54, help="prompts the final monitor scores")
    parser.add_argument("--pool-file", type=Path, default=None,
                        help="cache of the drawn pool (.npz): read when present, else written")
    args = parser.parse_args(argv)
    return settings_from(args, Settings), args


def main(argv: list[str] | None = None) -> dict:
    settings, args = parse_args(argv)
    if args.processes > 1 and args.device != "cpu":
        raise SystemExit("--processes shares a CPU between processes; use it with --device cpu")
    if settings.batch % args.processes or settings.vae_batch % args.processes:
        # Equal shares keep the averaged gradient exactly the whole batch's.
        raise SystemExit("--batch and --vae-batch must divide evenly between the --processes")
    return data_parallel.launch(args.processes, train, settings, args)


def train(settings: Settings, args: argparse.Namespace) -> dict:
    """The three phases; in every process of a data-parallel run, and the leader's report returned."""
    wall_start = time.time()
    torch.set_num_threads(args.threads)
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    torch.manual_seed(settings.seed)
    log(f"settings {asdict(settings)} on {device}")

    leader = data_parallel.is_leader()
    if not leader:
        data_parallel.barrier()  # the leader draws (and caches) the pool first
    pool_images, captions, pool_tokens = load_or_render_pool(settings, args.workers, args.pool_file)
    if leader:
        data_parallel.barrier()
    images = torch.from_numpy(pool_images).to(device)
    tokens = torch.from_numpy(pool_tokens).to(device)
    log(f"pool of {len(pool_tokens)} scenes ready ({time.time() - wall_start:.0f} s)")
    report: dict = {"settings": asdict(settings), "device": str(device)}

    initial = read_checkpoint(args.init_from) if args.init_from is not None else None
    if initial is not None:
        vae = AutoencoderKL(DEMO_VAE)
        vae.load_state_dict(initial["vae"])
        vae = vae.to(device).eval()
        log(f"continuing from {args.init_from}")
    elif args.vae_in is not None:
        vae = AutoencoderKL(DEMO_VAE)
        vae.load_state_dict(torch.load(args.vae_in, map_location="cpu", weights_only=True))
        vae = vae.to(device).eval()
        log(f"reusing VAE {args.vae_in}")
    else:
        phase = time.time()
        vae = train_vae(settings, images, device)
        report["latents"] = normalise_latents(vae, images)
        report["vae_seconds"] = round(time.time() - phase, 1)
        if args.vae_out is not None and leader:
            args.vae_out.parent.mkdir(parents=True, exist_ok=True)
            torch.save(vae.state_dict(), args.vae_out)
    vae.requires_grad_(False)
    metadata: dict[str, str] = {}
    if leader:
        report["vae_ceiling"] = vae_ceiling(vae, device)
        log(f"VAE reconstructions of the evaluation scenes score {report['vae_ceiling']}")
        lineage = {"settings": asdict(settings), "processes": args.processes}
        if args.init_from is not None:
            lineage["init_from"] = continued_from(args.init_from)
        metadata = {"kiln_demo": json.dumps(lineage), "format": "pt",
                    PREVIEW_FACTORS_KEY: preview_factors_value(vae)}  # the VAE is final: fit once for every save
    phase = time.time()
    ema = train_diffusion(settings, vae, images, tokens, device, args.out, metadata, args.save_every,
                          args.monitor_every, initial)
    if not leader:
        return {}
    report["diffusion_seconds"] = round(time.time() - phase, 1)
    report["steps_done"] = int(metadata["steps_done"])
    if args.monitor_every:
        report["monitor"] = monitor(ema, vae, CLIPTokenizer(), device, count=args.monitor_count)
        log(f"final monitor: {report['monitor']}")
    save_checkpoint(args.out, ema, vae, metadata)
    report["wall_seconds"] = round(time.time() - wall_start, 1)
    report["checkpoint_bytes"] = args.out.stat().st_size
    log(f"wrote {args.out} ({report['checkpoint_bytes'] / 1e6:.1f} MB); wall time {report['wall_seconds']} s")
    print(json.dumps(report), flush=True)
    return report


if __name__ == "__main__":
    main()
