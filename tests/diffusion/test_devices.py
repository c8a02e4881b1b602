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


# -- CPU precision -------------------------------------------------------------------------


@pytest.mark.parametrize(("flags", "fast"), [
    ({"avx512f", "amx_tile", "amx_bf16"}, True),    # Sapphire Rapids
    ({"avx512f", "avx512_bf16"}, True),             # Cooper Lake, Zen 4
    ({"avx2", "fma", "avx512f"}, False),            # Skylake-SP: bf16 only emulated
    (set(), False),
])
def test_fast_bf16_is_told_by_the_amx_or_avx512_bf16_flags(flags, fast):
    from diffusion.devices import cpu_has_fast_bf16

    assert cpu_has_fast_bf16(flags) is fast


def test_cpu_flags_are_read_from_the_first_cpu_in_cpuinfo(tmp_path):
    from diffusion.devices import cpu_flags

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx512_bf16\n\nprocessor\t: 1\nflags\t\t: fpu\n")
    assert cpu_flags(cpuinfo) == {"fpu", "sse2", "avx512_bf16"}
    assert cpu_flags(tmp_path / "missing") == frozenset()


def test_cpu_precision_choices(monkeypatch):
    import diffusion.devices as devices

    assert devices.cpu_compute_dtype("bf16") == torch.bfloat16
    assert devices.cpu_compute_dtype("fp32") == torch.float32
    monkeypatch.setattr(devices, "cpu_has_fast_bf16", lambda flags=None: True)
    assert devices.cpu_compute_dtype("auto") == torch.bfloat16
    monkeypatch.setattr(devices, "cpu_has_fast_bf16", lambda flags=None: False)
    assert devices.cpu_compute_dtype("auto") == torch.float32
    with pytest.raises(ValueError, match="fp16"):
        devices.cpu_compute_dtype("fp16")


def test_bf16_weights_are_stored_once_in_bf16_channels_last_and_fp32_keeps_the_files():
    bf16 = DeviceManager(cpu=True, cpu_dtype=torch.bfloat16)
    assert bf16.storage_dtype(bf16.compute_dtype) == torch.bfloat16
    assert bf16.storage_dtype(bf16.vae_dtype) == torch.bfloat16
    assert bf16.conv_memory_format(bf16.compute_dtype) == torch.channels_last
    fp32 = DeviceManager(cpu=True, cpu_dtype=torch.bfloat16, force_fp32=True)
    assert fp32.storage_dtype(fp32.compute_dtype) is None and fp32.storage_dtype(fp32.vae_dtype) is None
    assert fp32.conv_memory_format(fp32.compute_dtype) == torch.contiguous_format


def test_the_text_encoder_computes_in_float32_on_the_cpu():
    assert DeviceManager(cpu=True, cpu_dtype=torch.bfloat16).text_encoder_dtype == torch.float32
