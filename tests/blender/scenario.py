"""Test scenarios run inside Blender's Python (the bpy module of .venv-blender).

Usage: python scenario.py NAME CONFIG_JSON
Each scenario installs the built extension zip (into the BLENDER_USER_RESOURCES folder the test
chose), builds a scene, acts, and prints one line ``RESULT {json}`` that the pytest side checks.
"""
import json
import os
import sys
import time

import bpy

MODULE = "bl_ext.user_default.rerender"


def result(**data) -> None:
    print("RESULT " + json.dumps(data), flush=True)


def install(cfg) -> None:
    ret = bpy.ops.extensions.package_install_files(
        filepath=cfg["zip"], repo="user_default", enable_on_install=True, overwrite=True)
    assert ret == {"FINISHED"}, ret
    assert MODULE in bpy.context.preferences.addons, list(bpy.context.preferences.addons.keys())
    prefs = bpy.context.preferences.addons[MODULE].preferences
    prefs.worker_python = cfg.get("worker_python", "")
    prefs.work_dir = cfg.get("work_dir", "")


def build_scene(cfg):
    """A 96x64 scene: the trimmed movie strip in channel 2, a colour strip overlapping it in
    channel 3 and one in channel 4 that does not overlap it (so the first free channel is 4)."""
    scene = bpy.context.scene
    scene.render.fps = 24
    # Resolution first: new strips are fitted to the resolution at the time they are added.
    scene.render.resolution_x, scene.render.resolution_y = 96, 64
    scene.render.resolution_percentage = 100
    ed = scene.sequence_editor_create()
    strips = ed.strips
    if cfg.get("image_dir"):  # an image-sequence strip of the folder's files instead of the movie
        names = cfg.get("image_names") or sorted(os.listdir(cfg["image_dir"]))
        src = strips.new_image("source", os.path.join(cfg["image_dir"], names[0]), channel=2, frame_start=1)
        for name in names[1:]:
            src.elements.append(name)
    else:
        src = strips.new_movie("source", cfg["clip"], channel=2, frame_start=1)
    src.frame_final_start = 1 + cfg["trim_start"]
    src.frame_final_end = 1 + src.frame_duration - cfg["trim_end"]
    strips.new_effect(name="overlap", type="COLOR", channel=3, frame_start=10, length=20)
    strips.new_effect(name="later", type="COLOR", channel=4, frame_start=40, length=10)
    ed.active_strip = src
    if "scene_fps" in cfg:
        scene.render.fps = cfg["scene_fps"]
    if cfg.get("reverse"):
        src.use_reverse_frames = True
    settings = scene.rerender
    settings.mode = cfg.get("mode", "PROPAGATE")
    settings.prompt = cfg.get("prompt", "")
    settings.keys_dir = cfg.get("keys", "")
    settings.size = cfg.get("size", 0)
    settings.output_dir = cfg.get("output_dir", "")
    if cfg.get("matte_image"):  # a single-image strip as the matte, above everything else
        strips.new_image("matte", cfg["matte_image"], channel=6, frame_start=1)
        settings.matte_strip = "matte"
        settings.matte_feather = cfg.get("matte_feather", 0.0)
    return scene, ed, src


def strip_summary(s) -> dict:
    return {"name": s.name, "type": s.type, "channel": s.channel, "left": s.frame_final_start,
            "right": s.frame_final_end, "length": s.frame_final_duration}


def scenario_install(cfg) -> None:
    install(cfg)
    mod = sys.modules[MODULE]
    result(enabled=MODULE in bpy.context.preferences.addons,
           operators=[hasattr(bpy.ops.rerender, n) for n in ("render_strip", "cancel_job")],
           panel=hasattr(bpy.types, "RERENDER_PT_strip"),
           addon_file=mod.__file__,
           scene_settings=hasattr(bpy.context.scene, "rerender"),
           default_work_root=mod.preferences.work_root(bpy.context))


def scenario_poll(cfg) -> None:
    install(cfg)
    scene, ed, src = build_scene(cfg)
    op = bpy.ops.rerender.render_strip
    out = {"movie": op.poll()}
    ed.active_strip = ed.strips["overlap"]
    out["color"] = op.poll()
    try:
        op()
    except RuntimeError as exc:
        out["color_error"] = str(exc)
    ed.active_strip = None
    out["none"] = op.poll()
    try:
        op()
    except RuntimeError as exc:
        out["none_error"] = str(exc)
    out["strips"] = len(ed.strips)
    result(**out)


def scenario_propagate(cfg) -> None:
    install(cfg)
    scene, ed, src = build_scene(cfg)
    before = {s.name for s in ed.strips}
    t0 = time.monotonic()
    ret = bpy.ops.rerender.render_strip()
    seconds = time.monotonic() - t0
    new = [s for s in ed.strips if s.name not in before]
    from importlib import import_module

    out = {"ret": sorted(ret), "seconds": seconds, "source": strip_summary(src),
           "new": [strip_summary(s) for s in new],
           "worker_site": import_module(MODULE + ".worker").bundled_site()}
    if len(new) == 1:
        strip = new[0]
        out["active_is_new"] = ed.active_strip == strip
        out["elements"] = len(strip.elements)
        # The file the sequencer shows at each scene frame of the new strip.
        out["files"] = {str(f): os.path.join(bpy.path.abspath(strip.directory),
                                             strip.strip_elem_from_frame(f).filename)
                        for f in range(strip.frame_final_start, strip.frame_final_end)}
        # And what the sequencer actually renders at one frame.
        frame = cfg.get("render_frame")
        if frame is None:
            result(**out)
            return
        scene.view_settings.view_transform = "Standard"
        scene.render.image_settings.file_format = "PNG"
        scene.render.image_settings.color_mode = "RGB"
        scene.render.filepath = cfg["render_path"]
        scene.frame_set(frame)
        bpy.ops.render.render(write_still=True)
        out["rendered_frame"] = frame
    result(**out)


class RecordingLayout:
    """Stands in for UILayout (no UI in background mode): records what a draw function shows and
    checks that every property and operator it names exists."""

    def __init__(self, log):
        self.log = log
        self.use_property_split = self.use_property_decorate = False

    def _child(self, *args, **kw):
        return RecordingLayout(self.log)

    column = row = box = _child

    def prop(self, data, name, **kw):
        assert name in data.bl_rna.properties, f"no property {name!r} on {data}"
        self.log.append(("prop", name))

    def prop_search(self, data, name, search_data, search_name, **kw):
        assert name in data.bl_rna.properties, f"no property {name!r} on {data}"
        assert hasattr(search_data, search_name), f"no collection {search_name!r} on {search_data}"
        self.log.append(("prop", name))

    def label(self, text="", icon="NONE"):
        self.log.append(("label", text))

    def operator(self, idname, **kw):
        module, name = idname.split(".")
        assert hasattr(getattr(bpy.ops, module), name), idname
        self.log.append(("operator", idname))

    def progress(self, factor=0.0, type="BAR", text=""):
        self.log.append(("progress", round(factor, 3), text))


def scenario_panel(cfg) -> None:
    """Draw the sidebar panel in each mode, and the panel and status bar while a job runs."""
    install(cfg)
    scene, ed, src = build_scene(cfg)
    mod = sys.modules[MODULE]
    panel_cls = bpy.types.RERENDER_PT_strip

    def draw(fn):
        log = []
        holder = type("Holder", (), {"layout": RecordingLayout(log)})()
        fn(holder, bpy.context)
        return log

    out = {}
    for mode in ("TRANSLATE", "PREVIEW", "PROPAGATE"):
        scene.rerender.mode = mode
        out[mode] = draw(panel_cls.draw)
    out["status_idle"] = draw(mod.panel.draw_status_bar)

    class FakeJob:  # a running job as the panel sees it
        strip_name = "source"
        progress = mod.worker.JobProgress()

    FakeJob.progress.feed({"event": "progress", "stage": "flow", "done": 3, "total": 12})
    mod.operators._set_active(FakeJob)
    out["running"] = draw(panel_cls.draw)
    out["status_running"] = draw(mod.panel.draw_status_bar)
    out["poll_while_running"] = bpy.ops.rerender.render_strip.poll()
    out["cancel_poll_while_running"] = bpy.ops.rerender.cancel_job.poll()
    mod.operators._set_active(None)
    out["cancel_poll_idle"] = bpy.ops.rerender.cancel_job.poll()
    result(**out)


class ModalShell:
    """Drives the operator's own invoke-side code without a window: Blender cannot run modal
    operators in background mode, so this object stands in for the operator instance and the
    operator class's real ``modal``/``_end``/``_finish`` methods are called on it."""

    def __init__(self, op_cls, job):
        self._job, self._timer, self.reports = job, None, []
        self._end = op_cls._end.__get__(self)
        self._finish = op_cls._finish.__get__(self)
        self.modal = op_cls.modal.__get__(self)

    def report(self, kind, message):
        self.reports.append([sorted(kind)[0], message])


class FakeEvent:
    def __init__(self, type_):
        self.type = type_


def scenario_modal(cfg) -> None:
    """The background (modal) path: timer ticks until the job ends, or Esc / the Cancel button."""
    install(cfg)
    scene, ed, src = build_scene(cfg)
    mod = sys.modules[MODULE]
    op_cls = mod.operators.RERENDER_OT_render_strip
    strips_before = len(ed.strips)
    job = mod.strip_job.StripJob(bpy.context)
    job.start()
    mod.operators._set_active(job)
    shell = ModalShell(op_cls, job)
    returns = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if cfg.get("stop") and job.progress.done >= 1:
            if cfg["stop"] == "ESC":
                event = FakeEvent("ESC")
            else:
                bpy.ops.rerender.cancel_job()  # the panel's Cancel button
                event = FakeEvent("MOUSEMOVE")
        else:
            event = FakeEvent("TIMER" if len(returns) % 2 else "MOUSEMOVE")
        ret = shell.modal(bpy.context, event)
        returns.append(sorted(ret)[0])
        if ret != {"PASS_THROUGH"}:
            break
        time.sleep(0.05)
    new = [strip_summary(s) for s in list(ed.strips)[strips_before:]]
    result(returns=returns, reports=shell.reports, strips_before=strips_before,
           strips_after=len(ed.strips), new=new, worker_pid=job.worker.pid,
           returncode=job.worker.returncode,
           active_after=mod.operators.active_job() is not None,
           cancel_poll_after=bpy.ops.rerender.cancel_job.poll())


def scenario_cancel_job(cfg) -> None:
    """The machinery the modal operator drives (timers never fire in background mode)."""
    install(cfg)
    scene, ed, src = build_scene(cfg)
    from bl_ext.user_default.rerender.strip_job import StripJob

    strips_before = len(ed.strips)
    job = StripJob(bpy.context)
    job.start()
    child = None
    deadline = time.monotonic() + 20
    while child is None and time.monotonic() < deadline:
        job.poll()
        if job.progress.message.startswith("worker "):
            child = int(job.progress.message.split()[3])
        time.sleep(0.05)
    mid = {"done": job.progress.done, "stage": job.progress.stage}
    job.cancel()
    result(mid=mid, finished=job.poll(), worker_pid=job.worker.pid, child_pid=child,
           returncode=job.worker.returncode, strips_before=strips_before, strips_after=len(ed.strips),
           command=job.command)


def scenario_job_folders(cfg) -> None:
    """Where a job on the strip "source" keeps its files: unsaved, then saved as two projects, then
    the first project reopened (its own folder again)."""
    install(cfg)
    build_scene(cfg)
    from bl_ext.user_default.rerender.strip_job import StripJob

    def folders():
        request = StripJob(bpy.context).request
        return [request.work_dir, request.output_dir]

    unsaved = folders()
    out = {"unsaved": unsaved, "unsaved_again": folders()}
    for name in ("a", "b"):
        path = os.path.join(cfg["projects"], name, "edit.blend")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        bpy.ops.wm.save_as_mainfile(filepath=path)
        out[name] = folders()
    bpy.ops.wm.open_mainfile(filepath=os.path.join(cfg["projects"], "a", "edit.blend"))
    out["a_reopened"] = folders()
    result(**out)


def scenario_operator(cfg) -> None:
    """Run the operator synchronously; report its outcome and the error it raised, if any."""
    install(cfg)
    scene, ed, src = build_scene(cfg)
    strips_before = len(ed.strips)
    out = {}
    try:
        # INVOKE_DEFAULT is what a button press does; without a window it must run synchronously.
        out["ret"] = sorted(bpy.ops.rerender.render_strip("INVOKE_DEFAULT" if cfg.get("invoke") else "EXEC_DEFAULT"))
    except RuntimeError as exc:
        out["error"] = str(exc)
    out.update(strips_before=strips_before, strips_after=len(ed.strips),
               running=sys.modules[MODULE + ".operators"].active_job() is not None)
    result(**out)


if __name__ == "__main__":
    name, cfg = sys.argv[1], json.loads(sys.argv[2])
    globals()["scenario_" + name](cfg)
