"""``comfy.utils`` for ComfyUI plugins: ``ProgressBar`` and a few file/tensor helpers.

``ProgressBar`` reports through the running node's ``NodeContext.reporter`` (see
docs/ARCHITECTURE.md), which sends ``progress``/``progress_state`` and previews and checks
for an interrupt at every update, as ComfyUI's global progress hook does (comfy-compat §12).
torch is imported inside the functions that need it (start-up speed rule).
"""

from __future__ import annotations

from typing import Any

PROGRESS_BAR_ENABLED = True


def _reporter() -> Any:
    from engine.context import current_context

    context = current_context()
    return None if context is None else context.reporter


class ProgressBar:
    """Progress of one node's work, e.g. sampler steps: ``update(1)`` per step."""

    def __init__(self, total: int, node_id: str | None = None) -> None:
        self.total = int(total)
        self.current = 0
        self.node_id = node_id
        self._reporter = _reporter()

    def update_absolute(self, value: int, total: int | None = None, preview: Any = None) -> None:
        if total is not None:
            self.total = int(total)
        self.current = min(int(value), self.total) if self.total else int(value)
        # The reporter of the node that made the bar (so worker threads it spawns still
        # report), else of the node running now.
        reporter = self._reporter or _reporter()
        if reporter is not None:
            reporter.progress(self.current, self.total, preview)

    def update(self, value: int) -> None:
        self.update_absolute(self.current + int(value))


def set_progress_bar_enabled(enabled: bool) -> None:
    """Accepted for compatibility; Kiln's progress goes to the websocket, not to tqdm."""


def load_torch_file(ckpt: str, safe_load: bool = False, device: Any = None, return_metadata: bool = False) -> Any:
    """Load a state dict: safetensors via ``safe_open``, anything else only with ``weights_only``."""
    import torch

    device = device or torch.device("cpu")
    metadata = None
    if str(ckpt).lower().endswith((".safetensors", ".sft")):
        from safetensors import safe_open

        with safe_open(str(ckpt), framework="pt", device=str(device)) as handle:
            state_dict = {key: handle.get_tensor(key) for key in handle.keys()}
            metadata = handle.metadata()
    else:
        loaded = torch.load(str(ckpt), map_location=device, weights_only=True)
        state_dict = loaded.get("state_dict", loaded) if isinstance(loaded, dict) else loaded
    return (state_dict, metadata) if return_metadata else state_dict


def common_upscale(samples: Any, width: int, height: int, upscale_method: str, crop: str) -> Any:
    """Resize ``[B,C,H,W]`` to (height, width); ``crop="center"`` crops to the aspect first."""
    import torch.nn.functional as F

    if crop == "center":
        old_w, old_h = samples.shape[3], samples.shape[2]
        old_aspect, new_aspect = old_w / old_h, width / height
        x = y = 0
        if old_aspect > new_aspect:
            x = round((old_w - old_w * (new_aspect / old_aspect)) / 2)
        elif old_aspect < new_aspect:
            y = round((old_h - old_h * (old_aspect / new_aspect)) / 2)
        samples = samples.narrow(-2, y, old_h - y * 2).narrow(-1, x, old_w - x * 2)
    mode = {"nearest-exact": "nearest-exact", "bilinear": "bilinear", "area": "area",
            "bicubic": "bicubic"}.get(upscale_method, "bilinear")
    kwargs = {"antialias": True, "align_corners": False} if mode in ("bilinear", "bicubic") else {}
    return F.interpolate(samples, size=(height, width), mode=mode, **kwargs)
