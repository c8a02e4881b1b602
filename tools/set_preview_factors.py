"""Fit a checkpoint's latent2rgb preview factors to its own VAE and write them into its metadata.

    python tools/set_preview_factors.py models/checkpoints/kiln-demo.safetensors
    python tools/set_preview_factors.py IN.safetensors --out OUT.safetensors

The factors are fitted by ``diffusion.demo.preview_factors`` on scenes of the demo data set and
stored under ``kiln.latent_rgb_factors`` (``diffusion.latent_formats.PREVIEW_FACTORS_KEY``), which
Kiln's loaders read. Every tensor and every other metadata entry is written back unchanged; the
file is replaced atomically (written beside it, then renamed), so a reader never sees half a file.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from diffusion.demo.preview_factors import FIT_SCENES, autoencoder_preview_factors, demo_scene_pixels  # noqa: E402
from diffusion.devices import DeviceManager  # noqa: E402
from diffusion.latent_formats import PREVIEW_FACTORS_KEY, preview_factors_json  # noqa: E402
from diffusion.loading.checkpoint import load_vae  # noqa: E402
from diffusion.loading.detect import detect_family, unet_prefix  # noqa: E402
from diffusion.loading.files import file_metadata, read_state_dict  # noqa: E402


def fitted_factors_json(checkpoint: Path, scenes: int = FIT_SCENES) -> str:
    """The metadata value for a checkpoint: factors fitted to its VAE on ``scenes`` demo scenes, in its
    family's model space."""
    state_dict = read_state_dict(checkpoint)
    latent_format = detect_family(state_dict, unet_prefix(state_dict), checkpoint).latent_format
    vae = load_vae(checkpoint, DeviceManager(cpu=True))
    factors, bias = autoencoder_preview_factors(vae.autoencoder.float(), latent_format, demo_scene_pixels(scenes))
    return preview_factors_json(factors, bias)


def write_metadata(checkpoint: Path, out: Path, entries: dict[str, str]) -> None:
    """Write ``checkpoint``'s tensors to ``out`` with ``entries`` added to its metadata, atomically."""
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(checkpoint))
    metadata = {**file_metadata(read_state_dict(checkpoint)), **entries}
    partial = out.with_name(out.name + ".partial")
    save_file(tensors, str(partial), metadata=metadata)
    partial.chmod(0o644)
    os.replace(partial, out)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoint", type=Path, help="an SD-layout .safetensors checkpoint with a VAE")
    parser.add_argument("--out", type=Path, default=None, help="write here instead of replacing the checkpoint")
    parser.add_argument("--scenes", type=int, default=FIT_SCENES, help="demo scenes to fit on")
    args = parser.parse_args(argv)
    value = fitted_factors_json(args.checkpoint, args.scenes)
    out = args.out or args.checkpoint
    write_metadata(args.checkpoint, out, {PREVIEW_FACTORS_KEY: value})
    print(f"{out}: {PREVIEW_FACTORS_KEY} = {value}", flush=True)
    return json.loads(value)


if __name__ == "__main__":
    main()
