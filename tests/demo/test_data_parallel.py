"""tools/data_parallel.py: processes that share a batch train as one model would on the whole batch."""

from __future__ import annotations

import torch

from tests.helpers import data_parallel_members as members
from tools import data_parallel


def test_averaged_gradients_equal_the_gradient_of_the_whole_batch():
    gradients = data_parallel.launch(2, members.averaged_gradient, 8)
    inputs, targets = members.example_batch(8)
    model = members.example_model()
    (model(inputs) - targets).square().mean().backward()
    for averaged, parameter in zip(gradients, model.parameters(), strict=True):
        torch.testing.assert_close(averaged, parameter.grad)


def test_gathered_rows_are_complete_in_order_and_computed_once_each():
    rows = data_parallel.launch(2, members.gathered_rows, 5)
    assert rows[:, 0].tolist() == [0, 1, 2, 3, 4]
    assert rows[:, 1].tolist() == [0, 0, 0, 1, 1]


def test_every_process_takes_the_leaders_decision():
    assert data_parallel.launch(2, members.leader_values) == [10.0, 10.0]


def test_weights_that_drift_apart_are_noticed():
    assert data_parallel.launch(2, members.drift_is_noticed) == (True, False)


def test_a_large_result_comes_back_whole():
    assert data_parallel.launch(2, members.large_result, 256).shape == (256 * 1024,)  # 2 MB


def test_one_process_runs_the_function_directly():
    assert data_parallel.launch(1, members.gathered_rows, 3)[:, 1].tolist() == [0, 0, 0]
    assert data_parallel.share(7) == 7
