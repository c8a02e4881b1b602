"""The example plugin's nodes (see the package docstring for what each one demonstrates)."""

from __future__ import annotations

import time

import comfy.utils  # Kiln's shim: progress goes to the running node's websocket client

# "*" accepts any type; the backend's type check needs a str whose != never fails
# (ComfyUI's comfy_types.IO.ANY trick, comfy-compat §7.1).


class AnyType(str):
    def __ne__(self, other: object) -> bool:
        return False


ANY = AnyType("*")


class ExampleWidgets:
    """Every widget kind, summarised into one STRING."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "count": ("INT", {"default": 3, "min": 1, "max": 100, "step": 1, "tooltip": "an integer"}),
                "strength": ("FLOAT", {"default": 0.5, "min": 0.0, "max": 1.0, "step": 0.05,
                                       "round": 0.01, "display": "slider"}),
                "text": ("STRING", {"default": "hello", "multiline": True, "placeholder": "some text"}),
                "enabled": ("BOOLEAN", {"default": True, "label_on": "yes", "label_off": "no"}),
                "mode": (["first", "second", "third"], {"default": "second"}),
                "seed": ("INT", {"default": 0, "min": 0, "max": 0xFFFFFFFFFFFFFFFF,
                                 "control_after_generate": True}),
            },
            "optional": {"prefix": ("STRING", {"forceInput": True})},
        }

    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("summary",)
    OUTPUT_TOOLTIPS = ("the widget values as one line",)
    FUNCTION = "summarise"
    CATEGORY = "example"
    DESCRIPTION = "Shows one widget of each kind."

    def summarise(self, count, strength, text, enabled, mode, seed, prefix=""):
        return (f"{prefix}count={count} strength={strength} text={text} enabled={enabled} mode={mode} seed={seed}",)


class ExampleLazySwitch:
    """Passes one of two inputs on; the other is never evaluated (lazy inputs)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "use_first": ("BOOLEAN", {"default": True}),
            "first": (ANY, {"lazy": True}),
            "second": (ANY, {"lazy": True}),
        }}

    RETURN_TYPES = (ANY,)
    RETURN_NAMES = ("value",)
    FUNCTION = "switch"
    CATEGORY = "example"

    def check_lazy_status(self, use_first, first=None, second=None):
        """Name the lazy inputs still needed; the executor computes only those."""
        wanted = "first" if use_first else "second"
        return [wanted] if (first if use_first else second) is None else []

    def switch(self, use_first, first=None, second=None):
        return (first if use_first else second,)


class ExampleSplitLines:
    """A list output: one STRING per non-empty line."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"text": ("STRING", {"default": "one\ntwo\nthree", "multiline": True})}}

    RETURN_TYPES = ("STRING",)
    OUTPUT_IS_LIST = (True,)
    FUNCTION = "split"
    CATEGORY = "example"

    def split(self, text):
        return ([line for line in text.splitlines() if line.strip()],)


class ExampleCountdown:
    """Counts down ``steps`` steps, reporting each through ``comfy.utils.ProgressBar``."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "steps": ("INT", {"default": 5, "min": 1, "max": 1000}),
            "seconds_per_step": ("FLOAT", {"default": 0.05, "min": 0.0, "max": 10.0, "step": 0.01}),
        }}

    RETURN_TYPES = ("INT",)
    FUNCTION = "count"
    CATEGORY = "example"

    def count(self, steps, seconds_per_step):
        bar = comfy.utils.ProgressBar(steps)
        for _ in range(steps):
            time.sleep(seconds_per_step)
            bar.update(1)  # also raises if the user pressed Cancel
        return (steps,)


class ExampleShowText:
    """An output node: its text appears under the node in the editor."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"text": ("STRING", {"forceInput": True})}}

    RETURN_TYPES = ()
    INPUT_IS_LIST = True
    OUTPUT_NODE = True
    FUNCTION = "show"
    CATEGORY = "example"

    def show(self, text):
        return {"ui": {"text": [str(t) for t in text]}}


NODE_CLASS_MAPPINGS = {
    "ExampleWidgets": ExampleWidgets,
    "ExampleLazySwitch": ExampleLazySwitch,
    "ExampleSplitLines": ExampleSplitLines,
    "ExampleCountdown": ExampleCountdown,
    "ExampleShowText": ExampleShowText,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "ExampleWidgets": "Example: every widget",
    "ExampleLazySwitch": "Example: lazy switch",
    "ExampleSplitLines": "Example: split lines (list output)",
    "ExampleCountdown": "Example: countdown (progress)",
    "ExampleShowText": "Example: show text",
}
