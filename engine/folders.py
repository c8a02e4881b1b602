"""Model folders, file listings and the server's input/output/temp/user directories.

Matches ComfyUI's ``folder_paths`` behaviour (comfy-compat §11.1-§11.2) as an object with one
owner (the server) instead of module globals:

* a table of folder keys, each with its directories and accepted extensions, legacy aliases
  (``unet`` -> ``diffusion_models``, ``clip`` -> ``text_encoders``) and shared directories
  (``t2i_adapter`` is listed under ``controlnet``);
* recursive, sorted, extension-filtered listings with ``/`` separators, following symlinks
  inside the folders, skipping ``.git``, cached until a directory's mtime changes;
* ``extra_model_paths.yaml`` loading (named sections, ``base_path``, ``is_default``,
  ``|`` blocks with one path a line, unknown keys create new folders).
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import shutil
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from engine.safepath import UnsafePath, resolve_inside

__all__ = ["ModelFolders", "PT_EXTENSIONS", "LEGACY_ALIASES", "folder_table"]

log = logging.getLogger(__name__)

PT_EXTENSIONS = frozenset({".ckpt", ".pt", ".pt2", ".bin", ".pth", ".safetensors", ".pkl", ".sft"})

LEGACY_ALIASES: Mapping[str, str] = MappingProxyType({"unet": "diffusion_models", "clip": "text_encoders"})

# key -> (subdirectories of models/, extensions); the first subdirectory is the canonical one.
_MODEL_FOLDERS: tuple[tuple[str, tuple[str, ...], frozenset[str]], ...] = (
    ("checkpoints", ("checkpoints",), PT_EXTENSIONS),
    ("configs", ("configs",), frozenset({".yaml"})),
    ("loras", ("loras",), PT_EXTENSIONS),
    ("vae", ("vae",), PT_EXTENSIONS),
    ("text_encoders", ("text_encoders", "clip"), PT_EXTENSIONS),
    ("diffusion_models", ("unet", "diffusion_models"), PT_EXTENSIONS),
    ("clip_vision", ("clip_vision",), PT_EXTENSIONS),
    ("style_models", ("style_models",), PT_EXTENSIONS),
    ("embeddings", ("embeddings",), PT_EXTENSIONS),
    ("diffusers", ("diffusers",), frozenset({"folder"})),
    ("vae_approx", ("vae_approx",), PT_EXTENSIONS),
    ("controlnet", ("controlnet", "t2i_adapter"), PT_EXTENSIONS),
    ("gligen", ("gligen",), PT_EXTENSIONS),
    ("upscale_models", ("upscale_models",), PT_EXTENSIONS),
    ("hypernetworks", ("hypernetworks",), PT_EXTENSIONS),
    ("photomaker", ("photomaker",), PT_EXTENSIONS),
    ("classifiers", ("classifiers",), frozenset({""})),
    ("model_patches", ("model_patches",), PT_EXTENSIONS),
    ("audio_encoders", ("audio_encoders",), PT_EXTENSIONS),
)

# ComfyUI's main.py lets trainers and model-merging nodes save into these output subfolders.
_OUTPUT_MODEL_FOLDERS = ("checkpoints", "clip", "vae", "diffusion_models", "loras")
_PARTIAL_WRITE = re.compile(r"^\..+\.[0-9a-f]{8}\.tmp$")


def partial_write_path(path: Path) -> Path:
    """The hidden name a file is written under before ``os.replace`` moves it to ``path``.

    One shape for every atomic writer, so :meth:`ModelFolders.sweep_partial_writes` can find
    what a crash left behind.
    """
    return path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")


def folder_table(models_dir: Path) -> dict[str, tuple[list[Path], frozenset[str]]]:
    """The default ``{key: ([dirs], extensions)}`` table rooted at ``models_dir``."""
    return {key: ([models_dir / sub for sub in subs], exts) for key, subs, exts in _MODEL_FOLDERS}


@dataclass
class _Listing:
    files: list[str]
    dir_mtimes: dict[Path, float | None] = field(default_factory=dict)


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def _accepts(name: str, extensions: frozenset[str]) -> bool:
    """ComfyUI's filter: an empty set accepts all files; ``""`` matches extension-less files."""
    return not extensions or os.path.splitext(name)[1].lower() in extensions


def _walk(root: Path, extensions: frozenset[str]) -> _Listing:
    """Recursive listing of one root, following symlinks without looping on cycles."""
    listing = _Listing(files=[], dir_mtimes={root: _mtime(root)})
    if not root.is_dir():
        return listing
    seen_real_dirs: set[str] = set()
    for current, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(current)
        if real in seen_real_dirs:
            dirnames[:] = []
            continue
        seen_real_dirs.add(real)
        current_path = Path(current)
        listing.dir_mtimes[current_path] = _mtime(current_path)
        dirnames[:] = sorted(d for d in dirnames if d != ".git")
        relative_dir = current_path.relative_to(root).as_posix()
        for filename in filenames:
            if _accepts(filename, extensions):
                listing.files.append(filename if relative_dir == "." else f"{relative_dir}/{filename}")
    return listing


class ModelFolders:
    """The server's folder layout (comfy-compat §11.1); one instance per server, no globals."""

    def __init__(
        self,
        base_dir: Path,
        *,
        output_dir: Path | None = None,
        input_dir: Path | None = None,
        temp_dir: Path | None = None,
        user_dir: Path | None = None,
        models_dir: Path | None = None,
        wipe_temp: bool = True,
    ) -> None:
        self.base_dir = Path(base_dir).resolve()
        self.models_dir = Path(models_dir) if models_dir else self.base_dir / "models"
        self.output_dir = Path(output_dir) if output_dir else self.base_dir / "output"
        self.input_dir = Path(input_dir) if input_dir else self.base_dir / "input"
        self.temp_dir = Path(temp_dir) if temp_dir else self.base_dir / "temp"
        self.user_dir = Path(user_dir) if user_dir else self.base_dir / "user"
        self._lock = threading.RLock()
        self._listings: dict[str, _Listing] = {}
        self._folders = folder_table(self.models_dir)
        self._folders["custom_nodes"] = ([self.base_dir / "custom_nodes"], frozenset())
        for key in _OUTPUT_MODEL_FOLDERS:
            self.add_path(key, self.output_dir / key)
        for directory in (self.output_dir, self.input_dir, self.user_dir):
            directory.mkdir(parents=True, exist_ok=True)
        if wipe_temp:
            self.wipe_temp()
            self.sweep_partial_writes()
        else:
            self.temp_dir.mkdir(parents=True, exist_ok=True)

    # -- folder table -------------------------------------------------------------------

    @staticmethod
    def canonical_key(key: str) -> str:
        """Map a legacy alias (``unet``, ``clip``) to its folder key."""
        return LEGACY_ALIASES.get(key, key)

    def folder_keys(self) -> list[str]:
        return list(self._folders)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.canonical_key(key) in self._folders

    def paths(self, key: str) -> list[Path]:
        """The directories of a folder key, in search order (raises KeyError when unknown)."""
        return list(self._entry(key)[0])

    def extensions(self, key: str) -> frozenset[str]:
        return self._entry(key)[1]

    def add_path(self, key: str, path: Path, first: bool = False) -> None:
        """Add a directory to a folder key; unknown keys become folders accepting any file.

        Like ComfyUI's ``add_model_folder_path``: a path already present is only moved to the
        front when ``first`` is set.
        """
        key = self.canonical_key(key)
        path = Path(path)
        with self._lock:
            dirs, _ = self._folders.setdefault(key, ([], frozenset()))
            if path in dirs:
                if first:
                    dirs.remove(path)
                    dirs.insert(0, path)
            elif first:
                dirs.insert(0, path)
            else:
                dirs.append(path)
            self._invalidate(key)

    def set_extensions(self, key: str, extensions: Iterable[str]) -> None:
        """Replace a folder's accepted extensions (plugins registering their own model types)."""
        key = self.canonical_key(key)
        with self._lock:
            dirs = self._folders.get(key, ([], frozenset()))[0]
            self._folders[key] = (dirs, frozenset(ext.lower() for ext in extensions))
            self._invalidate(key)

    def directory_for_type(self, kind: str) -> Path | None:
        """``output`` / ``input`` / ``temp``, as the ``type`` field of ``/view`` and ui dicts."""
        return {"output": self.output_dir, "input": self.input_dir, "temp": self.temp_dir}.get(kind)

    def wipe_temp(self) -> None:
        """Empty the temp directory (ComfyUI wipes it at start and at exit)."""
        if self.temp_dir.is_dir() and not self.temp_dir.is_symlink():
            shutil.rmtree(self.temp_dir, ignore_errors=True)
        self.temp_dir.mkdir(parents=True, exist_ok=True)

    def sweep_partial_writes(self) -> list[Path]:
        """Delete the half-written files a crash left in output/ and input/; returns them."""
        swept = []
        for root in (self.output_dir, self.input_dir):
            for directory, _, files in os.walk(root):
                for name in files:
                    if _PARTIAL_WRITE.match(name):
                        path = Path(directory) / name
                        path.unlink(missing_ok=True)
                        swept.append(path)
        if swept:
            log.info("removed %d half-written file(s) left by an earlier crash", len(swept))
        return swept

    # -- listings and lookups -------------------------------------------------------------

    def list_files(self, key: str) -> list[str]:
        """Relative ``/``-separated names of every accepted file, merged over all dirs, sorted."""
        key = self.canonical_key(key)
        with self._lock:
            dirs, extensions = self._entry(key)
            cached = self._listings.get(key)
            if cached is not None and all(_mtime(d) == m for d, m in cached.dir_mtimes.items()):
                return list(cached.files)
            merged = _Listing(files=[])
            for root in dirs:
                listing = _walk(root, extensions)
                merged.files.extend(listing.files)
                merged.dir_mtimes.update(listing.dir_mtimes)
            merged.files = sorted(set(merged.files))
            self._listings[key] = merged
            return list(merged.files)

    def full_path(self, key: str, name: str) -> Path | None:
        """The first directory's file called ``name``, or None; traversal names give None.

        Symlinks placed inside the model folders may point to other disks (a common setup),
        so only the name is checked, not where an administrator's link leads.
        """
        dirs, extensions = self._entry(self.canonical_key(key))
        for root in dirs:
            try:
                candidate = resolve_inside(root, name, allow_symlink_escape=True)
            except UnsafePath:
                return None
            if candidate.is_file() or ("folder" in extensions and candidate.is_dir()):
                return candidate
        return None

    # -- extra_model_paths.yaml -----------------------------------------------------------

    def load_extra_paths_yaml(self, yaml_path: Path) -> None:
        """Apply a ComfyUI ``extra_model_paths.yaml`` (comfy-compat §11.2)."""
        import yaml  # lazily: PyYAML is only needed when such a file exists

        yaml_path = Path(yaml_path)
        config = yaml.safe_load(yaml_path.read_text(encoding="utf-8")) or {}
        yaml_dir = yaml_path.resolve().parent
        for section_name, section in config.items():
            if not isinstance(section, dict):
                continue
            section = dict(section)
            base_path = section.pop("base_path", None)
            is_default = bool(section.pop("is_default", False))
            base = _expand(str(base_path), yaml_dir) if base_path is not None else None
            for key, value in section.items():
                if value is None:
                    continue
                for line in str(value).split("\n"):
                    line = line.strip()
                    if not line:
                        continue
                    directory = _expand(line, base or yaml_dir)
                    log.info("extra model path [%s] %s: %s", section_name, key, directory)
                    self.add_path(str(key), directory, first=is_default)

    # -- internals ------------------------------------------------------------------------

    def _entry(self, key: str) -> tuple[list[Path], frozenset[str]]:
        try:
            return self._folders[self.canonical_key(key)]
        except KeyError:
            raise KeyError(f"unknown model folder {key!r}") from None

    def _invalidate(self, key: str) -> None:
        self._listings.pop(key, None)


def _expand(path: str, relative_to: Path) -> Path:
    """``~`` and ``$VARS`` expanded; relative paths joined onto ``relative_to``; normalised."""
    expanded = Path(os.path.expandvars(os.path.expanduser(path)))
    if not expanded.is_absolute():
        expanded = relative_to / expanded
    return Path(os.path.normpath(expanded))
