"""ControlNets and T2I-Adapters: the networks, their file layouts, and the CONTROL_NET value."""

from diffusion.controlnet.control import ControlBase, ControlNet
from diffusion.controlnet.load import load_controlnet

__all__ = ["ControlBase", "ControlNet", "load_controlnet"]
