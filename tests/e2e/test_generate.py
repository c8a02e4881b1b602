"""Text to image end to end: a real server, a real SD1-layout checkpoint, HTTP and websocket.

The classic graph of ComfyUI's default workflow (CheckpointLoaderSimple → CLIPTextEncode ×2 →
EmptyLatentImage → KSampler → VAEDecode → SaveImage) runs on ``python server.py`` started with
``--preview-method latent2rgb``. Checked against the protocol of comfy-compat §2 (events, binary
preview frames), §5 (PNG chunks) and §6.5 (a resubmission with a new seed re-runs only the
nodes downstream of the seed).

Checkpoints: a tiny random one written by ``tests/helpers/tiny_checkpoint.py``, and the shipped
demo model ``models/checkpoints/kiln-demo.safetensors`` whenever that file exists.
"""

from __future__ import annotations

import io
import json
import struct
import uuid
from collections.abc import Iterator

import aiohttp
import pytest
from PIL import Image

from tests.helpers.kiln_server import REPO_ROOT, KilnProcess, launch, run_async, ws_connect
from tests.helpers.tiny_checkpoint import write_tiny_checkpoint

TINY_NAME = "tiny-sd1.safetensors"
DEMO_CHECKPOINT = REPO_ROOT / "models" / "checkpoints" / "kiln-demo.safetensors"
# (checkpoint, whether the client negotiates preview metadata): both preview framings on the
# tiny model, the demo model (when shipped) once.
CASES = [(TINY_NAME, False), (TINY_NAME, True)] + ([(DEMO_CHECKPOINT.name, True)] if DEMO_CHECKPOINT.is_file() else [])

WIDTH, HEIGHT, STEPS = 64, 64, 3
JPEG_MAGIC = b"\xff\xd8\xff"
UPSTREAM_OF_SEED = ["4", "5", "6", "7"]  # loader, both text encoders, empty latent
DOWNSTREAM_OF_SEED = ["3", "8", "9"]     # KSampler, VAEDecode, SaveImage


def classic_graph(ckpt_name: str, seed: int, prefix: str) -> dict:
    """ComfyUI's default workflow in API form (same node ids)."""
    return {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ckpt_name}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red circle on a blue background", "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["4", 1]}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": WIDTH, "height": HEIGHT, "batch_size": 1}},
        "3": {"class_type": "KSampler", "inputs": {
            "seed": seed, "steps": STEPS, "cfg": 7.0, "sampler_name": "euler", "scheduler": "normal",
            "denoise": 1.0, "model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0],
            "latent_image": ["5", 0]}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": prefix}},
    }


@pytest.fixture(scope="module")
def generator_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KilnProcess]:
    base = tmp_path_factory.mktemp("e2e-base")
    checkpoints = base / "models" / "checkpoints"
    write_tiny_checkpoint(checkpoints / TINY_NAME, layout="sd1", seed=3)
    if DEMO_CHECKPOINT.is_file():
        (checkpoints / DEMO_CHECKPOINT.name).symlink_to(DEMO_CHECKPOINT)
    kiln = launch(base, "--preview-method", "latent2rgb")
    yield kiln
    kiln.stop()


async def submit(session: aiohttp.ClientSession, url: str, body: dict) -> str:
    async with session.post(url + "/prompt", json=body) as response:
        answer = await response.json()
        assert response.status == 200, answer
        return answer["prompt_id"]


def of_type(client, prompt_id: str, event: str) -> list[dict]:
    return [m["data"] for m in client.events(prompt_id) if m["type"] == event]


def check_preview_frame(frame: bytes, prompt_id: str) -> None:
    """Type 1 (``u32 1 | u32 image_type | JPEG``) or type 4 (``u32 4 | u32 n | json | image``)."""
    (event,) = struct.unpack(">I", frame[:4])
    if event == 1:
        (image_type,) = struct.unpack(">I", frame[4:8])
        assert image_type == 1 and frame[8:11] == JPEG_MAGIC
        image = Image.open(io.BytesIO(frame[8:]))
    else:
        assert event == 4, f"unexpected binary event type {event}"
        (size,) = struct.unpack(">I", frame[4:8])
        meta = json.loads(frame[8:8 + size])
        assert meta["node_id"] == "3" and meta["prompt_id"] == prompt_id and meta["image_type"] == "image/jpeg"
        assert frame[8 + size:8 + size + 3] == JPEG_MAGIC
        image = Image.open(io.BytesIO(frame[8 + size:]))
    assert image.format == "JPEG" and image.size[0] > 0


@pytest.mark.parametrize("ckpt_name, preview_metadata", CASES,
                         ids=[f"{name}-{'metadata' if meta else 'legacy'}-previews" for name, meta in CASES])
def test_the_classic_graph_generates_an_image_and_a_new_seed_reruns_only_the_sampler(
        generator_server, ckpt_name, preview_metadata):
    url = generator_server.url

    async def scenario() -> None:
        client_id = uuid.uuid4().hex
        prefix = f"e2e_{client_id[:8]}"
        workflow = {"nodes": [], "links": [], "version": 0.4, "extra": {"marker": client_id}}
        # A seed unique to this case so the server's cache cannot answer from an earlier case.
        seed = int(client_id[:8], 16)
        async with aiohttp.ClientSession() as session:
            client = await ws_connect(session, url, client_id)
            await client.wait_for(lambda m: m["type"] == "status")
            if preview_metadata:
                await client.socket.send_str(json.dumps({"type": "feature_flags",
                                                         "data": {"supports_preview_metadata": True}}))
                await client.wait_for(lambda m: m["type"] == "feature_flags")

            graph = classic_graph(ckpt_name, seed, prefix)
            body = {"prompt": graph, "client_id": client_id, "extra_data": {"extra_pnginfo": {"workflow": workflow}}}
            prompt_id = await submit(session, url, body)
            await client.wait_done(prompt_id, timeout=240)

            assert of_type(client, prompt_id, "execution_success"), of_type(client, prompt_id, "execution_error")
            progress = of_type(client, prompt_id, "progress")
            assert [(p["value"], p["max"], p["node"]) for p in progress] == [(i, STEPS, "3") for i in range(1, STEPS + 1)]
            sampler_states = [s["nodes"]["3"] for s in of_type(client, prompt_id, "progress_state") if "3" in s["nodes"]]
            assert sampler_states[-1]["state"] == "finished"
            assert any(s["state"] == "running" and s["max"] == STEPS for s in sampler_states)
            assert all(s["node_id"] == "3" and s["prompt_id"] == prompt_id for s in sampler_states)

            assert len(client.binary) >= STEPS, "one latent preview per sampler step"
            for frame in client.binary:
                check_preview_frame(frame, prompt_id)
            assert {struct.unpack(">I", f[:4])[0] for f in client.binary} == ({4} if preview_metadata else {1})

            (saved,) = [e["output"]["images"] for e in of_type(client, prompt_id, "executed") if e["node"] == "9"]
            (image_ref,) = saved
            assert image_ref["type"] == "output" and image_ref["filename"].startswith(prefix)
            async with session.get(url + "/view", params=image_ref) as response:
                assert response.status == 200 and response.headers["Content-Type"] == "image/png"
                png = Image.open(io.BytesIO(await response.read()))
            assert png.format == "PNG" and png.size == (WIDTH, HEIGHT) and png.mode == "RGB"
            assert json.loads(png.text["prompt"]) == graph
            assert json.loads(png.text["workflow"])["extra"]["marker"] == client_id
            assert len(set(png.getdata())) > 1, "a generated image is not a flat colour"

            reseeded = classic_graph(ckpt_name, seed + 1, prefix)
            again = await submit(session, url, {"prompt": reseeded, "client_id": client_id})
            await client.wait_done(again, timeout=240)
            (cached,) = of_type(client, again, "execution_cached")
            assert sorted(cached["nodes"]) == UPSTREAM_OF_SEED
            ran = [e["node"] for e in of_type(client, again, "executing")]
            assert sorted(node for node in ran if node is not None) == DOWNSTREAM_OF_SEED and ran[-1] is None
            assert of_type(client, again, "execution_success")
            (second_ref,) = next(e["output"]["images"] for e in of_type(client, again, "executed") if e["node"] == "9")
            assert second_ref["filename"] != image_ref["filename"]

            async with session.get(url + f"/history/{again}") as response:
                entry = (await response.json())[again]
            assert entry["status"]["status_str"] == "success"
            assert entry["outputs"]["9"]["images"] == [second_ref]
            written = sorted(p.name for p in (generator_server.base_dir / "output").iterdir() if prefix in p.name)
            assert written == sorted([image_ref["filename"], second_ref["filename"]]), "no temporaries left behind"
            await client.socket.close()

    run_async(scenario())

