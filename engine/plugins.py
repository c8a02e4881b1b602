"""Loading of custom node packages (plugins) into a NodeRegistry.

Follows ComfyUI's ``nodes.load_custom_node`` contract (comfy-compat §7.2): every entry of a
``custom_nodes`` root that is a ``*.py`` file or a directory with ``__init__.py`` is imported
(``.disabled`` entries, ``__pycache__`` and other files are skipped); the module exports
``NODE_CLASS_MAPPINGS``, optionally ``NODE_DISPLAY_NAME_MAPPINGS`` and ``WEB_DIRECTORY``.
Kiln adds guards that ComfyUI lacks: each import runs with a time limit, a class whose
``INPUT_TYPES`` raises is reported and skipped, and every outcome lands in
``registry.plugin_reports`` so ``/system_stats`` can show it.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
import threading
import time
import traceback
import types
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

DEFAULT_IMPORT_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class PluginEntry:
    """One importable entry of a custom_nodes root."""

    name: str
    path: Path  # the .py file, or the package directory

    @property
    def init_file(self) -> Path:
        return self.path / "__init__.py" if self.path.is_dir() else self.path

    @property
    def module_dir(self) -> Path:
        return self.path if self.path.is_dir() else self.path.parent


def ensure_compat_path(compat_dir: Path) -> None:
    """Put the ComfyUI import shims first on ``sys.path``.

    Plugins do ``import folder_paths`` or ``import comfy.utils`` at top level; those names
    must resolve to Kiln's shims, never to a stray ComfyUI checkout further down the path.
    """
    entry = str(compat_dir)
    if entry in sys.path:
        sys.path.remove(entry)
    sys.path.insert(0, entry)


def discover(roots: Iterable[Path]) -> list[PluginEntry]:
    """List the importable entries of every root, sorted by name within a root.

    ComfyUI uses ``os.listdir`` order, which is arbitrary; sorting makes the load order (and
    so which of two colliding plugins wins) reproducible.
    """
    entries: list[PluginEntry] = []
    for root in roots:
        if not root.is_dir():
            continue
        for path in sorted(root.iterdir(), key=lambda p: p.name):
            name = path.name
            if name == "__pycache__" or name.endswith(".disabled") or name.startswith("."):
                continue
            if path.is_file() and path.suffix == ".py":
                entries.append(PluginEntry(path.stem, path))
            elif path.is_dir() and (path / "__init__.py").is_file():
                entries.append(PluginEntry(name, path))
    return entries


def module_name_for(entry: PluginEntry) -> str:
    """The ``sys.modules`` key: the full path with dots replaced, as ComfyUI does.

    Using the path (not just the name) keeps two plugins of the same name in different roots
    apart, and keeps them from shadowing real top-level modules.
    """
    return str(entry.path.with_suffix("") if entry.path.is_file() else entry.path).replace(".", "_x_")


def import_plugin(entry: PluginEntry) -> types.ModuleType:
    """Import one plugin; packages get ``__path__`` so their relative imports work."""
    name = module_name_for(entry)
    search = [str(entry.path)] if entry.path.is_dir() else None
    spec = importlib.util.spec_from_file_location(name, entry.init_file, submodule_search_locations=search)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {entry.path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def import_with_timeout(entry: PluginEntry, timeout_s: float) -> types.ModuleType:
    """Import in a daemon thread and give up after ``timeout_s``.

    A hung import cannot be killed, but the server must still start: the thread is left
    behind (daemon, so it does not block exit) and the plugin is reported as failed.
    """
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["module"] = import_plugin(entry)
        except BaseException as exc:  # SystemExit from a plugin must not end the server
            outcome["error"] = exc

    thread = threading.Thread(target=run, name=f"import-{entry.name}", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        raise TimeoutError(f"importing {entry.name} did not finish within {timeout_s:g} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["module"]


def usable_classes(entry_name: str, mappings: dict) -> tuple[dict, list[str]]:
    """Keep the classes whose ``INPUT_TYPES()`` returns a dict; describe the others."""
    usable, problems = {}, []
    for class_type, cls in mappings.items():
        try:
            spec = cls.INPUT_TYPES()
            if not isinstance(spec, dict):
                raise TypeError(f"INPUT_TYPES returned {type(spec).__name__}, expected dict")
        except Exception:
            log.error("%s: node %s skipped, INPUT_TYPES failed:\n%s", entry_name, class_type, traceback.format_exc())
            problems.append(f"node {class_type} skipped: INPUT_TYPES failed:\n{traceback.format_exc()}")
            continue
        usable[class_type] = cls
    return usable, problems


def register_module(registry: Any, entry: PluginEntry, module: types.ModuleType) -> list[str]:
    """Add a loaded plugin module's nodes and web directory; return the problems found."""
    problems: list[str] = []
    mappings = getattr(module, "NODE_CLASS_MAPPINGS", None)
    if not isinstance(mappings, dict):
        return ["module has no NODE_CLASS_MAPPINGS dict"]
    display = getattr(module, "NODE_DISPLAY_NAME_MAPPINGS", None)
    usable, problems = usable_classes(entry.name, mappings)
    added = registry.add_module(usable, display if isinstance(display, dict) else None,
                                f"custom_nodes.{entry.name}", False)
    refused = [name for name in usable if name not in added]
    if refused:
        problems.append(f"refused to override built-in nodes: {', '.join(refused)}")
    web_dir = getattr(module, "WEB_DIRECTORY", None)
    if isinstance(web_dir, str):
        folder = (entry.module_dir / web_dir).resolve()
        if folder.is_dir():
            registry.web_directories[entry.name] = folder
        else:
            problems.append(f"WEB_DIRECTORY {web_dir!r} is not a folder")
    return problems


def load_plugins(registry: Any, roots: Sequence[Path], *, disable_all: bool = False,
                 whitelist: Iterable[str] = (), timeout_s: float = DEFAULT_IMPORT_TIMEOUT_S,
                 report_factory: Any = None) -> list[Any]:
    """Import every plugin under ``roots`` into ``registry`` and record a report for each.

    ``report_factory(name=, path=, seconds=, error=)`` builds the report objects; by default
    ``engine.registry.PluginReport``. Returns the reports added.
    """
    if report_factory is None:
        from engine.registry import PluginReport as report_factory
    allowed = set(whitelist)
    reports = []
    for entry in discover(roots):
        if disable_all and entry.name not in allowed:
            log.info("custom node %s skipped (--disable-all-custom-nodes)", entry.name)
            continue
        started = time.perf_counter()
        error: str | None = None
        outcome = ""
        try:
            module = import_with_timeout(entry, timeout_s)
            problems = register_module(registry, entry, module)
            error = "\n".join(problems) or None
            outcome = " (WITH ERRORS)" if error else ""
        except TimeoutError as exc:
            error, outcome = str(exc), " (IMPORT TIMED OUT)"
            log.error("custom node %s: %s", entry.name, error)
        except (Exception, SystemExit):  # Ctrl-C (KeyboardInterrupt) still stops the start-up
            error, outcome = traceback.format_exc(), " (IMPORT FAILED)"
            log.error("custom node %s failed to import:\n%s", entry.name, error)
        report = report_factory(name=entry.name, path=entry.path,
                                seconds=time.perf_counter() - started, error=error)
        registry.plugin_reports.append(report)
        reports.append((report, outcome))
    if reports:
        log.info("custom node import times:\n%s", format_import_table(reports))
    return [report for report, _ in reports]


def format_import_table(rows: Iterable[tuple[Any, str]]) -> str:
    """ComfyUI's import-times table: slowest first, each failure marked with its kind."""
    lines = []
    for report, outcome in sorted(rows, key=lambda row: -row[0].seconds):
        lines.append(f"{report.seconds:8.3f} seconds{outcome}: {report.path}")
    return "\n".join(lines)
