"""Putting LoRA deltas into a shared module's weights, and taking them out again.

MODEL and CLIP values are cheap clones that share one network (`DiffusionModel.clone`,
`TextEncoder.clone`); a LoRA lives in the clone's `patches` (parameter name -> list of
`WeightPatch`), never in the network. Right before the network runs for a value, the caller
hands that value's patches to `apply_weight_patches(module, patches)`:

* when they are the patches already in place, nothing happens (sampling steps cost nothing);
* otherwise every patched parameter gets its original tensor back, then the new patches are
  computed once as `W' = W + Σ strength · ΔW` (in float32, stored in W's dtype) and put in.

So two branches of a graph, one with a LoRA and one without, each see exactly their own
weights whichever runs first, and no copy of the whole model is ever made: only the patched
layers exist twice (the original kept aside, on the CPU). This was chosen over a low-rank
side path at compute time because the patched network then runs at full speed on every step
and matches `W + strength·scale·up@down` exactly.

A weight packed for oneDNN (`diffusion.models.packing`) is patched through its dense form;
the layer packs the patched weight on its next call, and restoring puts the packed
original back, so packed layers see exactly the weights unpacked ones would.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import torch
from torch import Tensor, nn

from diffusion.lora.adapters import Adapter
from diffusion.models.packing import dense_weight

_PATCHER_ATTRIBUTE = "_kiln_weight_patcher"
_OFFLOAD = torch.device("cpu")


class WeightPatch(NamedTuple):
    """One adapter's contribution to one parameter (compared by adapter identity)."""

    strength: float
    adapter: Adapter
    offset: tuple[int, int, int] | None = None  # (dim, start, length) of a packed weight


PatchSet = Mapping[str, Sequence[WeightPatch]]


def _signature(patches: PatchSet) -> tuple:
    return tuple(sorted(((name, tuple(entries)) for name, entries in patches.items() if entries),
                        key=lambda item: item[0]))


def patched_weight(original: Tensor, entries: Sequence[WeightPatch]) -> Tensor:
    """`W + Σ strength · ΔW` (slices for packed weights), computed in float32, returned in W's dtype."""
    weight = original.to(torch.float32, copy=True)
    for strength, adapter, offset in entries:
        if strength == 0.0:
            continue
        target = weight.narrow(*offset) if offset is not None else weight
        target += strength * adapter.delta(target.shape, torch.float32, weight.device)
    return weight.to(original.dtype)


class WeightPatcher:
    """Owns the original tensors of one module's patched parameters while patches are in place."""

    def __init__(self, module: nn.Module):
        self.module = module
        self.originals: dict[str, Tensor] = {}
        self.applied: tuple = ()

    def apply(self, patches: PatchSet) -> None:
        """Make the module's weights exactly its originals plus `patches` (no-op if already so)."""
        signature = _signature(patches)
        if signature == self.applied:
            return
        unknown = [name for name, _ in signature if name not in dict(self.module.named_parameters())]
        if unknown:
            raise KeyError(f"weight patches for parameters the model does not have: {unknown[:5]}")
        # Normal tensors even when called under inference_mode, so the weights stay usable anywhere.
        with torch.inference_mode(False), torch.no_grad():
            self.restore()
            parameters = dict(self.module.named_parameters())  # restoring may have replaced some
            for name, entries in signature:
                original = parameters[name].data
                self.originals[name] = original.to(_OFFLOAD)
                _set_parameter(self.module, name, patched_weight(dense_weight(original), entries))
        self.applied = signature

    def restore(self) -> None:
        """Put every original tensor back."""
        parameters = dict(self.module.named_parameters())
        with torch.inference_mode(False), torch.no_grad():
            for name, original in self.originals.items():
                _set_parameter(self.module, name, original.to(parameters[name].device))
        self.originals.clear()
        self.applied = ()


def _set_parameter(module: nn.Module, name: str, tensor: Tensor) -> None:
    """Put `tensor` in parameter `name` (a fresh Parameter when one side is packed: they cannot share)."""
    owner_name, _, leaf = name.rpartition(".")
    owner = module.get_submodule(owner_name) if owner_name else module
    parameter = getattr(owner, leaf)
    if parameter.is_mkldnn == tensor.is_mkldnn:
        parameter.data = tensor
    else:
        setattr(owner, leaf, nn.Parameter(tensor, requires_grad=parameter.requires_grad))


def weight_patcher(module: nn.Module) -> WeightPatcher:
    """The patcher that belongs to `module` (created on first use and kept on the module)."""
    patcher = module.__dict__.get(_PATCHER_ATTRIBUTE)
    if patcher is None:
        patcher = WeightPatcher(module)
        module.__dict__[_PATCHER_ATTRIBUTE] = patcher
    return patcher


def apply_weight_patches(module: nn.Module, patches: PatchSet | None) -> None:
    """Bring `module`'s weights to its originals plus `patches` before it runs for one value."""
    if not patches and _PATCHER_ATTRIBUTE not in module.__dict__:
        return  # never patched: nothing to restore
    weight_patcher(module).apply(patches or {})
