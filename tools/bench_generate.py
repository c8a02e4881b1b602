"""Benchmark text-to-image generation through the real server with a full-size SD1.5 model.

    python tools/bench_generate.py                      # 256x256, 4 euler steps, cfg 7, two runs
    python tools/bench_generate.py --size 512 --steps 20 --server-arg=--cpu

The checkpoint has the layout and tensor sizes of the public SD1.5 single file (860M UNet:
model_channels 320, mult 1,2,4,4, two res blocks, transformer depth 1, context 768, 8 heads;
84M KL-f8 VAE; 123M CLIP-L text encoder under ``cond_stage_model.transformer.text_model``)
with random fp16 weights, scaled by 1/sqrt(fan-in) so activations stay finite. It is written
once to ``--cache`` (default ``/tmp/kiln-bench``) and reused.

The tool starts ``server.py`` on a free loopback port with that folder as its models folder,
runs ComfyUI's default graph twice over HTTP + WebSocket (the second run with a new seed, so
only KSampler, VAEDecode and SaveImage run again), and prints, per run: wall time (POST to the
final ``executing {node: null}``), the time of each node (between ``executing`` events, as the
client receives them), seconds per sampler step, VAE decode time, and the CPU seconds the
server used during the run (user + system, from ``/proc/<pid>/stat``: on a machine shared
with other work the wall time moves a lot, the CPU time much less); then the server's peak
RSS (``VmHWM`` from ``/proc/<pid>/status``) and the load average.

Environment variables reach the server, e.g. ``KILN_CPU_PREPACK=0`` to compare against
unpacked bf16 weights (see ``diffusion/models/packing.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

CHECKPOINT_NAME = "sd15-random-fp16.safetensors"
NODE_NAMES = {"4": "CheckpointLoaderSimple", "6": "CLIPTextEncode (+)", "7": "CLIPTextEncode (-)",
              "5": "EmptyLatentImage", "3": "KSampler", "8": "VAEDecode", "9": "SaveImage"}


def random_weights(shapes: dict[str, tuple[int, ...]], seed: int = 0) -> dict:
    """fp16 tensors: norms 1, biases 0, other weights N(0, 1/fan_in), integer buffers as arange."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    state = {}
    for name, shape in shapes.items():
        if name.endswith("position_ids"):
            state[name] = torch.arange(shape[-1], dtype=torch.int64).reshape(shape)
        elif name.endswith("bias"):
            state[name] = torch.zeros(shape, dtype=torch.float16)
        elif len(shape) == 1:
            state[name] = torch.ones(shape, dtype=torch.float16)
        else:
            fan_in = math.prod(shape[1:])
            tensor = torch.randn(shape, generator=generator, dtype=torch.float32)
            state[name] = tensor.mul_(1.0 / math.sqrt(fan_in)).to(torch.float16)
    return state


def sd15_shapes() -> dict[str, tuple[int, ...]]:
    """Every tensor name and shape of an SD1.5 single-file checkpoint (models built on the meta device)."""
    import torch
    from transformers import CLIPTextConfig, CLIPTextModel

    from diffusion.models.unet import UNetConfig, UNetModel
    from diffusion.models.vae import AutoencoderKL, VAEConfig

    shapes: dict[str, tuple[int, ...]] = {}
    with torch.device("meta"):
        unet = UNetModel(UNetConfig())
        vae = AutoencoderKL(VAEConfig())
        text = CLIPTextModel(CLIPTextConfig(vocab_size=49408, hidden_size=768, intermediate_size=3072,
                                            num_hidden_layers=12, num_attention_heads=12,
                                            max_position_embeddings=77, hidden_act="quick_gelu"))
    for name, tensor in unet.state_dict().items():
        shapes["model.diffusion_model." + name] = tuple(tensor.shape)
    for name, tensor in vae.state_dict().items():
        shapes["first_stage_model." + name] = tuple(tensor.shape)
    for name, tensor in text.state_dict().items():
        name = name if name.startswith("text_model.") else "text_model." + name  # transformers 5 drops the level
        shapes["cond_stage_model.transformer." + name] = tuple(tensor.shape)
    shapes.setdefault("cond_stage_model.transformer.text_model.embeddings.position_ids", (1, 77))
    return shapes


def ensure_checkpoint(cache: Path) -> Path:
    path = cache / "models" / "checkpoints" / CHECKPOINT_NAME
    if path.is_file():
        return path
    from safetensors.torch import save_file

    started = time.perf_counter()
    shapes = sd15_shapes()
    state = random_weights(shapes)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    save_file(state, str(partial))
    os.replace(partial, path)
    counts = {prefix: sum(math.prod(s) for n, s in shapes.items() if n.startswith(prefix))
              for prefix in ("model.diffusion_model.", "first_stage_model.", "cond_stage_model.")}
    print(f"wrote {path} ({path.stat().st_size / 2**30:.2f} GiB; UNet {counts['model.diffusion_model.'] / 1e6:.0f}M, "
          f"VAE {counts['first_stage_model.'] / 1e6:.0f}M, text {counts['cond_stage_model.'] / 1e6:.0f}M parameters) "
          f"in {time.perf_counter() - started:.1f} s", flush=True)
    return path


def classic_graph(seed: int, size: int, steps: int, cfg: float, sampler: str, scheduler: str) -> dict:
    return {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": CHECKPOINT_NAME}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a photograph of an astronaut riding a horse",
                                                         "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "text, watermark", "clip": ["4", 1]}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": size, "height": size, "batch_size": 1}},
        "3": {"class_type": "KSampler", "inputs": {
            "seed": seed, "steps": steps, "cfg": cfg, "sampler_name": sampler, "scheduler": scheduler, "denoise": 1.0,
            "model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0]}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "bench"}},
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (0 where /proc is missing)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


async def run_once(session, url: str, socket, client_id: str, graph: dict, pid: int) -> dict:
    """Queue ``graph``; return the wall and CPU time and the per-node times from the ``executing`` events."""
    cpu_started = cpu_seconds(pid)
    started = time.perf_counter()
    async with session.post(url + "/prompt", json={"prompt": graph, "client_id": client_id}) as response:
        answer = await response.json()
        if response.status != 200:
            raise RuntimeError(f"prompt refused: {answer}")
    prompt_id = answer["prompt_id"]
    marks: list[tuple[str | None, float]] = []
    progress: list[float] = []
    error = None
    while True:
        message = await socket.receive(timeout=3600)
        if message.type.name != "TEXT":
            continue
        event = json.loads(message.data)
        data, now = event.get("data", {}), time.perf_counter()
        if data.get("prompt_id") != prompt_id:
            continue
        if event["type"] == "executing":
            marks.append((data["node"], now))
            if data["node"] is None:
                break
        elif event["type"] == "progress":
            progress.append(now)
        elif event["type"] == "execution_error":
            error = f"{data.get('node_type')}: {data.get('exception_type')}: {data.get('exception_message')}"
    if error:
        raise RuntimeError(error)
    nodes = {node: marks[i + 1][1] - at for i, (node, at) in enumerate(marks[:-1])}
    return {"wall": marks[-1][1] - started, "cpu": cpu_seconds(pid) - cpu_started, "nodes": nodes,
            "progress": progress}


async def bench(args: argparse.Namespace) -> int:
    import aiohttp

    from tests.helpers.kiln_server import launch

    checkpoint = ensure_checkpoint(args.cache)
    base = args.cache / f"base-{uuid.uuid4().hex[:8]}"
    base.mkdir(parents=True)
    (base / "models").mkdir()
    (base / "models" / "checkpoints").symlink_to(checkpoint.parent)
    kiln = launch(base, "--preview-method", args.preview_method, *args.server_arg)
    try:
        client_id = uuid.uuid4().hex
        async with aiohttp.ClientSession() as session:
            socket = await session.ws_connect(kiln.url.replace("http", "ws") + f"/ws?clientId={client_id}")
            runs = []
            for index, seed in enumerate((args.seed, args.seed + 1)):
                graph = classic_graph(seed, args.size, args.steps, args.cfg, args.sampler, args.scheduler)
                result = await run_once(session, kiln.url, socket, client_id, graph, kiln.process.pid)
                runs.append(result)
                report(index + 1, result, args.steps)
            await socket.close()
        status = Path(f"/proc/{kiln.process.pid}/status").read_text()
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        peak_kib, now_kib = int(fields["VmHWM"].split()[0]), int(fields["VmRSS"].split()[0])
        print(f"server peak RSS (VmHWM): {peak_kib / 2**20:.2f} GiB; RSS now {now_kib / 2**20:.2f} GiB")
        print("load average (1, 5, 15 min): " + ", ".join(f"{v:.2f}" for v in os.getloadavg())
              + f" on {os.cpu_count()} CPUs")
        second = runs[-1]
        verdict = (second["wall"] <= args.target_seconds, peak_kib / 2**20 <= args.target_rss_gib)
        print(f"targets: second run <= {args.target_seconds} s: {'met' if verdict[0] else 'MISSED'}; "
              f"peak RSS <= {args.target_rss_gib} GiB: {'met' if verdict[1] else 'MISSED'}")
    finally:
        kiln.stop()
        if not args.keep:
            import shutil

            shutil.rmtree(base, ignore_errors=True)
    return 0


def report(number: int, result: dict, steps: int) -> None:
    nodes = result["nodes"]
    sampler = nodes.get("3", 0.0)
    print(f"run {number}: wall {result['wall']:.2f} s (server CPU {result['cpu']:.2f} s); "
          f"sampler {sampler:.2f} s ({sampler / steps:.2f} s/step"
          + (f", {len(result['progress'])} progress events" if result["progress"] else "")
          + f"); VAE decode {nodes.get('8', 0.0):.2f} s")
    for node, seconds in nodes.items():
        print(f"    {NODE_NAMES.get(node, node):<24} {seconds:7.2f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, default=Path("/tmp/kiln-bench"))
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--cfg", type=float, default=7.0)
    parser.add_argument("--sampler", default="euler")
    parser.add_argument("--scheduler", default="normal")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--preview-method", default="none", help="as ComfyUI's default")
    parser.add_argument("--server-arg", action="append", default=[], help="extra server.py flag (repeatable)")
    parser.add_argument("--target-seconds", type=float, default=8.0)
    parser.add_argument("--target-rss-gib", type=float, default=3.2)
    parser.add_argument("--keep", action="store_true", help="keep the server's base folder (outputs, log)")
    args = parser.parse_args(argv)
    return asyncio.run(bench(args))


if __name__ == "__main__":
    sys.exit(main())
