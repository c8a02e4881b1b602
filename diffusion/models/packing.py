"""Weights kept in oneDNN's own blocked layout, for bfloat16 inference on the CPU.

Each bf16 convolution or linear layer that runs through oneDNN first reorders its weight
into the blocked layout the AMX / AVX-512 BF16 kernels read (pairs of input channels
interleaved, channels in tiles). Done per call, that reorder costs more than the
arithmetic whenever the activations are small: measured on a 2-core Xeon with AMX, a
3×3 2560→1280 convolution over a batch-2 8×8 map took 85 ms with the reorder and 25 ms
without; on one thread an SD1.5 UNet step (batch 2, 32×32 latent) went from 1.39 s to 0.89 s
of CPU time and the VAE decode of that latent from 3.7 s to 1.9 s.

So a layer's weight can be *packed*: reordered once and stored as an opaque `torch._mkldnn`
tensor that replaces the dense one (the same bytes, so memory does not grow). The layers in
`diffusion.models.layers` notice a packed weight and call oneDNN's fused operators with it.
Results agree with `F.conv2d` / `F.linear` on the dense weight to bf16 rounding (oneDNN may
split the reductions differently for the packed layout; the weights themselves are exact).

Who may rely on what:

* `layer.pack_weights = True` (set by `pack_module`) asks a layer to repack whenever it finds
  a dense bf16 weight at inference time: a LoRA patch (`diffusion.lora.patching`) swaps in
  a dense patched weight, and the next call packs that one; restoring puts the packed
  original back.
* `dense_weight(tensor)` gives the dense form of either kind; `state_dict()` of a packed
  layer holds dense tensors (so consumers such as diff ControlNets see ordinary weights).

These operators are internal to torch (they back `torch.compile`'s CPU freezing), so
`packing_supported()` checks they exist and everything falls back to plain layers if not.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

# oneDNN's blocked layouts pay off in bf16; fp32 stays on the plain, exact path.
PACKED_DTYPES = frozenset({torch.bfloat16})


def packing_supported() -> bool:
    """Whether this torch build has oneDNN and its prepacked convolution/linear operators."""
    if not torch.backends.mkldnn.is_available():
        return False
    ops = torch.ops.mkldnn
    names = ("_reorder_convolution_weight", "_convolution_pointwise",
             "_reorder_linear_weight", "_linear_pointwise")
    return all(hasattr(ops, name) for name in names)


def is_packed(tensor: Tensor | None) -> bool:
    return tensor is not None and tensor.is_mkldnn


def dense_weight(tensor: Tensor) -> Tensor:
    """The ordinary strided form of a weight, packed or not (a new tensor when packed)."""
    return tensor.to_dense() if tensor.is_mkldnn else tensor


def should_pack(layer: nn.Module, x: Tensor) -> bool:
    """Whether `layer` should pack its dense weight before computing on `x` now."""
    weight = layer.weight
    return (getattr(layer, "pack_weights", False) and not weight.is_mkldnn and x.device.type == "cpu"
            and weight.device.type == "cpu" and x.dtype == weight.dtype and weight.dtype in PACKED_DTYPES
            and not (torch.is_grad_enabled() and weight.requires_grad))


def pack_conv_weight(conv: nn.Conv2d) -> Tensor:
    """`conv.weight` reordered for oneDNN's convolution (the input-size hint hardly matters)."""
    weight = conv.weight.detach()
    hint = [1, conv.in_channels, 64, 64]
    return torch.ops.mkldnn._reorder_convolution_weight(
        weight, list(conv.padding), list(conv.stride), list(conv.dilation), conv.groups, hint)


def pack_linear_weight(linear: nn.Linear) -> Tensor:
    """`linear.weight` reordered for oneDNN's matmul (hint: a 1024-token batch)."""
    return torch.ops.mkldnn._reorder_linear_weight(linear.weight.detach(), 1024)


def replace_weight(layer: nn.Module, tensor: Tensor) -> None:
    """Make `tensor` the layer's weight (a new Parameter: packed and dense tensors cannot share one)."""
    # Outside inference mode, so the packed weight stays usable by LoRA patching and state_dict.
    with torch.inference_mode(False), torch.no_grad():
        layer.weight = nn.Parameter(tensor, requires_grad=False)


def pack_layer(layer: nn.Module) -> None:
    """Replace a Kiln Conv2d/Linear layer's dense weight with its packed form."""
    with torch.inference_mode(False), torch.no_grad():
        packed = pack_conv_weight(layer) if isinstance(layer, nn.Conv2d) else pack_linear_weight(layer)
    replace_weight(layer, packed)


def conv_packed(conv: nn.Conv2d, x: Tensor, bias: Tensor | None) -> Tensor:
    """The convolution with a packed weight; NHWC in and out, as oneDNN works in bf16."""
    if x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    return torch.ops.mkldnn._convolution_pointwise(
        x, conv.weight, bias, list(conv.padding), list(conv.stride), list(conv.dilation), conv.groups,
        "none", [], "")


def linear_packed(linear: nn.Linear, x: Tensor, bias: Tensor | None) -> Tensor:
    """The linear layer with a packed weight (any leading dimensions)."""
    return torch.ops.mkldnn._linear_pointwise(x.contiguous(), linear.weight, bias, "none", [], "")


def packable(layer: nn.Module) -> bool:
    """A Kiln Conv2d/Linear layer whose weight oneDNN can take packed (bf16, plain zero padding)."""
    from diffusion.models.layers import Conv2d, Linear

    if isinstance(layer, Conv2d):
        return (layer.padding_mode == "zeros" and not isinstance(layer.padding, str)
                and layer.weight.dim() == 4 and layer.weight.dtype in PACKED_DTYPES)
    if isinstance(layer, Linear):
        return layer.weight.dtype in PACKED_DTYPES
    return False


def pack_module(module: nn.Module) -> int:
    """Pack every packable layer of `module` now, and have them repack after weight swaps.

    Only CPU modules; the caller decides that packing is wanted (`DeviceManager.pack_weights`).

    Returns:
        The number of layers packed.
    """
    if not packing_supported():
        return 0
    count = 0
    for layer in module.modules():
        if packable(layer) and layer.weight.device.type == "cpu":
            layer.pack_weights = True
            if not layer.weight.is_mkldnn:
                pack_layer(layer)
            count += 1
    return count


def unpack_module(module: nn.Module) -> None:
    """Give every packed layer of `module` its dense weight back and stop repacking."""
    for layer in module.modules():
        if getattr(layer, "pack_weights", False):
            layer.pack_weights = False
            if layer.weight.is_mkldnn:
                replace_weight(layer, dense_weight(layer.weight))
