"""Kiln's example custom node package: a template for plugin authors.

A plugin is a folder in ``custom_nodes/`` whose ``__init__.py`` exports
``NODE_CLASS_MAPPINGS`` (class key -> node class), optionally ``NODE_DISPLAY_NAME_MAPPINGS``
and ``WEB_DIRECTORY`` (a folder of browser ``.js`` extensions, served at
``/extensions/example/...``). Nodes follow ComfyUI's V1 class contract, so a plugin written
for ComfyUI loads unchanged, and this one would load in ComfyUI too.

What each node shows:

* ``ExampleWidgets``    one widget of every kind: INT, FLOAT, STRING, BOOLEAN, combo, seed;
* ``ExampleLazySwitch`` a lazy input: only the branch that is chosen gets computed;
* ``ExampleSplitLines`` a list output (``OUTPUT_IS_LIST``): downstream nodes run once per line;
* ``ExampleCountdown``  progress reporting with ``comfy.utils.ProgressBar`` (and interrupts);
* ``ExampleShowText``   an output node that sends text to the editor (``{"ui": {"text": ...}}``).
"""

from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

WEB_DIRECTORY = "./web"

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
