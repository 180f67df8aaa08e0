"""Add-on preferences: the worker's Python and the default work folder."""
from __future__ import annotations

import os
import sys

import bpy
from bpy.props import StringProperty


class RerenderPreferences(bpy.types.AddonPreferences):
    bl_idname = __package__

    worker_python: StringProperty(
        name="Worker Python", subtype="FILE_PATH",
        description="Python executable of an environment where rerender is installed "
        "(it runs the job in a separate process)")
    work_dir: StringProperty(
        name="Work Folder", subtype="DIR_PATH",
        description="Default folder for job files (decoded frames, flow, key frames, results); "
        "empty: rerender in your user cache folder (~/.cache on Linux)")

    def draw(self, context) -> None:
        layout = self.layout
        layout.prop(self, "worker_python")
        layout.prop(self, "work_dir")
        if not self.worker_python:
            layout.label(text="Point Worker Python at e.g. /path/to/.venv/bin/python", icon="INFO")


def get(context):
    """This add-on's preferences, or None when it was registered without the add-on system."""
    addon = context.preferences.addons.get(__package__)
    return addon.preferences if addon is not None else None


def worker_python(context) -> str:
    prefs = get(context)
    path = prefs.worker_python if prefs is not None else ""
    return bpy.path.abspath(path) if path else ""


def work_root(context) -> str:
    """Absolute folder under which each job gets its own work folder."""
    prefs = get(context)
    path = prefs.work_dir if prefs is not None else ""
    if path:
        return os.path.abspath(bpy.path.abspath(path))
    # Per user (a shared /tmp/rerender would mix users' jobs and files), and not bpy.app.tempdir:
    # Blender deletes that on exit, and a job's work folder should survive so a stopped job resumes.
    return os.path.join(user_cache_dir(), "rerender")


def user_cache_dir() -> str:
    """The operating system's per-user cache folder (Blender has no cache resource of its own)."""
    if sys.platform == "win32":
        return os.environ.get("LOCALAPPDATA") or os.path.join(os.path.expanduser("~"), "AppData", "Local")
    if sys.platform == "darwin":
        return os.path.join(os.path.expanduser("~"), "Library", "Caches")
    return os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")


CLASSES = (RerenderPreferences,)
