"""The Sequencer sidebar panel ("Rerender" tab) and the status-bar progress."""
from __future__ import annotations

import bpy

from . import compat, operators, preferences
from .operators import RERENDER_OT_cancel_job, RERENDER_OT_render_strip
from .strip_job import SUPPORTED_TYPES, source_frames, unavailable_reason


def _draw_strip(layout, context) -> None:
    """The active strip and the source frames its trim selects."""
    strip = compat.active_strip(context)
    if strip is None or strip.type not in SUPPORTED_TYPES:
        return
    box = layout.box()
    box.label(text=strip.name, icon="SEQUENCE")
    try:
        a, b = source_frames(strip)
    except ValueError as exc:
        box.label(text=str(exc), icon="ERROR")
        return
    box.label(text=f"Source frames {a}-{b - 1} ({b - a} frames) at frame {compat.left_handle(strip)}")


class RERENDER_PT_strip(bpy.types.Panel):
    bl_idname = "RERENDER_PT_strip"
    bl_label = "Rerender"
    bl_space_type = "SEQUENCE_EDITOR"
    bl_region_type = "UI"
    bl_category = "Rerender"

    def draw(self, context) -> None:
        layout = self.layout
        job = operators.active_job()
        if job is not None:
            layout.label(text=f"Rendering '{job.strip_name}'", icon="RENDER_ANIMATION")
            compat.draw_progress(layout, job.progress.fraction, job.progress.text())
            layout.operator(RERENDER_OT_cancel_job.bl_idname, text="Cancel", icon="CANCEL")
            return

        _draw_strip(layout, context)
        settings = context.scene.rerender
        layout.prop(settings, "mode")
        col = layout.column(align=False)
        col.use_property_split = True
        col.use_property_decorate = False
        if settings.mode == "PROPAGATE":
            col.prop(settings, "keys_dir")
        else:
            col.prop(settings, "prompt")
            col.prop(settings, "negative_prompt")
            row = col.row(align=True)
            row.prop(settings, "model")
            row.operator("rerender.model_family", text="", icon="VIEWZOOM")
            if settings.model_family:
                col.label(text=settings.model_family)
            col.prop(settings, "lora")
            if settings.lora:
                col.prop(settings, "lora_scale")
            col.prop(settings, "control")
            col.prop(settings, "controlnet")
            col.prop(settings, "control_strength")
            if settings.mode == "TRANSLATE":
                col.prop(settings, "key_interval")
            col.prop(settings, "strength")
            col.prop(settings, "seed")
        ed = compat.editor(context.scene)
        if ed is not None:
            col.prop_search(settings, "matte_strip", ed, "strips_all" if hasattr(ed, "strips_all") else "sequences_all")
            if settings.matte_strip:
                col.prop(settings, "matte_feather")
        col.prop(settings, "size")
        col.prop(settings, "output_dir")

        if settings.mode != "PROPAGATE" and not preferences.worker_python(context):
            layout.label(text="Set Worker Python in the add-on preferences", icon="ERROR")
        reason = unavailable_reason(context)
        if reason:
            layout.label(text=reason, icon="INFO")
        layout.operator(RERENDER_OT_render_strip.bl_idname, icon="RENDER_ANIMATION")


def draw_status_bar(self, context) -> None:
    """Appended to the status bar header: the job's progress while one runs."""
    job = operators.active_job()
    if job is None:
        return
    row = self.layout.row(align=True)
    row.label(text="Rerender", icon="RENDER_ANIMATION")
    compat.draw_progress(row, job.progress.fraction, job.progress.text())


CLASSES = (RERENDER_PT_strip,)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.STATUSBAR_HT_header.append(draw_status_bar)


def unregister() -> None:
    bpy.types.STATUSBAR_HT_header.remove(draw_status_bar)
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
