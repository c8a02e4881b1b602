"""Draw the README's demo picture: a few prompts through the default workflow, side by side.

    python tools/demo_samples.py                      # writes docs/demo-samples.png
    python tools/demo_samples.py --out /tmp/s.png --checkpoint other.safetensors

Each picture is one run of the default workflow (``tools/eval_demo.py``'s ``DemoWorkflow``:
CheckpointLoaderSimple, CLIPTextEncode, EmptyLatentImage 64 x 64, KSampler at the default
settings, VAEDecode) with the seed printed beside its prompt, so the picture can be made again.
Pictures are enlarged 3x for the page and framed on a dark strip.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tools.eval_demo import (  # noqa: E402
    CHECKPOINT_NAME, DEFAULT_SETTINGS, DemoWorkflow, add_run_arguments, node_context, start_torch,
)

PROMPTS = (
    "a large red square in the center on a blue background",
    "small yellow star in the top left, green background",
    "a large white triangle on the right on a purple background",
    "a large blue ring in the bottom right corner on an orange background",
)
SCALE = 3
GAP = 8
FRAME = (32, 32, 32)


def strip(pictures: list[np.ndarray], scale: int = SCALE, gap: int = GAP) -> np.ndarray:
    """The pictures enlarged ``scale`` times, in one row with ``gap`` pixels of frame around each."""
    from PIL import Image

    size = pictures[0].shape[0] * scale
    canvas = np.empty((size + 2 * gap, len(pictures) * (size + gap) + gap, 3), dtype=np.uint8)
    canvas[:] = FRAME
    for index, picture in enumerate(pictures):
        enlarged = np.asarray(Image.fromarray(picture).resize((size, size), Image.Resampling.LANCZOS))
        left = gap + index * (size + gap)
        canvas[gap : gap + size, left : left + size] = enlarged
    return canvas


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", default=CHECKPOINT_NAME, help="name inside models/checkpoints")
    parser.add_argument("--models-dir", type=Path, default=ROOT / "models")
    parser.add_argument("--prompt", action="append", default=None, help="a prompt (repeat; default: four examples)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the first picture; the next ones count up")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "demo-samples.png")
    add_run_arguments(parser)
    args = parser.parse_args(argv)
    start_torch(args)
    from PIL import Image

    prompts = args.prompt or list(PROMPTS)
    with node_context(args.models_dir, args.cpu, args.cpu_precision):
        workflow = DemoWorkflow(args.checkpoint)
        pictures = []
        for index, prompt in enumerate(prompts):
            pictures.append(workflow.generate(prompt, args.seed + index, DEFAULT_SETTINGS))
            print(f"seed {args.seed + index}: {prompt}", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(strip(pictures)).save(args.out, optimize=True)
    print(f"wrote {args.out}", flush=True)
    return args.out


if __name__ == "__main__":
    main()
