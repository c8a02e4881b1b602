"""Train ``kiln-demo-pink``, a LoRA that teaches the demo model a colour it never saw, in kohya's format.

    python tools/train_demo_lora.py --threads 1                          # the shipped recipe (models/README.md)
    python tools/train_demo_lora.py --threads 1 --checkpoint other.safetensors --evaluate   # retrain for another
    python tools/train_demo_lora.py --steps 3 --pool 16 --colour-pool 8 --invert-steps 2 --out /tmp/pink.safetensors

LoRA (Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models"): the demo checkpoint's
UNet and text encoder stay frozen; every attention and projection layer of the UNet's transformer
blocks (``proj_in``, ``to_q``/``to_k``/``to_v``/``to_out.0`` of self- and cross-attention, the
feed-forward ``ff.net.0.proj``/``ff.net.2``, ``proj_out``) and every linear layer of the text
encoder's transformer (``q_proj``/``k_proj``/``v_proj``/``out_proj``, ``mlp.fc1``/``fc2``) gains a
trainable ``up @ down`` of rank ``--rank`` beside it, ``up`` starting at zero so step 0 is the base
model. The loss is ``train_demo``'s eps loss, on a pool that mixes scenes with a shape in the new
colour (``diffusion.demo.lora_data``) with the base data set's ordinary scenes, so the other colours
stay as they were; a share of captions is left empty, as in the base training, for guidance.

The VAE is not adapted (a LoRA reaches MODEL and CLIP only), and the demo VAE never saw pink: its
encoder maps a pink shape to a latent that decodes nearly white. So the latents of the pink scenes
are first fitted through the frozen decoder (``invert_latents``), and the LoRA learns to make those.

The file holds, per layer, ``lora_unet_<ldm path>`` / ``lora_te_text_model_encoder_layers_…``
with ``.lora_down.weight``, ``.lora_up.weight`` and ``.alpha`` (kohya's names; ``ΔW = alpha/rank ·
up @ down``) in fp16, and metadata saying what it teaches and how it was trained. Everything is
seeded from ``--seed``; ``--minutes`` stops by the clock (the learning rate then decays by time).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import re
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from diffusion.demo.checkpoint import SD1_LATENT_SCALE  # noqa: E402
from diffusion.demo.lora_data import EXTRA_COLOURS, colour_scene_batch, read_colour  # noqa: E402
from diffusion.demo.text import token_rows  # noqa: E402
from diffusion.models.tokenizer import CLIPTokenizer  # noqa: E402
from diffusion.models.vae import AutoencoderKL  # noqa: E402
from diffusion.sampling.model_sampling import ModelSamplingDiscrete  # noqa: E402
from tools.demo_training import (  # noqa: E402
    add_settings_arguments, diffusion_loss, encode_pool, learning_rate, load_demo_parts, log, progress, settings_from,
    to_pixels, to_uint8,
)
from tools.train_demo import render_pool  # noqa: E402

DEFAULT_CHECKPOINT = ROOT / "models" / "checkpoints" / "kiln-demo.safetensors"
DEFAULT_OUT = ROOT / "models" / "loras" / "kiln-demo-pink.safetensors"
UNET_LORA_PREFIX = "lora_unet_"
TEXT_LORA_PREFIX = "lora_te_"
# The layers that get an adapter: attention and projections of the UNet's transformer blocks ...
UNET_TARGETS = re.compile(
    r".*\.(proj_in|proj_out"
    r"|transformer_blocks\.\d+\.(attn[12]\.(to_q|to_k|to_v|to_out\.0)|ff\.net\.0\.proj|ff\.net\.2))"
)
# ... and the linear layers of the text encoder's transformer layers.
TEXT_TARGETS = re.compile(r"text_model\.encoder\.layers\.\d+\.(self_attn\.(q_proj|k_proj|v_proj|out_proj)|mlp\.fc[12])")


@dataclass
class Settings:
    """Everything that decides the result; written into the file's metadata.

    ``pool`` ordinary scenes and ``colour_pool`` scenes in the new colour; ``invert_steps`` and
    ``invert_lr`` fit the latents of the latter through the frozen decoder (``invert_latents``).
    ``uncond_share``, ``high_noise_share``, ``high_noise_from`` and ``snr_weight_cap`` mean what they
    mean in ``train_demo.Settings`` (its ``diffusion_loss`` reads them from here).
    """

    seed: int = 5
    colour: str = "pink"
    rank: int = 8
    alpha: float = 8.0
    pool: int = 1500
    colour_pool: int = 256
    invert_steps: int = 12
    invert_lr: float = 0.2
    colour_share: float = 0.65
    steps: int = 700
    batch: int = 32
    lr: float = 4e-3
    warmup: int = 30
    uncond_share: float = 0.1
    high_noise_share: float = 0.3
    high_noise_from: int = 600
    snr_weight_cap: float = 5.0
    minutes: float = 0.0


class LoraLayer(nn.Module):
    """A frozen ``Linear`` or 1x1 ``Conv2d`` plus ``alpha / rank · up(down(x))`` (kohya's ``LoRAModule``)."""

    def __init__(self, base: nn.Module, rank: int, alpha: float) -> None:
        super().__init__()
        self.base = base
        self.scale = alpha / rank
        if isinstance(base, nn.Conv2d):
            if base.kernel_size != (1, 1):
                raise ValueError(f"only 1x1 convolutions get an adapter, not {base}")
            self.lora_down = nn.Conv2d(base.in_channels, rank, 1, bias=False)
            self.lora_up = nn.Conv2d(rank, base.out_channels, 1, bias=False)
        else:
            self.lora_down = nn.Linear(base.in_features, rank, bias=False)
            self.lora_up = nn.Linear(rank, base.out_features, bias=False)
        nn.init.kaiming_uniform_(self.lora_down.weight, a=math.sqrt(5))
        nn.init.zeros_(self.lora_up.weight)

    def forward(self, x: Tensor) -> Tensor:
        return self.base(x) + self.lora_up(self.lora_down(x)) * self.scale


def attach_lora(network: nn.Module, pattern: re.Pattern, rank: int, alpha: float) -> dict[str, LoraLayer]:
    """Wrap every module of ``network`` whose path matches ``pattern`` in a ``LoraLayer``, in place.

    Returns the layers by module path (``input_blocks.1.1.proj_in``, ``text_model.encoder.…``).
    """
    paths = [name for name, module in network.named_modules()
             if pattern.fullmatch(name) and isinstance(module, (nn.Linear, nn.Conv2d))]
    layers = {}
    for path in paths:
        parent_path, _, child = path.rpartition(".")
        parent = network.get_submodule(parent_path) if parent_path else network
        layers[path] = LoraLayer(getattr(parent, child), rank, alpha)
        setattr(parent, child, layers[path])
    return layers


def kohya_state_dict(unet_layers: dict[str, LoraLayer], text_layers: dict[str, LoraLayer],
                     alpha: float) -> dict[str, Tensor]:
    """The adapters under kohya's names (``lora_unet_input_blocks_1_1_proj_in.lora_down.weight``, ...), fp16."""
    state = {}
    for prefix, layers in ((UNET_LORA_PREFIX, unet_layers), (TEXT_LORA_PREFIX, text_layers)):
        for path, layer in layers.items():
            base = prefix + path.replace(".", "_")
            state[base + ".lora_down.weight"] = layer.lora_down.weight.detach().to("cpu", torch.float16).contiguous()
            state[base + ".lora_up.weight"] = layer.lora_up.weight.detach().to("cpu", torch.float16).contiguous()
            state[base + ".alpha"] = torch.tensor(alpha, dtype=torch.float16)
    return state


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_lora(path: Path, state: dict[str, Tensor], metadata: dict[str, str]) -> None:
    """Write the safetensors file atomically."""
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    save_file(state, str(partial), metadata=metadata)
    partial.chmod(0o644)
    os.replace(partial, path)


# --- data ----------------------------------------------------------------------------------------


def colour_pool(seed: int, count: int, colour: str,
                tokenizer: CLIPTokenizer) -> tuple[np.ndarray, list[str], np.ndarray]:
    """``count`` scenes with a shape in the extra ``colour``: images, captions, token rows ``[N, 77]``."""
    images, captions, _ = colour_scene_batch(seed, 0, count, colour)
    return images, captions, token_rows(tokenizer, captions).numpy()


def latent_pool(vae: AutoencoderKL, images: np.ndarray) -> tuple[Tensor, Tensor]:
    """The VAE posterior (mean, std) of uint8 pictures ``[N, H, W, 3]``."""
    return encode_pool(vae, torch.from_numpy(images))


def invert_latents(vae: AutoencoderKL, images: np.ndarray, start: Tensor, steps: int, lr: float,
                   batch: int = 64) -> tuple[Tensor, np.ndarray]:
    """Latents that the frozen decoder turns into ``images``: Adam on ``z`` from ``start`` (the
    encoder's means), minimising the decoder's L1 + MSE error in pixels.

    The demo VAE never saw the new colour: its encoder maps pink to a latent that decodes nearly
    white, so training towards the encoder's latents would teach white. The decoder can draw pink
    from other latents; these are they. Returns the latents and their decoded pictures (uint8).
    """
    latents, decoded = [], []
    for first in range(0, len(images), batch):
        pixels = to_pixels(torch.from_numpy(images[first : first + batch]))
        z = start[first : first + batch].clone().requires_grad_(True)
        optimiser = torch.optim.Adam([z], lr=lr)
        for _ in range(steps):
            error = vae.decode(z) - pixels
            loss = error.abs().mean() + error.square().mean()
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
        with torch.no_grad():
            decoded.append(to_uint8(vae.decode(z)))
        latents.append(z.detach())
    return torch.cat(latents), np.concatenate(decoded)


def _share_read_as(pictures: np.ndarray, colour: str) -> float:
    return float(np.mean([read_colour(picture) == colour for picture in pictures])) if len(pictures) else 0.0


# --- training ------------------------------------------------------------------------------------


def train(settings: Settings, checkpoint: Path) -> tuple[dict[str, Tensor], dict]:
    """Train the adapters; returns the kohya state dict and a report (steps, seconds, losses)."""
    torch.manual_seed(settings.seed)
    tokenizer = CLIPTokenizer()
    model, vae = load_demo_parts(checkpoint)
    started = time.time()
    colour_images, _, colour_tokens = colour_pool(settings.seed, settings.colour_pool, settings.colour, tokenizer)
    base_images, _, base_tokens = render_pool(settings.seed, settings.pool, 1)
    colour_mean, colour_std = latent_pool(vae, colour_images)
    base_mean, base_std = latent_pool(vae, base_images)
    log(f"pool: {settings.colour_pool} {settings.colour} + {settings.pool} ordinary scenes drawn and encoded "
        f"({time.time() - started:.0f} s)")
    with torch.no_grad():
        encoded = np.concatenate([to_uint8(vae.decode(colour_mean[first : first + 64]))
                                  for first in range(0, len(colour_mean), 64)])
    encoded_share = _share_read_as(encoded, settings.colour)
    colour_mean, decoded = invert_latents(vae, colour_images, colour_mean, settings.invert_steps, settings.invert_lr)
    inverted_share = _share_read_as(decoded, settings.colour)
    log(f"{settings.colour} latents fitted through the decoder: decoded pictures read as {settings.colour} "
        f"{encoded_share:.0%} before, {inverted_share:.0%} after ({time.time() - started:.0f} s)")
    colour_tokens, base_tokens = torch.from_numpy(colour_tokens), torch.from_numpy(base_tokens)
    empty = token_rows(tokenizer, [""])

    torch.manual_seed(settings.seed + 1)
    unet_layers = attach_lora(model.unet, UNET_TARGETS, settings.rank, settings.alpha)
    text_layers = attach_lora(model.text, TEXT_TARGETS, settings.rank, settings.alpha)
    parameters = [p for layer in [*unet_layers.values(), *text_layers.values()]
                  for p in (layer.lora_down.weight, layer.lora_up.weight)]
    for parameter in parameters:
        parameter.requires_grad_(True)
    log(f"{len(unet_layers)} UNet + {len(text_layers)} text-encoder layers, rank {settings.rank}: "
        f"{sum(p.numel() for p in parameters)} trainable parameters")
    optimiser = torch.optim.AdamW(parameters, lr=settings.lr, weight_decay=0.0)
    alphas_cumprod = 1.0 / (1.0 + ModelSamplingDiscrete().sigmas ** 2)
    generator = torch.Generator("cpu").manual_seed(settings.seed + 2)
    colour_count = round(settings.batch * settings.colour_share)
    losses: list[float] = []
    started = time.time()
    step = 0
    while step < settings.steps:
        done = progress(step, settings.steps, started, settings.minutes)
        if done >= 1.0:
            log(f"time budget reached at step {step}")
            break
        for group in optimiser.param_groups:
            group["lr"] = learning_rate(settings.lr, step, settings.warmup, done)
        pick_colour = torch.randint(0, len(colour_tokens), (colour_count,), generator=generator)
        pick_base = torch.randint(0, len(base_tokens), (settings.batch - colour_count,), generator=generator)
        mean = torch.cat([colour_mean[pick_colour], base_mean[pick_base]])
        std = torch.cat([colour_std[pick_colour], base_std[pick_base]])
        x0 = (mean + std * torch.randn(mean.shape, generator=generator)) * SD1_LATENT_SCALE
        tokens = torch.cat([colour_tokens[pick_colour], base_tokens[pick_base]])
        drop = torch.rand(settings.batch, generator=generator) < settings.uncond_share
        tokens = torch.where(drop[:, None], empty, tokens)
        loss = diffusion_loss(lambda x, t: model(x, t, tokens), x0, alphas_cumprod, settings, generator)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, 1.0)
        optimiser.step()
        step += 1
        losses.append(loss.item())
        if step % 50 == 0 or step == settings.steps:
            log(f"step {step}/{settings.steps} loss {np.mean(losses[-50:]):.4f} "
                f"lr {optimiser.param_groups[0]['lr']:.2e} ({time.time() - started:.0f} s)")
    report = {"steps_done": step, "train_seconds": round(time.time() - started, 1),
              "decoded_as_colour": {"encoded": encoded_share, "inverted": inverted_share},
              "final_loss": float(np.mean(losses[-100:])) if losses else None,
              "unet_layers": len(unet_layers), "text_layers": len(text_layers)}
    return kohya_state_dict(unet_layers, text_layers, settings.alpha), report


# --- command line --------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> tuple[Settings, argparse.Namespace]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_settings_arguments(parser, Settings())
    parser.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT, help="the demo checkpoint to adapt")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="LoRA file to write")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--evaluate", action="store_true",
                        help="then measure it through the nodes (tools/eval_demo_lora.py, default settings)")
    args = parser.parse_args(argv)
    settings = settings_from(args, Settings)
    if settings.colour not in EXTRA_COLOURS:
        parser.error(f"--colour must be one of {sorted(EXTRA_COLOURS)}")
    return settings, args


def main(argv: list[str] | None = None) -> dict:
    settings, args = parse_args(argv)
    wall_start = time.time()
    torch.set_num_threads(args.threads)
    log(f"settings {asdict(settings)}; base {args.checkpoint}")
    state, report = train(settings, args.checkpoint)
    rgb = EXTRA_COLOURS[settings.colour]
    metadata = {
        "kiln_demo_lora": json.dumps({
            "teaches": f"the colour '{settings.colour}' (RGB {rgb}) for shapes: prompts such as "
                       f"'a large {settings.colour} circle in the center on a blue background'",
            "base_checkpoint": args.checkpoint.name, "base_sha256": file_sha256(args.checkpoint),
            "settings": asdict(settings), "steps_done": report["steps_done"],
            "train_seconds": report["train_seconds"], "tool": "tools/train_demo_lora.py",
        }),
        "ss_network_module": "networks.lora", "ss_network_dim": str(settings.rank),
        "ss_network_alpha": str(settings.alpha), "ss_base_model_version": "sd_v1",
        "ss_steps": str(report["steps_done"]), "ss_seed": str(settings.seed),
    }
    save_lora(args.out, state, metadata)
    report["wall_seconds"] = round(time.time() - wall_start, 1)
    report["file_bytes"] = args.out.stat().st_size
    log(f"wrote {args.out} ({len(state)} tensors, {report['file_bytes'] / 1e6:.2f} MB); "
        f"wall time {report['wall_seconds']} s")
    if args.evaluate:
        from tools.eval_demo_lora import main as evaluate

        report["evaluation"] = evaluate(["--lora", str(args.out), "--checkpoint", str(args.checkpoint),
                                         "--threads", str(args.threads)])
    print(json.dumps(report), flush=True)
    return report


if __name__ == "__main__":
    main()
