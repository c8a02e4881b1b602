"""Loading of custom node packages (plugins) into a NodeRegistry.

Follows ComfyUI's ``nodes.load_custom_node`` contract (comfy-compat §7.2): every entry of a
``custom_nodes`` root that is a ``*.py`` file or a directory with ``__init__.py`` is imported
(``.disabled`` entries, ``__pycache__`` and other files are skipped); the module exports
``NODE_CLASS_MAPPINGS``, optionally ``NODE_DISPLAY_NAME_MAPPINGS`` and ``WEB_DIRECTORY``.
Kiln adds guards that ComfyUI lacks: each import runs with a time limit, a class whose
``INPUT_TYPES`` raises is reported and skipped, and every outcome lands in
``registry.plugin_reports`` so ``/system_stats`` can show it.

A package's ``prestartup_script.py`` runs before any plugin module is imported (ComfyUI runs
it even before torch; Kiln's start-up imports no torch, so the order plugins rely on holds).
One that fails is logged and marked "(PRESTARTUP FAILED)" in its report; the package is
still imported, as in ComfyUI.

Before the first import, the loader hands the registry to the ComfyUI shims' host (if the
shims are loaded), so a plugin can read ``nodes.NODE_CLASS_MAPPINGS`` at import time.
"""

from __future__ import annotations

import importlib.util
import logging
import runpy
import sys
import threading
import time
import traceback
import types
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

DEFAULT_IMPORT_TIMEOUT_S = 30.0
PRESTARTUP_SCRIPT = "prestartup_script.py"


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

    @property
    def prestartup_script(self) -> Path | None:
        """The package's ``prestartup_script.py``; single-file plugins have none."""
        script = self.path / PRESTARTUP_SCRIPT
        return script if self.path.is_dir() and script.is_file() else None


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


def run_prestartup_script(entry: PluginEntry) -> None:
    """Run the package's ``prestartup_script.py`` as a script of its own (comfy-compat §7.2)."""
    script = entry.prestartup_script
    if script is not None:
        runpy.run_path(str(script), run_name=f"{module_name_for(entry)}_x_prestartup")


def call_with_timeout(work: Callable[[], Any], what: str, timeout_s: float) -> Any:
    """Run plugin code in a daemon thread and give up after ``timeout_s``.

    Hung plugin code cannot be killed, but the server must still start: the thread is left
    behind (daemon, so it does not block exit) and the plugin is reported as failed.
    """
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = work()
        except BaseException as exc:  # SystemExit from a plugin must not end the server
            outcome["error"] = exc

    thread = threading.Thread(target=run, name=what, daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        raise TimeoutError(f"{what} did not finish within {timeout_s:g} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def import_with_timeout(entry: PluginEntry, timeout_s: float) -> types.ModuleType:
    """Import one plugin, abandoning it after ``timeout_s`` (see ``call_with_timeout``)."""
    return call_with_timeout(lambda: import_plugin(entry), f"importing {entry.name}", timeout_s)


def run_prestartup_scripts(entries: Iterable[PluginEntry], timeout_s: float) -> dict[str, str]:
    """Run every entry's prestartup script; returns the failures' tracebacks by entry name."""
    failures: dict[str, str] = {}
    for entry in entries:
        if entry.prestartup_script is None:
            continue
        try:
            call_with_timeout(lambda entry=entry: run_prestartup_script(entry),
                              f"prestartup script of {entry.name}", timeout_s)
        except TimeoutError as exc:
            failures[entry.name] = str(exc)
        except (Exception, SystemExit):  # Ctrl-C (KeyboardInterrupt) still stops the start-up
            failures[entry.name] = traceback.format_exc()
        else:
            continue
        log.error("custom node %s: %s failed (PRESTARTUP FAILED):\n%s", entry.name, PRESTARTUP_SCRIPT,
                  failures[entry.name])
    return failures


def share_registry_with_compat_host(registry: Any) -> None:
    """Let the shims' ``nodes.NODE_CLASS_MAPPINGS`` read ``registry`` (comfy_compat/kiln_host.py).

    The engine does not import the shims: ``kiln_host`` is only there once the server has
    put comfy_compat/ on ``sys.path`` and installed its host, so it is looked up, not imported.
    """
    kiln_host = sys.modules.get("kiln_host")
    host = kiln_host.installed() if kiln_host is not None else None
    if host is not None:
        host.registry = registry


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
    entries = []
    for entry in discover(roots):
        if disable_all and entry.name not in allowed:
            log.info("custom node %s skipped (--disable-all-custom-nodes)", entry.name)
            continue
        entries.append(entry)
    prestartup_failures = run_prestartup_scripts(entries, timeout_s)
    share_registry_with_compat_host(registry)
    reports = []
    for entry in entries:
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
        if entry.name in prestartup_failures:
            prestartup_error = f"{PRESTARTUP_SCRIPT} (PRESTARTUP FAILED):\n{prestartup_failures[entry.name]}"
            error = prestartup_error + (f"\n{error}" if error else "")
            outcome = " (PRESTARTUP FAILED)" + outcome
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
