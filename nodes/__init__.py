"""Kiln's built-in nodes, one module per area (ARCHITECTURE.md "Node contract").

Each module in :data:`BUILTIN_MODULES` exports ``NODE_CLASS_MAPPINGS`` and
``NODE_DISPLAY_NAME_MAPPINGS`` in ComfyUI's V1 class contract (comfy-compat §7.1). The server
imports them in this order before any plugin, so plugins cannot shadow a built-in name.
Importing this package stays cheap: no module here imports torch at top level.
"""

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
