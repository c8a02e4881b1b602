"""``import folder_paths`` for ComfyUI plugins, backed by Kiln's ``engine.folders.ModelFolders``.

Implements the commonly used part of ComfyUI's ``folder_paths`` module API (comfy-compat
§11.1): folder lookups, file lists, output/input/temp/user directories, annotated names
(``"name.png [output]"``) and ``get_save_image_path``. Module attributes such as
``models_dir`` or ``folder_names_and_paths`` are computed on access (PEP 562) from the
installed server's folders, so they are never stale copies.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any

from kiln_host import current_resources

supported_pt_extensions: set[str] = {".ckpt", ".pt", ".pt2", ".bin", ".pth", ".safetensors", ".pkl", ".sft"}

_ANNOTATIONS = {"[output]": "output", "[input]": "input", "[temp]": "temp"}


def _folders() -> Any:
    return current_resources()["folders"]


def __getattr__(name: str) -> Any:
    computed = {
        "base_path": lambda: str(_folders().base_dir),
        "models_dir": lambda: str(Path(_folders().base_dir) / "models"),
        "output_directory": get_output_directory,
        "input_directory": get_input_directory,
        "temp_directory": get_temp_directory,
        "user_directory": get_user_directory,
        "folder_names_and_paths": _folder_names_and_paths,
    }
    if name in computed:
        return computed[name]()
    raise AttributeError(f"module 'folder_paths' has no attribute {name!r}")


def _folder_names_and_paths() -> dict[str, tuple[list[str], set[str]]]:
    """A snapshot in ComfyUI's shape ``{key: ([paths], {extensions})}``; edits do not stick."""
    folders = _folders()
    return {key: ([str(p) for p in folders.paths(key)], set(folders.extensions(key)))
            for key in folders.folder_keys()}


def map_legacy(folder_name: str) -> str:
    return {"unet": "diffusion_models", "clip": "text_encoders"}.get(folder_name, folder_name)


def get_folder_paths(folder_name: str) -> list[str]:
    return [str(p) for p in _folders().paths(map_legacy(folder_name))]


def add_model_folder_path(folder_name: str, full_folder_path: str, is_default: bool = False) -> None:
    _folders().add_path(map_legacy(folder_name), Path(full_folder_path), first=is_default)


def get_filename_list(folder_name: str) -> list[str]:
    return list(_folders().list_files(map_legacy(folder_name)))


def get_full_path(folder_name: str, filename: str) -> str | None:
    path = _folders().full_path(map_legacy(folder_name), filename)
    return None if path is None else str(path)


def get_full_path_or_raise(folder_name: str, filename: str) -> str:
    path = get_full_path(folder_name, filename)
    if path is None:
        raise FileNotFoundError(f"Model in folder '{folder_name}' with filename '{filename}' not found.")
    return path


def filter_files_extensions(files: list[str], extensions: set[str] | list[str]) -> list[str]:
    wanted = {e.lower() for e in extensions}
    return sorted(f for f in files if not wanted or os.path.splitext(f)[1].lower() in wanted)


def get_output_directory() -> str:
    return str(_folders().output_dir)


def get_input_directory() -> str:
    return str(_folders().input_dir)


def get_temp_directory() -> str:
    return str(_folders().temp_dir)


def get_user_directory() -> str:
    return str(_folders().user_dir)


def get_directory_by_type(type_name: str) -> str | None:
    return {"output": get_output_directory, "input": get_input_directory,
            "temp": get_temp_directory}.get(type_name, lambda: None)()


def annotated_filepath(name: str) -> tuple[str, str | None]:
    """Split ``"x.png [output]"`` into ``("x.png", output_dir)``; no annotation gives None."""
    for suffix, kind in _ANNOTATIONS.items():
        if name.endswith(" " + suffix):
            return name[: -len(suffix) - 1], get_directory_by_type(kind)
    return name, None


def get_annotated_filepath(name: str, default_dir: str | None = None) -> str:
    name, base_dir = annotated_filepath(name)
    if base_dir is None:
        base_dir = default_dir if default_dir is not None else get_input_directory()
    return os.path.join(base_dir, name)


def exists_annotated_filepath(name: str) -> bool:
    return os.path.exists(get_annotated_filepath(name))


def get_input_subfolders() -> list[str]:
    root = Path(get_input_directory())
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_dir())


def _expand_prefix_variables(prefix: str, width: int, height: int) -> str:
    """ComfyUI's ``%width%``/``%height%``/``%year%``... substitutions in a filename prefix."""
    now = time.localtime()
    values = {"width": str(width), "height": str(height), "year": str(now.tm_year),
              "month": f"{now.tm_mon:02d}", "day": f"{now.tm_mday:02d}", "hour": f"{now.tm_hour:02d}",
              "minute": f"{now.tm_min:02d}", "second": f"{now.tm_sec:02d}"}
    return re.sub(r"%(width|height|year|month|day|hour|minute|second)%", lambda m: values[m.group(1)], prefix)


def get_save_image_path(filename_prefix: str, output_dir: str, image_width: int = 0,
                        image_height: int = 0) -> tuple[str, str, int, str, str]:
    """Return ``(full_output_folder, filename, counter, subfolder, filename_prefix)``.

    The counter is one past the highest ``<filename>_<NNNNN>_`` already in the folder, so a
    node writes ``f"{filename}_{counter:05}_.png"`` as SaveImage does.
    """
    filename_prefix = _expand_prefix_variables(filename_prefix, image_width, image_height)
    subfolder = os.path.dirname(os.path.normpath(filename_prefix))
    filename = os.path.basename(os.path.normpath(filename_prefix))
    full_output_folder = os.path.join(output_dir, subfolder)
    if os.path.commonpath((os.path.abspath(output_dir), os.path.abspath(full_output_folder))) != os.path.abspath(output_dir):
        raise ValueError(f"Saving image outside the output folder is not allowed: {filename_prefix}")
    os.makedirs(full_output_folder, exist_ok=True)
    pattern = re.compile(re.escape(filename) + r"_(\d+)_", re.IGNORECASE)
    counters = [int(m.group(1)) for f in os.listdir(full_output_folder) if (m := pattern.match(f))]
    return full_output_folder, filename, max(counters, default=0) + 1, subfolder, filename_prefix
