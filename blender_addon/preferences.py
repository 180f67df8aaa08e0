"""Add-on preferences: the worker's Python (and a check of it) and the default work folder."""
from __future__ import annotations

import os
import sys

import bpy
from bpy.props import StringProperty


class RerenderPreferences(bpy.types.AddonPreferences):
    bl_idname = __package__

    worker_python: StringProperty(
        name="Worker Python", subtype="FILE_PATH",
        description="Python executable of an environment with rerender, torch and diffusers installed, "
        "for full translation and preview (Propagate My Key Frames runs on Blender's own Python)")
    worker_check: StringProperty(name="Worker Check", default="", options={"SKIP_SAVE"})
    work_dir: StringProperty(
        name="Work Folder", subtype="DIR_PATH",
        description="Default folder for job files (decoded frames, flow, key frames, results); "
        "empty: rerender in your user cache folder (~/.cache on Linux)")

    def draw(self, context) -> None:
        from .worker import bundled_site

        layout = self.layout
        if bundled_site():
            layout.label(text="Propagate My Key Frames runs on Blender's own Python (rerender is bundled)",
                         icon="CHECKMARK")
        else:
            layout.label(text="No bundled rerender: install the extension zip built for your platform", icon="ERROR")
        layout.label(text="Full translation needs torch and diffusers, too large to bundle: set a Worker Python",
                     icon="INFO")
        row = layout.row()
        row.prop(self, "worker_python")
        row.operator(RERENDER_OT_check_worker.bl_idname, text="Check")
        if self.worker_check:
            layout.label(text=self.worker_check)
        layout.prop(self, "work_dir")


class RERENDER_OT_check_worker(bpy.types.Operator):
    """Check that the Worker Python runs rerender with torch and diffusers, and which GPU it sees"""

    bl_idname = "rerender.check_worker"
    bl_label = "Check Worker Python"

    def execute(self, context):
        from .worker import check_worker

        prefs = get(context)
        python = worker_python(context)
        if prefs is None or not python:
            self.report({"ERROR"}, "Set Worker Python first")
            return {"CANCELLED"}
        ok, message = check_worker(python)
        prefs.worker_check = message
        self.report({"INFO"} if ok else {"ERROR"}, message)
        return {"FINISHED"} if ok else {"CANCELLED"}


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


CLASSES = (RerenderPreferences, RERENDER_OT_check_worker)
