"""Benchmark one training step of the demo model's parts on this machine, as ratios in one run.

    python tools/bench_training.py                    # VAE batch 32, UNet batch 64; 1 and 2 threads
    python tools/bench_training.py --threads 1 --repeats 5

For each thread count it times, with random inputs and the shipped layouts (``DEMO_VAE``,
``DEMO_UNET``):

* an autoencoder step of ``tools/train_demo.py`` (reconstruction + KL loss, backward, AdamW) in
  float32 and under bfloat16 autocast (``--vae-bf16 true``);
* a UNet step on cached text contexts (``--freeze-text true``), float32 and bfloat16 autocast;
* encoding pictures to latents (``encode_pool``) and captions to contexts (``encode_all_tokens``),
  the fixed cost before the UNet phase, per 1,000 items.

The variants alternate (A, B, A, B) so that a machine whose speed drifts does not favour one; the
median of each is printed, then each variant's time against the float32 one-thread figure. On a
machine shared with other work the absolute times move; the ratios within one run move less.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from diffusion.demo.checkpoint import DEMO_UNET, DEMO_VAE, TEXT_WIDTH  # noqa: E402
from diffusion.demo.text import build_text_encoder  # noqa: E402
from diffusion.models.unet import UNetModel  # noqa: E402
from diffusion.models.vae import AutoencoderKL  # noqa: E402
from tools.demo_training import encode_pool  # noqa: E402
from tools.train_demo import encode_all_tokens, vae_loss  # noqa: E402


def vae_step(batch: int, bf16: bool) -> Callable[[], None]:
    vae = AutoencoderKL(DEMO_VAE)
    optimiser = torch.optim.AdamW(vae.parameters(), lr=1e-4)
    generator = torch.Generator().manual_seed(0)
    pixels = torch.rand((batch, 3, 64, 64), generator=generator) * 2 - 1

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss, _ = vae_loss(vae, pixels, 1e-5, generator)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()

    return step


def unet_step(batch: int, bf16: bool) -> Callable[[], None]:
    unet = UNetModel(DEMO_UNET)
    optimiser = torch.optim.AdamW(unet.parameters(), lr=1e-4)
    generator = torch.Generator().manual_seed(0)
    latents = torch.randn((batch, 4, 8, 8), generator=generator)
    context = torch.randn((batch, 77, TEXT_WIDTH), generator=generator)
    timesteps = torch.randint(0, 1000, (batch,), generator=generator).float()

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = (unet(latents, timesteps, context).float() - latents).square().mean()
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()

    return step


def encode_latents(count: int) -> Callable[[], None]:
    vae = AutoencoderKL(DEMO_VAE).eval()
    images = torch.randint(0, 256, (count, 64, 64, 3), dtype=torch.uint8)
    return lambda: encode_pool(vae, images)


def encode_contexts(count: int) -> Callable[[], None]:
    text = build_text_encoder().eval()
    tokens = torch.randint(0, 49408, (count, 77))
    return lambda: encode_all_tokens(text, tokens)


def timed(cases: dict[str, Callable[[], None]], repeats: int) -> dict[str, float]:
    """Median seconds of each case, the cases interleaved round by round after one warm-up each."""
    for run in cases.values():
        run()
    seconds: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, run in cases.items():
            started = time.perf_counter()
            run()
            seconds[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in seconds.items()}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch thread counts to compare")
    parser.add_argument("--vae-batch", type=int, default=32)
    parser.add_argument("--batch", type=int, default=64, help="UNet batch")
    parser.add_argument("--encode-count", type=int, default=1000, help="items per encoding measurement")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    report: dict = {"torch": torch.__version__, "cpu": torch.backends.cpu.get_cpu_capability(),
                    "onednn_bf16": torch.ops.mkldnn._is_mkldnn_bf16_supported(), "seconds": {}}
    for threads in args.threads:
        torch.set_num_threads(threads)
        torch.manual_seed(0)
        cases = {
            "vae step fp32": vae_step(args.vae_batch, bf16=False),
            "vae step bf16": vae_step(args.vae_batch, bf16=True),
            "unet step fp32": unet_step(args.batch, bf16=False),
            "unet step bf16": unet_step(args.batch, bf16=True),
            "encode latents": encode_latents(args.encode_count),
            "encode contexts": encode_contexts(args.encode_count),
        }
        results = timed(cases, args.repeats)
        report["seconds"][str(threads)] = {name: round(value, 4) for name, value in results.items()}
        for name, value in results.items():
            print(f"threads {threads}  {name:16s} {value:7.3f} s", flush=True)

    baseline = report["seconds"][str(args.threads[0])]
    report["against_first"] = {
        threads: {name: round(value / baseline[name.replace("bf16", "fp32")], 2) for name, value in row.items()}
        for threads, row in report["seconds"].items()
    }
    print(json.dumps(report))
    return report


if __name__ == "__main__":
    main()
