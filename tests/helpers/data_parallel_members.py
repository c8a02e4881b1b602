"""Functions that ``tests/demo/test_data_parallel.py`` runs in several processes (spawned processes
import them by module name, which a test module under ``--import-mode=importlib`` does not have)."""

from __future__ import annotations

import torch
from torch import nn

from tools import data_parallel

FEATURES = 3


def example_batch(rows: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(5)
    return torch.randn(rows, FEATURES, generator=generator), torch.randn(rows, 1, generator=generator)


def example_model() -> nn.Linear:
    torch.manual_seed(11)
    return nn.Linear(FEATURES, 1)


def averaged_gradient(rows: int) -> list[torch.Tensor]:
    """Each process: the mean-square loss over its own half of the batch, then ``average_gradients``."""
    inputs, targets = example_batch(rows)
    half = rows // data_parallel.world()
    mine = slice(data_parallel.rank() * half, (data_parallel.rank() + 1) * half)
    model = example_model()
    (model(inputs[mine]) - targets[mine]).square().mean().backward()
    data_parallel.average_gradients(model.parameters())
    return [parameter.grad.clone() for parameter in model.parameters()]


def gathered_rows(count: int) -> torch.Tensor:
    """Rows ``[index, rank that computed it]``."""
    return data_parallel.gather_rows(
        lambda start, end: torch.tensor([[row, data_parallel.rank()] for row in range(start, end)]), count)


def leader_values() -> list[float]:
    value = data_parallel.leader_value(10.0 + data_parallel.rank())
    copies = [torch.zeros(1, dtype=torch.float64) for _ in range(data_parallel.world())]
    torch.distributed.all_gather(copies, torch.tensor([value], dtype=torch.float64))
    return [copy.item() for copy in copies]


def drift_is_noticed() -> tuple[bool, bool]:
    model = example_model()
    together = data_parallel.in_step(model)
    with torch.no_grad():
        model.bias += data_parallel.rank()
    return together, data_parallel.in_step(model)


def large_result(rows: int) -> torch.Tensor:
    return torch.arange(rows * 1024, dtype=torch.float64)
