"""Data-parallel training over CPU processes: every process takes its share of each batch, and the
gradients are averaged before the (identical) optimiser steps.

A second torch thread makes no training step of the demo models faster on this project's two-core
CPU (``tools/bench_training.py``: 0.93 to 0.99 of the one-thread time), because their operations are
too small to split; two one-thread processes, each with its own half of the work, run side by side.
Every process starts from the same seed, so the weights start equal and stay equal.

``launch`` runs a function in ``processes`` processes (or directly, for one); inside it ``rank`` and
``world`` say which process this is, and the helpers below are no-ops in a single process.
"""

from __future__ import annotations

import pickle
import socket
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import Tensor, nn


def launch(processes: int, target: Callable[..., Any], *args: Any) -> Any:
    """``target(*args)`` in ``processes`` one-rank-each processes; returns what the leader returned."""
    if processes <= 1:
        return target(*args)
    with tempfile.TemporaryDirectory(prefix="kiln-parallel-") as folder:
        result_file = Path(folder) / "leader.pickle"
        mp.spawn(_member, args=(processes, _free_port(), target, args, result_file), nprocs=processes, join=True)
        return pickle.loads(result_file.read_bytes())


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _member(rank: int, world_size: int, port: int, target: Callable[..., Any], args: tuple,
            result_file: Path) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size)
    try:
        result = target(*args)
        if rank == 0:
            # A file, not a queue: a queue's pipe blocks a large result until the parent reads, and the
            # parent reads only after every process has ended.
            result_file.write_bytes(pickle.dumps(result))
    finally:
        dist.destroy_process_group()


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def world() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def is_leader() -> bool:
    return rank() == 0


def barrier() -> None:
    if world() > 1:
        dist.barrier()


def share(total: int) -> int:
    """This process's part of a batch of ``total`` items (the first processes take the remainder;
    averaged gradients equal the whole batch's only when the parts are equal)."""
    return total // world() + (1 if rank() < total % world() else 0)


def average_gradients(parameters: Iterable[nn.Parameter]) -> None:
    """Replace each gradient by its mean over the processes (parameters without one are skipped;
    every process must have gradients for the same parameters)."""
    if world() == 1:
        return
    gradients = [parameter.grad for parameter in parameters if parameter.grad is not None]
    flat = torch.cat([gradient.reshape(-1) for gradient in gradients])
    dist.all_reduce(flat)
    flat /= world()
    offset = 0
    for gradient in gradients:
        gradient.copy_(flat[offset : offset + gradient.numel()].view_as(gradient))
        offset += gradient.numel()


def leader_value(value: float) -> float:
    """The leader's ``value`` on every process: decisions such as "the time budget is spent" must be
    the same everywhere, or one process would wait for the others forever."""
    if world() == 1:
        return value
    carrier = torch.tensor([value], dtype=torch.float64)
    dist.broadcast(carrier, src=0)
    return float(carrier.item())


def gather_rows(compute: Callable[[int, int], Tensor], count: int) -> Tensor:
    """``compute(start, end)`` over rows ``0 .. count-1``, each process computing its own slice; the
    whole result, ``[count, ...]``, on every process."""
    if world() == 1:
        return compute(0, count)
    chunk = -(-count // world())
    start, end = min(rank() * chunk, count), min((rank() + 1) * chunk, count)
    part = compute(start, end) if end > start else compute(count - 1, count)[:0]
    padded = torch.zeros((chunk, *part.shape[1:]), dtype=part.dtype)
    padded[: part.shape[0]] = part
    parts = [torch.empty_like(padded) for _ in range(world())]
    dist.all_gather(parts, padded)
    return torch.cat(parts)[:count]


def in_step(module: nn.Module) -> bool:
    """Whether every process holds the same weights in ``module``, compared by a float64 sum of each
    tensor: cheap to exchange, and changed by any drift short of one that exactly cancels out."""
    if world() == 1:
        return True
    fingerprint = torch.stack([tensor.detach().double().sum() for tensor in module.state_dict().values()])
    copies = [torch.empty_like(fingerprint) for _ in range(world())]
    dist.all_gather(copies, fingerprint)
    return all(torch.equal(copy, fingerprint) for copy in copies)
