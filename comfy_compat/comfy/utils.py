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
    """A weight file's state dict, read by ``diffusion.loading.files.read_state_dict``.

    Safetensors are read in full into a plain dict (plugins pop and rename keys); anything
    else only through ``torch.load(weights_only=True)``, whatever ``safe_load`` says: Kiln
    has no unsafe path. ``device`` moves the tensors; ``return_metadata`` also returns the
    safetensors header metadata (None for pickles), as ComfyUI does.
    """
    from diffusion.loading.files import file_metadata, read_state_dict

    tensors = read_state_dict(ckpt)
    metadata = file_metadata(tensors) or None
    state_dict = {key: tensors[key] for key in tensors}
    if device is not None:
        state_dict = {key: tensor.to(device) for key, tensor in state_dict.items()}
    return (state_dict, metadata) if return_metadata else state_dict


def common_upscale(samples: Any, width: int, height: int, upscale_method: str, crop: str) -> Any:
    """Resize NCHW ``samples`` to (height, width) exactly as ComfyUI (``nodes.image.scale_nchw``).

    ``upscale_method``: nearest-exact, bilinear, area, bicubic or lanczos (no antialiasing);
    any other name raises ``ValueError``. ``crop="center"`` crops to the target aspect first.
    """
    from nodes.image import scale_nchw

    return scale_nchw(samples, width, height, upscale_method, crop)
