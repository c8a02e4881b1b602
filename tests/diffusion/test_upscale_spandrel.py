"""The spandrel path of the upscalers, and what happens where spandrel does not import.

spandrel imports torchvision when it is imported, and PyPI's torchvision does not import beside
the CPU build of torch used here. Only two torchvision names are on its import chain
(`torchvision.transforms.functional.InterpolationMode`/`rotate` for LaMa, `normalize` for
RestoreFormer), and no super-resolution network calls them; so these tests import spandrel with a
stand-in module that provides those names (raising if called), and remove both afterwards.

References: spandrel's own model call on the same file (it is the library ComfyUI uses), and for
ESRGAN and SRVGGNetCompact, Kiln's built-in networks must agree with spandrel's.
"""

from __future__ import annotations

import contextlib
import enum
import importlib.util
import sys
from collections.abc import Iterator
from types import ModuleType

import pytest
import torch
from safetensors.torch import save_file

from diffusion.devices import DeviceManager
from diffusion.upscale.architectures import BUILTIN_ARCHITECTURES, guess_architecture
from diffusion.upscale.model import builtin_upscale_model, load_upscale_model, upscale_image
from diffusion.upscale.rrdbnet import RRDBNet
from diffusion.upscale.srvgg import SRVGGNetCompact


def torchvision_stand_in() -> dict[str, ModuleType]:
    """Modules `torchvision`, `.transforms`, `.transforms.functional` with the names spandrel imports."""

    class InterpolationMode(enum.Enum):
        NEAREST = "nearest"
        BILINEAR = "bilinear"
        BICUBIC = "bicubic"

    def not_in_the_stand_in(*args, **kwargs):
        raise NotImplementedError("torchvision stand-in: no upscaler tested here calls this")

    functional = ModuleType("torchvision.transforms.functional")
    functional.InterpolationMode = InterpolationMode
    functional.rotate = not_in_the_stand_in
    functional.normalize = not_in_the_stand_in
    transforms = ModuleType("torchvision.transforms")
    transforms.functional = functional
    torchvision = ModuleType("torchvision")
    torchvision.transforms = transforms
    return {"torchvision": torchvision, "torchvision.transforms": transforms,
            "torchvision.transforms.functional": functional}


def _is_spandrel_or_torchvision(name: str) -> bool:
    return name in ("spandrel", "torchvision") or name.startswith(("spandrel.", "torchvision."))


@contextlib.contextmanager
def spandrel_importable() -> Iterator[ModuleType]:
    """spandrel, imported with the torchvision stand-in where the real torchvision does not import.

    On leaving, every spandrel and torchvision module imported here is removed again, so that
    other tests see this interpreter as it was.
    """
    assert importlib.util.find_spec("spandrel") is not None, "spandrel is a dependency: requirements-nodeps.txt"
    saved = {name: module for name, module in sys.modules.items() if _is_spandrel_or_torchvision(name)}
    try:
        try:
            import torchvision  # noqa: F401  (GPU installs have a working one)
        except Exception:
            for name in [name for name in sys.modules if name.split(".")[0] == "torchvision"]:
                del sys.modules[name]
            sys.modules.update(torchvision_stand_in())
        import spandrel

        yield spandrel
    finally:
        for name in [name for name in sys.modules if _is_spandrel_or_torchvision(name)]:
            del sys.modules[name]
        sys.modules.update(saved)


@pytest.fixture(scope="module")
def spandrel() -> Iterator[ModuleType]:
    with spandrel_importable() as module:
        yield module


def random_state(module: torch.nn.Module, seed: int, std: float | None = 0.1) -> dict[str, torch.Tensor]:
    """The module's tensors, redrawn from N(0, std²) (std None: the module's own initialisation)."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, value in module.state_dict().items():
        if std is not None and value.is_floating_point():
            value = torch.randn(value.shape, generator=generator) * std
        state[key] = value.detach().clone().contiguous()
    return state


def tiny_swinir(spandrel: ModuleType) -> torch.nn.Module:
    """A 6k-parameter SwinIR (Liang et al. 2021) x2: one stage of one Swin block, 4-px windows."""
    from spandrel.architectures.SwinIR import SwinIR

    torch.manual_seed(0)
    return SwinIR(img_size=16, embed_dim=12, depths=[1], num_heads=[2], window_size=4, mlp_ratio=2.0,
                  upscale=2, upsampler="pixelshuffledirect")


def tiny_spandrel_only_models(spandrel: ModuleType) -> dict[str, torch.nn.Module]:
    """Small random networks of architectures that only spandrel implements, by spandrel's name."""
    from spandrel.architectures.HAT import HAT
    from spandrel.architectures.OmniSR import OmniSR
    from spandrel.architectures.SPAN import SPAN

    torch.manual_seed(1)
    return {
        "SwinIR": tiny_swinir(spandrel),
        "HAT": HAT(img_size=16, embed_dim=12, depths=[1], num_heads=[2], window_size=4, compress_ratio=3,
                   squeeze_factor=3, mlp_ratio=2.0, upscale=2, upsampler="pixelshuffle"),
        "SPAN": SPAN(num_in_ch=3, num_out_ch=3, feature_channels=8, upscale=2),
        "OmniSR": OmniSR(num_feat=8, window_size=4, up_scale=2),
    }


def save(state: dict[str, torch.Tensor], path) -> str:
    save_file(state, str(path))
    return str(path)


def test_a_swinir_file_runs_through_spandrel_exactly_as_spandrel_runs_it(spandrel, tmp_path):
    path = save(random_state(tiny_swinir(spandrel), seed=0, std=None), tmp_path / "2x-tiny-swinir.safetensors")
    model = load_upscale_model(path)
    assert (model.loader, model.architecture, model.scale) == ("spandrel", "SwinIR", 2)
    image = torch.rand(2, 20, 28, 3, generator=torch.Generator().manual_seed(0))
    reports = []
    out = upscale_image(model, image, DeviceManager(cpu=True), progress=lambda *report: reports.append(report))
    reference = spandrel.ModelLoader().load_from_file(path).eval()
    expected = torch.cat([reference(image[i:i + 1].movedim(-1, 1)) for i in range(2)]).movedim(1, -1)
    assert out.shape == (2, 40, 56, 3)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-6)
    assert 0.5 < ((out > 0) & (out < 1)).float().mean()  # random weights, yet most pixels unclipped
    assert reports == [(1, 2), (2, 2)]


@pytest.mark.parametrize("network, spandrel_name", [
    (lambda: RRDBNet(3, 3, nf=8, gc=32, nb=1, upsample_steps=1), "ESRGAN"),  # spandrel assumes gc = 32
    (lambda: SRVGGNetCompact(3, 3, nf=8, num_conv=2, scale=2), "RealESRGAN Compact"),
])
def test_esrgan_and_compact_files_go_through_spandrel_and_match_kilns_own_networks(spandrel, tmp_path, network,
                                                                                  spandrel_name):
    state = random_state(network(), seed=3)
    model = load_upscale_model(save(state, tmp_path / "2x-model.safetensors"))
    assert (model.loader, model.architecture, model.scale) == ("spandrel", spandrel_name, 2)
    builtin = builtin_upscale_model(state)
    image = torch.rand(1, 3, 12, 10, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        torch.testing.assert_close(model(image), builtin.model(image).clamp(0, 1), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("architecture", ["SwinIR", "HAT", "SPAN", "OmniSR"])
def test_without_spandrel_other_architectures_are_refused_naming_file_and_spandrel(spandrel, tmp_path, monkeypatch,
                                                                                   architecture):
    network = tiny_spandrel_only_models(spandrel)[architecture]
    state = random_state(network, seed=5, std=None)
    path = save(state, tmp_path / f"4x-{architecture}.safetensors")
    assert load_upscale_model(path).architecture == architecture  # spandrel knows it ...
    assert guess_architecture(state) == architecture  # ... and so do Kiln's marker tensor names

    monkeypatch.setitem(sys.modules, "spandrel", None)  # as where torchvision does not import
    with pytest.raises(ValueError) as refused:
        load_upscale_model(path)
    message = str(refused.value)
    assert message.startswith(f"{path}: looks like a {architecture} model")
    for needed in (*BUILTIN_ARCHITECTURES, "spandrel", "torchvision"):
        assert needed in message


def test_without_spandrel_esrgan_still_loads_with_kilns_own_code(spandrel, tmp_path, monkeypatch):
    path = save(random_state(RRDBNet(3, 3, nf=8, gc=32, nb=1, upsample_steps=2), seed=6), tmp_path / "4x.safetensors")
    assert load_upscale_model(path).loader == "spandrel"
    monkeypatch.setitem(sys.modules, "spandrel", None)
    model = load_upscale_model(path)
    assert (model.loader, model.architecture, model.scale) == ("kiln", "RRDBNet", 4)


def test_a_file_spandrel_does_not_know_either_is_refused_with_its_name(spandrel, tmp_path):
    path = save({"foo.weight": torch.zeros(2, 2)}, tmp_path / "mystery.safetensors")
    with pytest.raises(ValueError, match="mystery.safetensors: neither spandrel nor Kiln"):
        load_upscale_model(path)


def test_the_stand_in_leaves_no_trace():
    def loaded() -> dict[str, object]:
        return {name: module for name, module in sys.modules.items() if _is_spandrel_or_torchvision(name)}

    before = loaded()
    with spandrel_importable() as module:
        assert module.ModelLoader is not None
    assert loaded() == before
