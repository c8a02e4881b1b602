"""The device manager is an object (no module state): device choice, dtypes, loading and offloading."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from diffusion.devices import DeviceManager, module_bytes, modules_of


def test_cpu_manager_computes_in_float32_by_default():
    manager = DeviceManager(cpu=True)
    assert manager.device == torch.device("cpu")
    assert manager.compute_dtype == torch.float32 and manager.vae_dtype == torch.float32


def test_bfloat16_on_the_cpu_is_an_opt_in_that_force_fp32_overrides():
    assert DeviceManager(cpu=True, cpu_dtype=torch.bfloat16).compute_dtype == torch.bfloat16
    assert DeviceManager(cpu=True, force_fp32=True, cpu_dtype=torch.bfloat16).compute_dtype == torch.float32


def test_two_managers_do_not_share_state():
    first, second = DeviceManager(cpu=True), DeviceManager(cpu=True)
    first.load(nn.Linear(2, 2))
    assert len(first.loaded_modules()) == 1 and second.loaded_modules() == []


def test_load_accepts_modules_and_values_listing_their_modules():
    class Value:
        def __init__(self):
            self.net = nn.Linear(2, 2)

        def torch_modules(self):
            return [self.net]

    value = Value()
    assert modules_of(value) == [value.net]
    with pytest.raises(TypeError, match="torch_modules"):
        modules_of(object())
    manager = DeviceManager(cpu=True)
    manager.load(value)
    manager.load(value)
    assert manager.loaded_modules() == [value.net]
    manager.unload_all()
    assert manager.loaded_modules() == []


def test_loading_offloads_the_least_recently_used_model_when_memory_runs_short(monkeypatch):
    manager = DeviceManager(cpu=True)
    manager.offload_device = torch.device("meta")  # a device to offload to, observable without a GPU
    first, second = nn.Linear(64, 64), nn.Linear(64, 64)
    manager.reserved_bytes = 1000
    capacity = module_bytes(first) * 3 // 2 + manager.reserved_bytes  # room for one model, not two

    def free(device=None):
        return capacity - sum(module_bytes(m) for m in manager.loaded_modules())

    monkeypatch.setattr(manager, "free_memory", free)
    manager.load(first)
    manager.load(second)
    assert manager.loaded_modules() == [second]
    assert first.weight.device.type == "meta" and second.weight.device.type == "cpu"


def test_inference_turns_autograd_off():
    with DeviceManager(cpu=True).inference():
        assert torch.is_inference_mode_enabled()


def test_out_of_memory_errors_are_recognised():
    manager = DeviceManager(cpu=True)
    assert manager.is_out_of_memory(RuntimeError("CUDA out of memory. Tried to allocate 20.00 MiB"))
    assert not manager.is_out_of_memory(RuntimeError("shape mismatch"))
    assert manager.free_memory() > 0
