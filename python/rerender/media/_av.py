"""PyAV, imported on first use: a job on image sequences never needs it, and importing it costs
about 60 ms of CPU in every process (``import av`` -> ``from ._av import av``)."""
from __future__ import annotations

import importlib


class _LazyModule:
    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attr: str):
        module = importlib.import_module(self._name)
        return getattr(module, attr)


av = _LazyModule("av")
