"""Rerender for Blender's Video Sequence Editor.

Restyles the active movie or image-sequence strip with the ``rerender`` tool, which runs out of
process, and adds the result as a new image-sequence strip above it. "Propagate My Key Frames" runs
on Blender's own Python with the rerender bundled in the extension zip
(scripts/build_blender_extension.py); full translation runs in a Worker Python with torch and
diffusers, set in the add-on preferences. This package holds UI and process plumbing only: no
algorithm, and no torch/numpy imports (Blender's Python pins numpy < 2).
"""
from __future__ import annotations

import bpy

from . import operators, panel, preferences, settings


def register() -> None:
    for cls in preferences.CLASSES:
        bpy.utils.register_class(cls)
    settings.register()
    for cls in operators.CLASSES:
        bpy.utils.register_class(cls)
    panel.register()


def unregister() -> None:
    operators.stop_active_job()
    panel.unregister()
    for cls in reversed(operators.CLASSES):
        bpy.utils.unregister_class(cls)
    settings.unregister()
    for cls in reversed(preferences.CLASSES):
        bpy.utils.unregister_class(cls)
