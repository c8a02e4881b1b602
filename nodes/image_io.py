"""Image files in and out: LoadImage, LoadImageMask, SaveImage and PreviewImage.

Follows ComfyUI's behaviour (comfy-compat §5 PNG metadata, §6.10 UI results, §9 node specs):

* inputs name files in the server's ``input/`` folder; a name may carry a subfolder
  (``sub/x.png``) or an annotation that picks another folder (``x.png [output]``,
  ``[input]``, ``[temp]``, as ``folder_paths.annotated_filepath``);
* saved PNGs carry a tEXt chunk ``prompt`` (the API prompt) and one chunk per key of
  ``extra_pnginfo`` (the editor sends ``workflow``), both ``json.dumps`` output, unless the
  server runs with ``disable_metadata``;
* files are named ``<prefix>_<counter:05>_.png``, the counter being one more than the highest
  already in the target folder for that prefix.

Folders and options come from the node context (``nodes.runtime``); every user-supplied path
goes through ``engine.safepath.resolve_inside``.
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
import os
import posixpath
import random
import string
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.folders import partial_write_path
from engine.safepath import UnsafePath, resolve_inside
from nodes import runtime

if TYPE_CHECKING:
    import torch
    from PIL import Image

FOLDER_ANNOTATIONS = {" [input]": "input", " [output]": "output", " [temp]": "temp"}
MASK_CHANNELS = ("alpha", "red", "green", "blue")
SAVE_COMPRESS_LEVEL = 4
PREVIEW_COMPRESS_LEVEL = 1
# Pillow cannot split these multi-picture formats into a meaningful batch: the extra frames
# of an MPO are the second eye or thumbnails, not an animation.
SINGLE_FRAME_FORMATS = frozenset({"MPO"})


def folder_of_type(folder_type: str) -> Path:
    """The server folder for ``"input"``, ``"output"`` or ``"temp"``."""
    folders = runtime.folders()
    return Path({"input": folders.input_dir, "output": folders.output_dir, "temp": folders.temp_dir}[folder_type])


def folder_of_type_if_known(folder_type: str) -> Path | None:
    """Like :func:`folder_of_type`, but None when no node context is active (plain scripts)."""
    try:
        return folder_of_type(folder_type)
    except runtime.NoNodeContext:
        return None


def split_annotation(name: str, default_type: str = "input") -> tuple[str, str]:
    """Split ``"x.png [output]"`` into ``("x.png", "output")``; unannotated names keep ``default_type``."""
    for suffix, folder_type in FOLDER_ANNOTATIONS.items():
        if name.endswith(suffix):
            return name[: -len(suffix)], folder_type
    return name, default_type


def annotated_path(name: str, default_type: str = "input") -> Path:
    """The file an (optionally annotated, optionally subfoldered) name refers to; raises UnsafePath."""
    relative, folder_type = split_annotation(name, default_type)
    return resolve_inside(folder_of_type(folder_type), relative)


def annotated_file_exists(name: str) -> bool:
    """Whether ``name`` is a safe name of an existing file (LoadImage's VALIDATE_INPUTS rule)."""
    try:
        return annotated_path(name).is_file()
    except UnsafePath:
        return False


def is_image_name(name: str) -> bool:
    """Whether the file's MIME type, guessed from its extension, is ``image/*``."""
    mime_type, _ = mimetypes.guess_type(name)
    return mime_type is not None and mime_type.startswith("image/")


def top_level_files(folder: Path) -> list[str]:
    """Sorted names of the plain files directly in ``folder`` (none if it does not exist)."""
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return []
    return sorted(entry.name for entry in entries if entry.is_file())


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes (how LoadImage notices an edited input)."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _to_8bit_range(frame: Image.Image) -> Image.Image:
    # ComfyUI scales 32-bit integer images (mode "I": some 16-bit PNGs, integer TIFFs) by 1/255
    # before the RGB conversion clips to 0..255; doing the same gives the same tensor per file.
    return frame.point(lambda value: value * (1 / 255)) if frame.mode == "I" else frame


def _alpha_of(frame: Image.Image) -> Image.Image | None:
    if "A" in frame.getbands():
        return frame.getchannel("A")
    if frame.mode == "P" and "transparency" in frame.info:
        return frame.convert("RGBA").getchannel("A")
    return None


def load_image_file(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Read an image file as ``(IMAGE [N, H, W, 3], MASK)``.

    Every frame is EXIF-rotated; frames whose size differs from the first are skipped. The mask
    is ``1 - alpha`` (``[N, H, W]``); an image without any alpha gets a 64x64 zero mask per
    frame, as in ComfyUI. In an animation where only some frames have alpha, the others get a
    full-size zero mask so that the batch stays one tensor.
    """
    import numpy as np
    import torch
    from PIL import Image, ImageOps, ImageSequence

    with Image.open(path) as image:
        frames: list[np.ndarray] = []
        alphas: list[np.ndarray | None] = []
        size = None
        for frame in ImageSequence.Iterator(image):
            frame = ImageOps.exif_transpose(frame)
            rgb = _to_8bit_range(frame).convert("RGB")
            size = size or rgb.size
            if rgb.size != size:
                continue
            frames.append(np.asarray(rgb, dtype=np.float32) / 255.0)
            alpha = _alpha_of(frame)
            alphas.append(None if alpha is None else np.asarray(alpha, dtype=np.float32) / 255.0)
            if image.format in SINGLE_FRAME_FORMATS:
                break
    pixels = torch.from_numpy(np.stack(frames))
    if all(alpha is None for alpha in alphas):
        return pixels, torch.zeros((len(frames), 64, 64), dtype=torch.float32)
    height, width = frames[0].shape[:2]
    opaque = np.ones((height, width), dtype=np.float32)
    masks = [1.0 - torch.from_numpy(opaque if alpha is None else alpha) for alpha in alphas]
    return pixels, torch.stack(masks)


def load_mask_file(path: Path, channel: str) -> torch.Tensor:
    """One channel of an image file as a ``[1, H, W]`` mask; ``alpha`` is inverted (1 - a)."""
    import numpy as np
    import torch
    from PIL import Image, ImageOps

    if channel not in MASK_CHANNELS:
        raise ValueError(f"unknown channel {channel!r}; expected one of {', '.join(MASK_CHANNELS)}")
    with Image.open(path) as image:
        image = ImageOps.exif_transpose(image)
        if image.getbands() != ("R", "G", "B", "A"):
            image = _to_8bit_range(image).convert("RGBA")
        band = np.asarray(image.getchannel(channel[0].upper()), dtype=np.float32) / 255.0
    mask = torch.from_numpy(band)
    if channel == "alpha":
        mask = 1.0 - mask
    return mask.unsqueeze(0)


def expand_prefix_variables(prefix: str, width: int, height: int, now: time.struct_time | None = None) -> str:
    """Replace ``%width% %height% %year% %month% %day% %hour% %minute% %second%`` (local time).

    The editor substitutes ``%date:...%`` and ``%Node.widget%`` itself before queueing
    (comfy-compat §4.4); ``%batch_num%`` is replaced per image while saving.
    """
    now = now or time.localtime()
    values = {
        "%width%": str(width),
        "%height%": str(height),
        "%year%": str(now.tm_year),
        "%month%": f"{now.tm_mon:02}",
        "%day%": f"{now.tm_mday:02}",
        "%hour%": f"{now.tm_hour:02}",
        "%minute%": f"{now.tm_min:02}",
        "%second%": f"{now.tm_sec:02}",
    }
    for token, value in values.items():
        prefix = prefix.replace(token, value)
    return prefix


def next_counter(folder: Path, filename: str) -> int:
    """One more than the highest ``<filename>_<counter>_...`` already in ``folder`` (1 if none).

    Names are compared case-insensitively where the OS folds case (``os.path.normcase``); a
    name whose counter part is not a number counts as 0.
    """
    wanted = os.path.normcase(filename + "_")
    highest = 0
    for name in top_level_files(folder):
        if os.path.normcase(name[: len(wanted)]) != wanted:
            continue
        counter_text = name[len(wanted) :].split("_")[0]
        highest = max(highest, int(counter_text) if counter_text.isdigit() else 0)
    return highest + 1


@dataclass(frozen=True)
class SaveTarget:
    """Where a batch of images is written: ``folder/<filename>_<counter:05>_.png``, ..."""

    folder: Path
    subfolder: str  # relative to the base folder, '/'-separated, as reported to the UI
    filename: str  # may still contain %batch_num%
    counter: int


def save_target(base_dir: Path, prefix: str, width: int, height: int) -> SaveTarget:
    """Resolve ``prefix`` (which may contain subfolders and variables) inside ``base_dir``.

    Raises :class:`UnsafePath` when the prefix would leave ``base_dir``.
    """
    if "%" in prefix:
        prefix = expand_prefix_variables(prefix, width, height)
    normalized = posixpath.normpath(prefix)
    subfolder, filename = posixpath.split(normalized)
    try:
        folder = resolve_inside(base_dir, subfolder)
        # The file name too: a backslash or drive letter in it is a path on Windows.
        resolve_inside(folder, filename.replace("%batch_num%", "0"))
    except UnsafePath as error:
        raise UnsafePath(f"Saving image outside the output folder is not allowed: {prefix!r} ({error})") from error
    folder.mkdir(parents=True, exist_ok=True)
    return SaveTarget(folder=folder, subfolder=subfolder, filename=filename, counter=next_counter(folder, filename))


def png_metadata(prompt: dict | None, extra_pnginfo: dict | None) -> Any:
    """A ``PngInfo`` with the ``prompt`` chunk and one chunk per ``extra_pnginfo`` key (§5)."""
    from PIL.PngImagePlugin import PngInfo

    metadata = PngInfo()
    if prompt is not None:
        metadata.add_text("prompt", json.dumps(prompt))
    for key, value in (extra_pnginfo or {}).items():
        metadata.add_text(key, json.dumps(value))
    return metadata


def write_png_atomically(image: Image.Image, path: Path, metadata: Any, compress_level: int) -> None:
    """Write a PNG under a hidden temporary name, then rename it into place.

    ``os.replace`` is atomic within a folder, so ``/view``, the file lists and other readers
    see either no file or the whole file, never a half-written one.
    """
    temporary = partial_write_path(path)
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(descriptor, "wb") as stream:
            image.save(stream, format="PNG", pnginfo=metadata, compress_level=compress_level)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def tensor_to_pil(image: torch.Tensor) -> Image.Image:
    """An ``[H, W, C]`` float image in 0..1 as an 8-bit Pillow image (clipped, then truncated)."""
    import numpy as np
    from PIL import Image

    pixels = np.clip(255.0 * image.detach().float().cpu().numpy(), 0, 255).astype(np.uint8)
    if pixels.shape[-1] == 1:
        pixels = pixels[..., 0]
    return Image.fromarray(pixels)


class LoadImage:
    """An image from the input folder, with its alpha as a mask."""

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        names = [name for name in top_level_files(folder_of_type("input")) if is_image_name(name)]
        return {"required": {"image": (names, {"image_upload": True})}}

    RETURN_TYPES = ("IMAGE", "MASK")
    FUNCTION = "load_image"
    CATEGORY = "image"

    def load_image(self, image: str) -> tuple:
        return load_image_file(annotated_path(image))

    @classmethod
    def IS_CHANGED(cls, image: str) -> str:
        return file_sha256(annotated_path(image))

    @classmethod
    def VALIDATE_INPUTS(cls, image: str) -> bool | str:
        return True if annotated_file_exists(image) else f"Invalid image file: {image}"


class LoadImageMask:
    """One channel of an image from the input folder, as a mask."""

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {
            "required": {
                "image": (top_level_files(folder_of_type("input")), {"image_upload": True}),
                "channel": (list(MASK_CHANNELS),),
            }
        }

    RETURN_TYPES = ("MASK",)
    FUNCTION = "load_image"
    CATEGORY = "mask"

    def load_image(self, image: str, channel: str) -> tuple:
        return (load_mask_file(annotated_path(image), channel),)

    @classmethod
    def IS_CHANGED(cls, image: str, channel: str) -> str:
        return file_sha256(annotated_path(image))

    @classmethod
    def VALIDATE_INPUTS(cls, image: str) -> bool | str:
        return True if annotated_file_exists(image) else f"Invalid image file: {image}"


class SaveImage:
    """Write each image of the batch as a PNG into the output folder."""

    # Plugins written for ComfyUI subclass SaveImage, set these in __init__ or read them (often
    # output_dir, for folder_paths.get_save_image_path), so they keep ComfyUI's names. Without
    # a node context at creation, output_dir stays None and is looked up when saving.
    def __init__(self) -> None:
        self.type = "output"
        self.output_dir: str | Path | None = folder_of_type_if_known(self.type)
        self.prefix_append = ""
        self.compress_level = SAVE_COMPRESS_LEVEL

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {
            "required": {
                "images": ("IMAGE", {"tooltip": "The images to save."}),
                "filename_prefix": (
                    "STRING",
                    {
                        "default": "ComfyUI",
                        "tooltip": "The prefix for the file to save. This may include formatting information such as "
                        "%date:yyyy-MM-dd% or %Empty Latent Image.width% to include values from nodes.",
                    },
                ),
            },
            "hidden": {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"},
        }

    RETURN_TYPES = ()
    FUNCTION = "save_images"
    OUTPUT_NODE = True
    CATEGORY = "image"
    DESCRIPTION = "Saves the input images to your ComfyUI output directory."

    def save_images(
        self,
        images: torch.Tensor,
        filename_prefix: str = "ComfyUI",
        prompt: dict | None = None,
        extra_pnginfo: dict | None = None,
    ) -> dict:
        base_dir = Path(self.output_dir) if self.output_dir else folder_of_type(self.type)
        height, width = images[0].shape[0], images[0].shape[1]
        target = save_target(base_dir, filename_prefix + self.prefix_append, width, height)
        with_metadata = not runtime.options().get("disable_metadata", False)
        metadata = png_metadata(prompt, extra_pnginfo) if with_metadata else None
        results = []
        for batch_number, image in enumerate(images):
            stem = target.filename.replace("%batch_num%", str(batch_number))
            filename = f"{stem}_{target.counter + batch_number:05}_.png"
            write_png_atomically(tensor_to_pil(image), target.folder / filename, metadata, self.compress_level)
            results.append({"filename": filename, "subfolder": target.subfolder, "type": self.type})
        return {"ui": {"images": results}}


class PreviewImage(SaveImage):
    """Write the images to the temp folder for display in the editor (wiped at restart)."""

    def __init__(self) -> None:
        super().__init__()
        self.type = "temp"
        self.output_dir = folder_of_type_if_known(self.type)
        # A per-instance random suffix keeps the previews of two nodes apart in one folder.
        letters = "".join(random.choices(string.ascii_lowercase, k=5))
        self.prefix_append = f"_temp_{letters}"
        self.compress_level = PREVIEW_COMPRESS_LEVEL

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {"required": {"images": ("IMAGE",)}, "hidden": {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"}}


NODE_CLASS_MAPPINGS = {
    "LoadImage": LoadImage,
    "LoadImageMask": LoadImageMask,
    "SaveImage": SaveImage,
    "PreviewImage": PreviewImage,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "LoadImage": "Load Image",
    "LoadImageMask": "Load Image (as Mask)",
    "SaveImage": "Save Image",
    "PreviewImage": "Preview Image",
}
