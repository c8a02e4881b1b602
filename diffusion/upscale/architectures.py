"""Which super-resolution architectures Kiln runs itself and which need spandrel (torch-free).

Kiln's own code covers the two commonest families: ESRGAN's RRDBNet (RealESRGAN_x4plus,
4x-UltraSharp, ...) and Real-ESRGAN's compact SRVGGNet. Every other architecture loads through
the `spandrel` library, which imports `torchvision` when it is imported. Where spandrel does not
import, a file of another architecture is recognised from a few tensor names that only that
architecture's files carry, so that the error can say what the file is and what would load it.

This module imports nothing heavy: node classes read its names at start-up.
"""

from __future__ import annotations

from collections.abc import Iterable

BUILTIN_ARCHITECTURES = ("ESRGAN (RRDBNet)", "SRVGGNetCompact (Real-ESRGAN compact)")

# Architectures spandrel loads and Kiln does not, the most common first.
SPANDREL_ARCHITECTURES = (
    "SwinIR", "Swin2SR", "HAT", "DAT", "DRCT", "ATD", "RGT", "SPAN", "RealCUGAN", "OmniSR", "PLKSR",
    "SAFMN", "SCUNet", "GRL", "CRAFT", "DITN", "GFPGAN", "RestoreFormer", "FBCNN", "NAFNet", "LaMa",
)

# Tensor names that mark an architecture's files, checked in this order (each needs all its names;
# the transformer families share `layers.N.residual_group` and are told apart by what they add).
_MARKER_KEYS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("HAT", ("relative_position_index_SA", "layers.0.residual_group.overlap_attn.qkv.weight")),
    ("ATD", ("relative_position_index_SA", "layers.0.residual_group.td")),
    ("Swin2SR", ("layers.0.residual_group.blocks.0.attn.logit_scale",)),
    ("SwinIR", ("layers.0.residual_group.blocks.0.attn.relative_position_index",)),
    ("DRCT", ("layers.0.swin1.attn.qkv.weight",)),
    ("RGT", ("before_RG.1.weight", "layers.0.blocks.0.attn.attns.0.rpe_biases")),
    ("DAT", ("before_RG.1.weight", "layers.0.blocks.0.ffn.sg.conv.weight")),
    ("SPAN", ("conv_1.sk.weight", "block_1.c1_r.sk.weight")),
    ("RealCUGAN", ("unet1.conv1.conv.0.weight", "unet2.conv1.conv.0.weight")),
    ("OmniSR", ("residual_layer.0.residual_layer.0.layer.0.fn.0.weight",)),
    ("PLKSR", ("feats.0.weight", "feats.1.refine.weight")),
    ("SAFMN", ("to_feat.weight", "feats.0.safm.aggr.weight")),
    ("SCUNet", ("m_head.0.weight", "m_tail.0.weight")),
    ("GFPGAN", ("stylegan_decoder.style_mlp.1.weight",)),
    ("LaMa", ("model.model.1.bn_l.running_mean",)),
    ("LaMa", ("generator.model.1.bn_l.running_mean",)),
)


def guess_architecture(keys: Iterable[str]) -> str | None:
    """The spandrel-only architecture whose marker tensors a state dict holds, or None."""
    names = set(keys)
    for architecture, markers in _MARKER_KEYS:
        if all(marker in names for marker in markers):
            return architecture
    return None


def needs_spandrel_message(source: str, keys: Iterable[str], why_unavailable: str) -> str:
    """The error for a file Kiln's own upscalers do not load while spandrel does not import.

    Args:
        source: the file (named first in the message).
        keys: the file's tensor names, to say which architecture it looks like.
        why_unavailable: why spandrel did not import here (e.g. "No module named 'torchvision'").
    """
    architecture = guess_architecture(keys)
    if architecture is None:
        what = "is not an ESRGAN or SRVGGNetCompact model"
        needing = f"other architectures ({', '.join(SPANDREL_ARCHITECTURES)}, ...)"
    else:
        what = f"looks like a {architecture} model"
        others = ", ".join(name for name in SPANDREL_ARCHITECTURES if name != architecture)
        needing = f"{architecture} and the others spandrel knows ({others}, ...)"
    return (f"{source}: {what}. Kiln's built-in upscalers cover {' and '.join(BUILTIN_ARCHITECTURES)}; "
            f"{needing} need the spandrel package, installed with torchvision "
            f"(spandrel does not import here: {why_unavailable})")


LOADER_DESCRIPTION = (
    "Loads a super-resolution model from models/upscale_models. Where the spandrel package imports "
    "(it needs torchvision), spandrel loads it; otherwise Kiln's own code loads "
    + " and ".join(BUILTIN_ARCHITECTURES) + " files, and the other architectures ("
    + ", ".join(SPANDREL_ARCHITECTURES[:8]) + ", ...) need spandrel."
)
