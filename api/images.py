"""Image work behind ``/view`` and ``/upload``: checks, re-encoding, mask composition, dedup.

Behaviour of ComfyUI's handlers (comfy-compat §1.5–§1.6). Every function here is blocking
(PIL, disk) and is called through ``asyncio.to_thread``.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

from PIL import Image, PngImagePlugin

# PIL's own default (``Image.MAX_IMAGE_PIXELS``), checked explicitly so a decompression
# bomb is refused whatever a plugin sets PIL's global to.
MAX_UPLOAD_PIXELS = 89_478_485


class BadImage(ValueError):
    """Uploaded bytes are not a decodable image (or are a decompression bomb)."""


def check_image(data: bytes, max_pixels: int = MAX_UPLOAD_PIXELS) -> tuple[int, int]:
    """Decode the header, refuse oversized images, verify the data; return (width, height)."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            if width * height > max_pixels:
                raise BadImage(f"image is {width}x{height}, more than {max_pixels} pixels")
            image.verify()
    except BadImage:
        raise
    except (Image.DecompressionBombError, OSError, SyntaxError, ValueError) as exc:
        raise BadImage(f"not a readable image: {exc}") from None
    return width, height


def file_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def choose_upload_name(folder: Path, filename: str, data: bytes, overwrite: bool) -> tuple[str, bool]:
    """Pick the name to store ``data`` under; returns ``(name, needs_write)``.

    Without overwrite, an existing file with the same sha256 is reused (nothing written);
    otherwise ``"<stem> (1)<ext>"``, ``"<stem> (2)<ext>"``... is tried (ComfyUI's rule).
    """
    if overwrite:
        return filename, True
    stem, suffix = Path(filename).stem, Path(filename).suffix
    candidate, counter = filename, 1
    digest = file_digest(data)
    while (folder / candidate).exists():
        if (folder / candidate).is_file() and file_digest((folder / candidate).read_bytes()) == digest:
            return candidate, False
        candidate = f"{stem} ({counter}){suffix}"
        counter += 1
    return candidate, True


def compose_mask(original: Path, mask_data: bytes) -> bytes:
    """The original image with its alpha replaced by the mask's alpha; PNG text chunks kept."""
    with Image.open(original) as source:
        pnginfo = PngImagePlugin.PngInfo()
        for key, value in getattr(source, "text", {}).items():
            pnginfo.add_text(key, value)
        result = source.convert("RGBA")
    with Image.open(io.BytesIO(mask_data)) as mask:
        alpha = mask.convert("RGBA").getchannel("A")
    if alpha.size != result.size:
        alpha = alpha.resize(result.size, Image.Resampling.LANCZOS)
    result.putalpha(alpha)
    buffer = io.BytesIO()
    result.save(buffer, format="PNG", pnginfo=pnginfo, compress_level=4)
    return buffer.getvalue()


def parse_preview(value: str, channel: str) -> tuple[str, int]:
    """``preview=webp|jpeg[;quality]`` → (format, quality); alpha requests force webp."""
    parts = value.split(";")
    image_format = parts[0].lower()
    if image_format not in ("webp", "jpeg") or "a" in channel:
        image_format = "webp"
    quality = 90
    if len(parts) > 1 and parts[-1].strip().isdigit():
        quality = max(1, min(100, int(parts[-1])))
    return image_format, quality


def preview_bytes(path: Path, image_format: str, quality: int, channel: str) -> bytes:
    with Image.open(path) as image:
        if image_format == "jpeg" or channel == "rgb":
            image = image.convert("RGB")
        buffer = io.BytesIO()
        image.save(buffer, format=image_format.upper(), quality=quality)
    return buffer.getvalue()


def channel_png(path: Path, channel: str) -> bytes:
    """``channel=rgb``: PNG without alpha; ``channel=a``: black RGBA PNG carrying the alpha."""
    with Image.open(path) as image:
        if channel == "rgb":
            result = image.convert("RGB")
        else:
            alpha = image.getchannel("A") if image.mode in ("RGBA", "LA", "PA") else Image.new("L", image.size, 255)
            result = Image.new("RGBA", image.size)
            result.putalpha(alpha)
        buffer = io.BytesIO()
        result.save(buffer, format="PNG")
    return buffer.getvalue()


def png_text_chunks(data_or_path: bytes | Path) -> dict[str, str]:
    """The tEXt/iTXt chunks of a PNG (``prompt``, ``workflow``...); empty if none."""
    source = io.BytesIO(data_or_path) if isinstance(data_or_path, bytes) else data_or_path
    with Image.open(source) as image:
        return dict(getattr(image, "text", {}) or {})
