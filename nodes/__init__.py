"""Kiln's built-in nodes, one module per area (ARCHITECTURE.md "Node contract").

Each module in :data:`BUILTIN_MODULES` exports ``NODE_CLASS_MAPPINGS`` and
``NODE_DISPLAY_NAME_MAPPINGS`` in ComfyUI's V1 class contract (comfy-compat §7.1). The server
imports them in this order before any plugin, so plugins cannot shadow a built-in name.
Importing this package stays cheap: no module here imports torch at top level.

For ComfyUI plugins, which ``import nodes`` as they would ComfyUI's ``nodes.py``
(comfy-compat §15 item 7), this package also offers ``NODE_CLASS_MAPPINGS`` and
``NODE_DISPLAY_NAME_MAPPINGS`` as live read-only views of the running server's registry
(built lazily by ``__getattr__``, through ``comfy_compat/kiln_host.py``) and
``interrupt_processing``.
"""

from __future__ import annotations

from typing import Any

_REGISTRY_VIEWS = {"NODE_CLASS_MAPPINGS": "classes", "NODE_DISPLAY_NAME_MAPPINGS": "display_names"}

MAX_RESOLUTION = 16384
"""Largest width/height a node accepts (ComfyUI's ``nodes.MAX_RESOLUTION``)."""

BUILTIN_MODULES: tuple[str, ...] = (
    "nodes.image",
    "nodes.mask",
    "nodes.primitives",
    "nodes.image_io",
    "nodes.loaders",
    "nodes.conditioning",
    "nodes.latent",
    "nodes.sampling",
    "nodes.vae",
    "nodes.lora",
    "nodes.controlnet",
    "nodes.preprocessors",
    "nodes.upscale",
    "nodes.inpaint",
    "nodes.image_compose",
)
"""Dotted names of the built-in node modules, in registration order."""


def __getattr__(name: str) -> Any:
    """``nodes.NODE_CLASS_MAPPINGS`` and core classes such as ``nodes.KSampler`` for plugins.

    ComfyUI plugins reach core nodes through its ``nodes`` module; here both resolve against
    the running registry at the moment of access.
    """
    try:
        import kiln_host  # comfy_compat/ is on sys.path once a server prepares plugin loading
    except ImportError:
        raise AttributeError(f"nodes.{name} exists only inside a Kiln server (ComfyUI shims not loaded)") from None
    if name in _REGISTRY_VIEWS:
        return kiln_host.RegistryView(_REGISTRY_VIEWS[name])
    try:
        registry = kiln_host.current_registry() if name[:1].isupper() else None
    except RuntimeError:
        registry = None  # read before the server registered its nodes
    node_class = registry.classes.get(name) if registry is not None else None
    if node_class is None:
        raise AttributeError(f"module 'nodes' has no attribute {name!r}")
    return node_class


def interrupt_processing(value: bool = True) -> None:
    """Ask the running prompt to stop (ComfyUI's ``nodes.interrupt_processing``, §6.9)."""
    from comfy.model_management import interrupt_current_processing  # the shim in comfy_compat/

    interrupt_current_processing(value)
