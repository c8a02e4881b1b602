"""Train the demo model's ControlNets, ``kiln-demo-edges`` and ``kiln-demo-silhouette``, in SD's ControlNet layout.

    python tools/train_demo_controlnet.py                       # kiln-demo-edges (recipes: models/README.md)
    python tools/train_demo_controlnet.py --hint silhouette     # kiln-demo-silhouette
    python tools/train_demo_controlnet.py --steps 3 --pool 64 --batch 4 --out /tmp/edges.safetensors

The hint is what a user's workflow gives it, made from the procedurally drawn scenes of
``diffusion.demo.dataset``: with ``--hint edges`` the ``Canny`` node's edges of the picture (low 0.4,
high 0.8, the node's defaults); with ``--hint silhouette`` the shapes filled white on black, as a
user paints them and loads them with ``LoadImage``.
The ControlNet starts as ControlNet training always does: a copy of the UNet's encoder (input
blocks, middle block, time embedding) with zeroed output convolutions, so at step 0 it changes
nothing. The demo UNet and text encoder stay frozen; the ControlNet learns to predict the noise
together with them. Its prompts mix the scenes' full captions, layout-free ones ("a red star on a
blue background", the way a ControlNet is prompted: the hint says where) and empty ones.

The file holds ``control_model.*`` tensors in fp16, as the original ControlNet releases do, and
is read by ``ControlNetLoader`` like any SD1 ControlNet.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from copy import deepcopy
from dataclasses import asdict, dataclass
from pathlib import Path


os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch: no spinning threads on shared CPUs

import numpy as np
import torch
from torch import Tensor

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from diffusion.controlnet.model import ControlNetModel, zero_init  # noqa: E402
from diffusion.demo.captions import layout_free_caption  # noqa: E402
from diffusion.demo.checkpoint import DEMO_UNET, SD1_LATENT_SCALE  # noqa: E402
from diffusion.demo.dataset import (  # noqa: E402
    Scene, evaluation_scenes, render, render_mask, render_silhouette, scene_batch,
)
from diffusion.demo.metrics import foreground_mask  # noqa: E402
from diffusion.demo.text import encode_tokens, token_rows  # noqa: E402
from diffusion.models.tokenizer import CLIPTokenizer  # noqa: E402
from diffusion.models.unet import UNetModel  # noqa: E402
from diffusion.models.vae import AutoencoderKL  # noqa: E402
from diffusion.preprocess import canny  # noqa: E402
from diffusion.sampling.model_sampling import ModelSamplingDiscrete  # noqa: E402
from tools.demo_training import (  # noqa: E402
    add_settings_arguments, diffusion_loss, encode_pool, learning_rate, load_demo_parts, log, progress, settings_from, to_uint8,
    update_ema,
)

DEFAULT_CHECKPOINT = ROOT / "models" / "checkpoints" / "kiln-demo.safetensors"
CONTROLNET_DIR = ROOT / "models" / "controlnet"
CONTROL_PREFIX = "control_model."
# The Canny node's default thresholds: the hint a workflow builds with the node untouched.
CANNY_LOW, CANNY_HIGH = 0.4, 0.8
# What each kind of hint is, as written into the file's metadata.
HINTS = {"edges": f"Canny {CANNY_LOW}/{CANNY_HIGH}", "silhouette": "filled silhouette, white shapes on black"}


@dataclass
class Settings:
    """Everything that decides the result; written into the file's metadata."""

    seed: int = 11
    hint: str = "edges"
    pool: int = 12000
    steps: int = 3000
    batch: int = 64
    lr: float = 3e-4
    warmup: int = 100
    ema: float = 0.995
    uncond_share: float = 0.2
    layout_free_share: float = 0.4
    # Where the shape goes is decided at the noisiest steps: as for the base model (train_demo),
    # a share of timesteps is drawn from t >= high_noise_from and the loss is weighted to low SNR.
    # Zero and 1.0 give uniform timesteps and plain eps MSE.
    high_noise_share: float = 0.0
    high_noise_from: int = 600
    snr_weight_cap: float = 1.0
    minutes: float = 0.0


# --- data ----------------------------------------------------------------------------------------


def edge_hints(images: np.ndarray, batch: int = 1024) -> Tensor:
    """Canny edges of uint8 pictures ``[N, H, W, 3]`` as the ControlNet's hint ``[N, 3, H, W]`` in 0..1,
    exactly as the ``Canny`` node computes them (edges repeated over three channels)."""
    hints = []
    for start in range(0, len(images), batch):
        pixels = torch.from_numpy(images[start : start + batch]).permute(0, 3, 1, 2).float() / 255.0
        _, edges = canny(pixels, CANNY_LOW, CANNY_HIGH)
        hints.append(edges.to(torch.uint8))
    return torch.cat(hints)


def silhouette_hints(scenes: list[Scene]) -> Tensor:
    """The scenes' filled silhouettes (``render_silhouette``) as uint8 ``[N, 1, H, W]`` in 0/1, like ``edge_hints``."""
    return torch.from_numpy(np.stack([render_silhouette(scene)[..., 0] for scene in scenes]) // 255)[:, None]


def scene_hints(kind: str, images: np.ndarray, scenes: list[Scene]) -> Tensor:
    """The hints of kind ``kind`` (a key of ``HINTS``) for drawn scenes, uint8 ``[N, 1, H, W]`` in 0/1."""
    if kind == "edges":
        return edge_hints(images)
    if kind == "silhouette":
        return silhouette_hints(scenes)
    raise ValueError(f"unknown hint {kind!r}: one of {', '.join(HINTS)}")


def scene_prompt(scene: Scene) -> str:
    """The ControlNet's prompt for a scene: what is drawn, not where (the hint says where)."""
    return layout_free_caption([(label.shape, label.colour) for label in scene.shapes], scene.background)


def as_hint(hints: Tensor) -> Tensor:
    """uint8 0/1 hints ``[B, 1, H, W]`` -> float hint images ``[B, 3, H, W]``."""
    return hints.float().expand(-1, 3, -1, -1)


# --- model ---------------------------------------------------------------------------------------


def controlnet_from_unet(unet: UNetModel) -> ControlNetModel:
    """A new ControlNet: the UNet's encoder copied, the hint block fresh, every output zeroed."""
    control = ControlNetModel(DEMO_UNET)
    shared = {key: value for key, value in unet.state_dict().items()
              if key.startswith(("time_embed.", "input_blocks.", "middle_block."))}
    missing, unexpected = control.load_state_dict(shared, strict=False)
    assert not unexpected, unexpected
    assert all(key.startswith(("input_hint_block.", "zero_convs.", "middle_block_out.")) for key in missing), missing
    return zero_init(control)


def controlled_eps(unet: UNetModel, control: ControlNetModel, x: Tensor, timesteps: Tensor, context: Tensor,
                   hint: Tensor, strength: float = 1.0) -> Tensor:
    """The UNet's noise prediction with the ControlNet's residuals added, as the sampler applies them."""
    residuals = [residual * strength for residual in control(x, hint, timesteps, context)]
    return unet(x, timesteps, context, control={"input": [], "middle": residuals[-1:], "output": residuals[:-1]})


# --- monitor -------------------------------------------------------------------------------------


@torch.no_grad()
def hint_iou(unet: UNetModel, text: torch.nn.Module, control: ControlNetModel, vae: AutoencoderKL,
             count: int, strength: float = 1.0, steps: int = 20, cfg: float = 5.0,
             hint_kind: str = "edges") -> dict[str, float]:
    """Euler sampling with CFG of the evaluation scenes from their hints and layout-free prompts; IoU of
    the drawn shape with the scene's true shape (``tools/eval_demo_control.py`` measures through the nodes)."""
    scenes = evaluation_scenes(count)
    images = np.stack([render(scene) for scene in scenes])
    hint = as_hint(scene_hints(hint_kind, images, scenes))
    tokenizer = CLIPTokenizer()
    context = encode_tokens(text, token_rows(tokenizer, [scene_prompt(scene) for scene in scenes] + [""]))
    cond, uncond = context[:-1], context[-1:].expand(count, -1, -1)
    sampling = ModelSamplingDiscrete()
    x = torch.randn((count, 4, 8, 8), generator=torch.Generator("cpu").manual_seed(0))
    sigmas = torch.cat([sampling.sigma(torch.linspace(999, 0, steps)), torch.zeros(1)])
    x = x * (1 + sigmas[0] ** 2).sqrt()
    for index in range(steps):
        sigma = sigmas[index]
        scaled = x / (sigma**2 + 1).sqrt()
        t = sampling.timestep(sigma).float().expand(2 * count)
        eps = controlled_eps(unet, control, torch.cat([scaled, scaled]), t, torch.cat([cond, uncond]),
                             torch.cat([hint, hint]), strength)
        eps_cond, eps_uncond = eps.chunk(2)
        denoised = x - sigma * (eps_uncond + cfg * (eps_cond - eps_uncond))
        x = denoised + (x - denoised) / sigma * sigmas[index + 1]
    drawn = to_uint8(vae.decode(x / SD1_LATENT_SCALE))
    ious = []
    for picture, scene in zip(drawn, scenes):
        label = scene.shapes[0]
        truth = render_mask(label.shape, label.center, label.side, scene.image_size) >= 0.5
        found = foreground_mask(picture)
        union = (truth | found).sum()
        ious.append(float((truth & found).sum() / union) if union else 0.0)
    return {"iou": float(np.mean(ious)), "iou_at_least_0.5": float(np.mean(np.array(ious) >= 0.5))}


# --- training ------------------------------------------------------------------------------------


def save_controlnet(path: Path, control: ControlNetModel, metadata: dict[str, str]) -> None:
    """Write ``control_model.*`` in fp16, atomically."""
    from safetensors.torch import save_file

    state = {CONTROL_PREFIX + key: value.detach().to(torch.float16).contiguous()
             for key, value in control.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    save_file(state, str(partial), metadata=metadata)
    partial.chmod(0o644)
    os.replace(partial, path)


def prepared_pool(settings: Settings, vae: AutoencoderKL, cache: Path | None) -> tuple[Tensor, ...]:
    """The training pool: hints, caption and layout-free token rows, latent means and deviations;
    read from ``cache`` when it holds the same seed, size and kind of hint, else computed (and cached)."""
    names = ("hints", "tokens", "free_tokens", "latent_mean", "latent_std")
    if cache is not None and cache.exists():
        with np.load(cache) as stored:
            hint = str(stored["hint"]) if "hint" in stored.files else "edges"  # caches from before --hint
            if int(stored["seed"]) == settings.seed and len(stored["tokens"]) == settings.pool and hint == settings.hint:
                return tuple(torch.from_numpy(stored[name]) for name in names)
    images, captions, scenes = scene_batch(settings.seed, 0, settings.pool)
    tokenizer = CLIPTokenizer()
    latent_mean, latent_std = encode_pool(vae, torch.from_numpy(images))
    pool = (scene_hints(settings.hint, images, scenes), token_rows(tokenizer, captions),
            token_rows(tokenizer, [scene_prompt(scene) for scene in scenes]), latent_mean, latent_std)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        with open(cache, "wb") as handle:
            np.savez(handle, seed=np.array(settings.seed), hint=np.array(settings.hint),
                     **{name: part.numpy() for name, part in zip(names, pool)})
    return pool


def train(settings: Settings, unet: UNetModel, text: torch.nn.Module, vae: AutoencoderKL, out: Path,
          metadata: dict[str, str], save_every: int, monitor_every: int,
          initial: dict[str, Tensor] | None = None, pool_file: Path | None = None) -> tuple[ControlNetModel, int]:
    """Train a new ControlNet (or continue ``initial``, a ``control_model.*`` state dict)."""
    hints, tokens, free_tokens, latent_mean, latent_std = prepared_pool(settings, vae, pool_file)
    log(f"pool of {settings.pool} scenes with {settings.hint} hints; "
        f"{hints.float().mean().item():.3f} of hint pixels are set")
    empty = token_rows(CLIPTokenizer(), [""])
    alphas_cumprod = 1.0 / (1.0 + ModelSamplingDiscrete().sigmas ** 2)

    torch.manual_seed(settings.seed)
    control = controlnet_from_unet(unet).train()
    if initial is not None:
        control.load_state_dict({key[len(CONTROL_PREFIX):]: value.float() for key, value in initial.items()})
    ema = deepcopy(control).eval().requires_grad_(False)
    optimiser = torch.optim.AdamW(control.parameters(), lr=settings.lr, weight_decay=0.0)
    generator = torch.Generator().manual_seed(settings.seed + 1)
    started = time.time()
    step = 0
    while step < settings.steps:
        done = progress(step, settings.steps, started, settings.minutes)
        if done >= 1.0:
            log(f"time budget reached at step {step}")
            break
        for group in optimiser.param_groups:
            group["lr"] = learning_rate(settings.lr, step, settings.warmup, done)
        index = torch.randint(0, settings.pool, (settings.batch,), generator=generator)
        x0 = (latent_mean[index] + latent_std[index] * torch.randn(latent_mean[index].shape, generator=generator)) \
            * SD1_LATENT_SCALE
        kind = torch.rand(settings.batch, generator=generator)[:, None]
        batch_tokens = torch.where(kind < settings.layout_free_share, free_tokens[index], tokens[index])
        batch_tokens = torch.where(kind >= 1.0 - settings.uncond_share, empty, batch_tokens)
        with torch.no_grad():
            context = encode_tokens(text, batch_tokens)
        hint = as_hint(hints[index])
        loss = diffusion_loss(lambda x, t: controlled_eps(unet, control, x, t, context, hint), x0, alphas_cumprod,
                              settings, generator)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(control.parameters(), 1.0)
        optimiser.step()
        step += 1
        update_ema(ema, control, min(settings.ema, (1 + step) / (10 + step)))
        if step % 50 == 0 or step == settings.steps:
            log(f"step {step}/{settings.steps} loss {loss.item():.4f} ({time.time() - started:.0f} s)")
        if monitor_every and step % monitor_every == 0:
            log(f"monitor at step {step}: {hint_iou(unet, text, ema, vae, 54, hint_kind=settings.hint)}")
        if save_every and step % save_every == 0:
            save_controlnet(out, ema, {**metadata, "steps_done": str(step)})
            log(f"saved {out} at step {step}")
    return ema, step


def parse_args(argv: list[str] | None = None) -> tuple[Settings, argparse.Namespace]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_settings_arguments(parser, Settings())
    parser.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT, help="the demo checkpoint it controls")
    parser.add_argument("--out", type=Path, default=None,
                        help="ControlNet file to write (default: models/controlnet/kiln-demo-<hint>.safetensors)")
    parser.add_argument("--pool-file", type=Path, default=None,
                        help="cache of the prepared pool (.npz): read when present, else written")
    parser.add_argument("--init-from", type=Path, default=None, help="continue training this ControlNet file")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--save-every", type=int, default=250, help="write the file every N steps (0: end only)")
    parser.add_argument("--monitor-every", type=int, default=0, help="sample and score every N steps (0: never)")
    parser.add_argument("--monitor-count", type=int, default=0, help="scenes the final monitor scores (0: none)")
    args = parser.parse_args(argv)
    if args.hint not in HINTS:
        parser.error(f"--hint must be one of {', '.join(HINTS)}, not {args.hint!r}")
    if args.out is None:
        args.out = CONTROLNET_DIR / f"kiln-demo-{args.hint}.safetensors"
    return settings_from(args, Settings), args


def main(argv: list[str] | None = None) -> dict:
    settings, args = parse_args(argv)
    wall_start = time.time()
    torch.set_num_threads(args.threads)
    log(f"settings {asdict(settings)}")
    diffusion, vae = load_demo_parts(args.checkpoint)
    unet, text = diffusion.unet, diffusion.text

    metadata = {"kiln_demo_controlnet": json.dumps({"settings": asdict(settings), "hint": HINTS[settings.hint],
                                                    "checkpoint": args.checkpoint.name})}
    initial = None
    if args.init_from is not None:
        from safetensors.torch import load_file

        initial = load_file(str(args.init_from))
        log(f"continuing from {args.init_from}")
    control, steps_done = train(settings, unet, text, vae, args.out, metadata, args.save_every,
                                args.monitor_every, initial, args.pool_file)
    save_controlnet(args.out, control, {**metadata, "steps_done": str(steps_done)})
    report: dict = {"settings": asdict(settings), "steps_done": steps_done}
    if args.monitor_count:
        report["monitor"] = hint_iou(unet, text, control, vae, args.monitor_count, hint_kind=settings.hint)
        report["monitor_without_control"] = hint_iou(unet, text, control, vae, args.monitor_count, strength=0.0,
                                                     hint_kind=settings.hint)
        log(f"final monitor: {report['monitor']}; without the ControlNet: {report['monitor_without_control']}")
    report["wall_seconds"] = round(time.time() - wall_start, 1)
    report["file_bytes"] = args.out.stat().st_size
    log(f"wrote {args.out} ({report['file_bytes'] / 1e6:.1f} MB); wall time {report['wall_seconds']} s")
    print(json.dumps(report), flush=True)
    return report


if __name__ == "__main__":
    main()
