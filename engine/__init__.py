"""Kiln's graph engine: node registry, validation, graph order, caching and execution.

Kept import-light on purpose (start-up speed rule in docs/ARCHITECTURE.md): import the
submodules you need, e.g. ``from engine.executor import Executor``.
"""
