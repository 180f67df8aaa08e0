"""Operators: ``rerender.render_strip`` (runs a job on the active strip) and ``rerender.cancel_job``.

In the UI the job runs in the background (a modal timer polls the worker); in background mode
(``blender -b``, scripts, tests), where timers never fire, ``execute`` runs it synchronously.
The running job lives in this module, not in saved data, so a reopened file never shows a job
that no longer exists.
"""
from __future__ import annotations

import sys
from typing import Optional

import bpy

from .strip_job import StripJob, unavailable_reason
from .worker import run_to_completion

_POLL_SECONDS = 0.2
_active_job: Optional[StripJob] = None  # at most one job at a time; ended on unregister
_cancel_requested = False  # set by the Cancel button, read by the job's modal handler


def active_job() -> Optional[StripJob]:
    """The running job, or None."""
    return _active_job


def _set_active(job: Optional[StripJob]) -> None:
    global _active_job, _cancel_requested
    _active_job = job
    _cancel_requested = False


def _redraw(context, job: Optional[StripJob]) -> None:
    """Show the job's progress: sequencer sidebars and the status bar."""
    workspace = getattr(context, "workspace", None)
    if workspace is not None:
        # The status bar is a global area (not in screen.areas); setting its text redraws it,
        # which also redraws the progress bar that panel.draw_status_bar adds there.
        workspace.status_text_set(
            None if job is None
            else f"Rerender '{job.strip_name}': {job.progress.text()}  (Esc to cancel)")
    screen = getattr(context, "screen", None)
    if screen is not None:
        for area in screen.areas:
            if area.type == "SEQUENCE_EDITOR":
                area.tag_redraw()


class RERENDER_OT_render_strip(bpy.types.Operator):
    """Rerender the visible frames of the active movie or image-sequence strip and add the result \
as a new strip above it"""

    bl_idname = "rerender.render_strip"
    bl_label = "Rerender Strip"
    bl_options = {"REGISTER", "UNDO"}

    _timer = None
    _job: Optional[StripJob] = None

    @classmethod
    def poll(cls, context) -> bool:
        reason = "A rerender job is already running" if _active_job else unavailable_reason(context)
        if reason:
            cls.poll_message_set(reason)
            return False
        return True

    def _prepare(self, context) -> Optional[StripJob]:
        try:
            job = StripJob(context)
            job.start()
        except (ValueError, RuntimeError, OSError) as exc:
            self.report({"ERROR"}, str(exc))
            return None
        return job

    def _finish(self, context, job: StripJob) -> set:
        """Turn a finished worker into a strip, or report why there is none."""
        failure = job.worker.failure_message(job.progress)
        if failure is None:
            try:
                strip = job.add_result_strip()
            except (ValueError, RuntimeError, KeyError) as exc:
                failure = str(exc)
            else:
                self.report({"INFO"}, f"Rerender: added '{strip.name}' in channel {strip.channel}")
                return {"FINISHED"}
        tail = job.worker.stderr_tail()
        if tail:  # the whole story for the system console; the report carries the gist
            print("rerender worker stderr:\n  " + "\n  ".join(tail), file=sys.stderr, flush=True)
        self.report({"ERROR"}, f"Rerender failed: {failure}")
        return {"CANCELLED"}

    def execute(self, context) -> set:
        job = self._prepare(context)
        if job is None:
            return {"CANCELLED"}
        _set_active(job)
        wm = context.window_manager
        wm.progress_begin(0, 1000)

        def on_event(event: dict) -> None:
            kind = event.get("event")
            if kind in ("stage", "progress"):
                wm.progress_update(int(job.progress.fraction * 1000))
            if bpy.app.background and kind in ("stage", "log"):
                print(f"rerender: {job.progress.text() if kind == 'stage' else job.progress.message}",
                      file=sys.stderr, flush=True)

        try:
            run_to_completion(job.worker, job.progress, on_event)
        except KeyboardInterrupt:  # Ctrl+C in `blender -b`: the worker is already stopped
            self.report({"WARNING"}, "Rerender cancelled")
            return {"CANCELLED"}
        finally:
            wm.progress_end()
            _set_active(None)
        return self._finish(context, job)

    def invoke(self, context, event) -> set:
        if bpy.app.background or context.window is None:
            return self.execute(context)
        job = self._prepare(context)
        if job is None:
            return {"CANCELLED"}
        _set_active(job)
        self._job = job
        wm = context.window_manager
        self._timer = wm.event_timer_add(_POLL_SECONDS, window=context.window)
        wm.modal_handler_add(self)
        _redraw(context, job)
        self.report({"INFO"}, f"Rerender started on '{job.strip_name}' (Esc to cancel)")
        return {"RUNNING_MODAL"}

    def modal(self, context, event) -> set:
        job = self._job
        if event.type == "ESC" or _cancel_requested:
            job.cancel()
            self._end(context)
            self.report({"WARNING"}, "Rerender cancelled")
            return {"CANCELLED"}
        if event.type != "TIMER":
            return {"PASS_THROUGH"}  # the UI stays responsive
        finished = job.poll()
        _redraw(context, job)
        if not finished:
            return {"PASS_THROUGH"}
        self._end(context)
        return self._finish(context, job)

    def cancel(self, context) -> None:
        """Blender ends the modal operator (window closed, file loaded): stop the worker too."""
        if self._job is not None:
            self._job.cancel()
        self._end(context)

    def _end(self, context) -> None:
        if self._timer is not None:
            context.window_manager.event_timer_remove(self._timer)
            self._timer = None
        _set_active(None)
        _redraw(context, None)


class RERENDER_OT_cancel_job(bpy.types.Operator):
    """Stop the running rerender job (no strip is added)"""

    bl_idname = "rerender.cancel_job"
    bl_label = "Cancel Rerender"

    @classmethod
    def poll(cls, context) -> bool:
        if _active_job is None:
            cls.poll_message_set("No rerender job is running")
            return False
        return True

    def execute(self, context) -> set:
        global _cancel_requested
        _cancel_requested = True  # the job's modal handler stops it on its next event
        return {"FINISHED"}


class RERENDER_OT_model_family(bpy.types.Operator):
    """Read the model family (SD 1.5, SD 2.x, SDXL) of the local model folder or file, through the worker"""

    bl_idname = "rerender.model_family"
    bl_label = "Model Family"

    def execute(self, context) -> set:
        from . import preferences
        from .worker import choose_worker, model_family

        settings = context.scene.rerender
        if not settings.model:
            settings.model_family = "Family: the worker's default model (SD 1.5)"
            return {"FINISHED"}
        try:
            python, env = choose_worker("propagate", preferences.worker_python(context))
        except ValueError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        settings.model_family = model_family(python, bpy.path.abspath(settings.model), env)
        return {"FINISHED"}


def stop_active_job() -> None:
    """End a running worker (add-on disabled or Blender quitting)."""
    if _active_job is not None:
        _active_job.cancel()
        _set_active(None)


CLASSES = (RERENDER_OT_render_strip, RERENDER_OT_cancel_job, RERENDER_OT_model_family)
