"""Weight deltas of low-rank adapters: LoRA, LoCon, LoHa, LoKr and full differences.

Each adapter turns the tensors one LoRA file holds for one layer into ΔW, the change to
that layer's weight, so that the patched weight is `W + strength · ΔW`:

* LoRA (Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models"), and its
  convolutional form LoCon: `ΔW = (alpha / rank) · up @ down`, with an optional Tucker core
  `mid` for k×k convolutions (LyCORIS `lora_mid`).
* LoHa (Hyeon-Woo et al. 2022, "FedPara"; LyCORIS): `ΔW = (alpha / rank) · (w1a @ w1b) ⊙ (w2a @ w2b)`,
  optionally with Tucker cores `t1`, `t2`.
* LoKr (LyCORIS): `ΔW = (alpha / rank) · w1 ⊗ w2` (Kronecker product), each factor full or low rank.
* Full: a stored `diff` (and `diff_b` for the bias).

`rank` is the inner dimension of the low-rank factors; without `alpha` the scale is 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


def _scale(alpha: Tensor | float | None, rank: int) -> float:
    return 1.0 if alpha is None else float(alpha) / rank


def _tucker(core: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """Tucker rebuild `Σ_ij a[i, p] · core[i, j, k, l] · b[j, r]` -> `[p, r, k, l]` (LyCORIS' layout).

    `a` is `[rank, out]` and `b` `[rank, in]`.
    """
    return torch.einsum("ijkl,ip,jr->prkl", core, a.flatten(1), b.flatten(1))


@dataclass(eq=False)
class LoRA:
    """`up @ down` (plus a Tucker `mid`), scaled by alpha / rank. Identity-compared, as a patch key.

    Attributes:
        up: `[out, rank]` or `[out, rank, 1, 1]`.
        down: `[rank, in]` or `[rank, in, kh, kw]` (or `[rank, in, 1, 1]` with a `mid`).
        alpha: the trained alpha, or None (scale 1).
        mid: `[rank, rank, kh, kw]` Tucker core of a LoCon convolution, or None.
    """

    up: Tensor
    down: Tensor
    alpha: float | None = None
    mid: Tensor | None = None

    @property
    def rank(self) -> int:
        return int(self.down.shape[0])

    def delta(self, shape: torch.Size, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu") -> Tensor:
        up = self.up.to(device, dtype).flatten(1)
        down = self.down.to(device, dtype)
        if self.mid is not None:
            mid = self.mid.to(device, dtype)
            # [out, r] · [r, r, k, k] · [r, in] -> [out, in, k, k]
            weight = torch.einsum("ijkl,pi,jr->prkl", mid, up, down.flatten(1))
        else:
            weight = up @ down.flatten(1)
        return weight.reshape(shape) * _scale(self.alpha, self.rank)


@dataclass(eq=False)
class LoHa:
    """Hadamard product of two low-rank products (LyCORIS `hada_*` tensors)."""

    w1a: Tensor
    w1b: Tensor
    w2a: Tensor
    w2b: Tensor
    alpha: float | None = None
    t1: Tensor | None = None
    t2: Tensor | None = None

    @property
    def rank(self) -> int:
        return int(self.w1b.shape[0])

    def delta(self, shape: torch.Size, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu") -> Tensor:
        w1a, w1b, w2a, w2b = (t.to(device, dtype) for t in (self.w1a, self.w1b, self.w2a, self.w2b))
        if self.t1 is not None and self.t2 is not None:
            w1 = _tucker(self.t1.to(device, dtype), w1a, w1b)
            w2 = _tucker(self.t2.to(device, dtype), w2a, w2b)
        else:
            w1 = w1a @ w1b
            w2 = w2a @ w2b
        return (w1 * w2).reshape(shape) * _scale(self.alpha, self.rank)


@dataclass(eq=False)
class LoKr:
    """Kronecker product `w1 ⊗ w2`, each given whole or as a low-rank pair (LyCORIS `lokr_*`)."""

    w1: Tensor | None = None
    w1a: Tensor | None = None
    w1b: Tensor | None = None
    w2: Tensor | None = None
    w2a: Tensor | None = None
    w2b: Tensor | None = None
    t2: Tensor | None = None
    alpha: float | None = None

    @property
    def rank(self) -> int | None:
        for b in (self.w1b, self.w2b):
            if b is not None:
                return int(b.shape[0])
        return None

    def delta(self, shape: torch.Size, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu") -> Tensor:
        def factor(whole, a, b, core=None):
            if whole is not None:
                return whole.to(device, dtype)
            if core is not None:
                return _tucker(core.to(device, dtype), a.to(device, dtype), b.to(device, dtype))
            return a.to(device, dtype) @ b.to(device, dtype)

        w1 = factor(self.w1, self.w1a, self.w1b)
        w2 = factor(self.w2, self.w2a, self.w2b, self.t2)
        if w2.ndim == 4 and w1.ndim == 2:
            w1 = w1[:, :, None, None]
        # Only the low-rank factors are scaled by alpha; whole factors carry their own scale.
        rank = self.rank
        scale = _scale(self.alpha, rank) if rank is not None else 1.0
        return torch.kron(w1, w2).reshape(shape) * scale


@dataclass(eq=False)
class FullDiff:
    """A stored full-size difference (`diff`, `diff_b`)."""

    diff: Tensor

    def delta(self, shape: torch.Size, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu") -> Tensor:
        return self.diff.to(device, dtype).reshape(shape)


Adapter = LoRA | LoHa | LoKr | FullDiff
