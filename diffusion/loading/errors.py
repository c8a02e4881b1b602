"""Errors raised while loading weight files; every message names the file."""

from __future__ import annotations


class CheckpointError(ValueError):
    """A weight file could not be read or does not hold what was asked for."""


class UnsafeCheckpoint(CheckpointError):
    """A pickled file holds objects other than plain tensors and containers, so it was not loaded."""


class UnsupportedModel(CheckpointError):
    """The file holds a model family Kiln does not implement."""
