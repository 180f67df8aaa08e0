"""The Blender add-on's pure-Python parts (no bpy): command lines, the JSON-lines worker, placement.

blender_addon/__init__.py imports bpy, so the modules are loaded from their files on their own.
"""
from __future__ import annotations

import ast
import importlib.util
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from _procs import process_gone

ROOT = Path(__file__).resolve().parents[1]
ADDON = ROOT / "blender_addon"
FAKE = Path(__file__).resolve().parent / "blender" / "fake_worker.py"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"rerender_addon_{name}", ADDON / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look the module up while building the class
    spec.loader.exec_module(mod)
    return mod


worker = _load("worker")
placement = _load("placement")


def fake(behaviour: str, *rest: str) -> list[str]:
    return [sys.executable, str(FAKE), behaviour, "-m", "rerender", *rest]




# ---------------------------------------------------------------------------------- commands

def request(**kw):
    base = dict(mode="propagate", input_path="/media/shot 1.mp4", output_dir="/out", frames=(3, 11),
                keys_dir="/keys")
    base.update(kw)
    return worker.JobRequest(**base)


def test_propagate_command_is_the_cli_contract():
    cmd = worker.build_command("/env/bin/python", request(size=64, work_dir="/w"))
    assert cmd == ["/env/bin/python", "-m", "rerender", "propagate", "/media/shot 1.mp4",
                   "--keys", "/keys", "-o", "/out", "--frames", "3:11", "--size", "64",
                   "--work-dir", "/w", "--progress", "json"]


def test_a_matte_and_its_feather_reach_the_command():
    cmd = worker.build_command("py", request(matte="/mattes/hero.mov", matte_feather=2.5))
    pairs = dict(zip(cmd[5::2], cmd[6::2]))
    assert pairs["--matte"] == "/mattes/hero.mov" and pairs["--matte-feather"] == "2.5"
    assert "--matte" not in worker.build_command("py", request())
    with pytest.raises(ValueError, match="matte_feather"):
        worker.build_command("py", request(matte="/m.png", matte_feather=-1))


def test_translate_and_preview_commands_carry_the_diffusion_settings():
    req = request(mode="translate", keys_dir="", prompt="oil painting", negative_prompt="blurry",
                  model="/models/sd15.safetensors", lora="C:/l.safetensors", lora_scale=0.5,
                  control="canny", controlnet="lllyasviel/sd-controlnet-canny", control_strength=0.8,
                  key_interval=5, strength=0.6, seed=7)
    cmd = worker.build_command("py", req)
    assert cmd[:5] == ["py", "-m", "rerender", "run", "/media/shot 1.mp4"]
    pairs = dict(zip(cmd[5::2], cmd[6::2]))
    assert pairs["--prompt"] == "oil painting" and pairs["--negative-prompt"] == "blurry"
    assert pairs["--model"] == "/models/sd15.safetensors" and pairs["--lora"] == "C:/l.safetensors:0.5"
    assert pairs["--control"] == "canny" and pairs["--controlnet"] == "lllyasviel/sd-controlnet-canny"
    assert float(pairs["--control-strength"]) == 0.8
    assert int(pairs["--interval"]) == 5 and float(pairs["--strength"]) == 0.6
    assert pairs["--seed"] == "7" and pairs["--frames"] == "3:11" and pairs["--progress"] == "json"
    assert "--keys" not in cmd and "--size" not in cmd  # size 0 = the CLI's default

    prev = worker.build_command("py", request(mode="preview", keys_dir="", prompt="x", key_interval=5))
    assert prev[3] == "keyframes" and "--first-only" in prev and "--interval" not in prev
    # Empty optional settings are left to the CLI's defaults, not passed as empty strings.
    assert "--model" not in prev and "--lora" not in prev and "" not in prev


def test_commands_parse_with_the_real_rerender_cli():
    """The argument vectors are accepted by rerender's own parser and mean what the add-on meant."""
    cli = pytest.importorskip("rerender.cli")
    parser = cli.build_parser()
    prop = parser.parse_args(worker.build_command("py", request(size=64, work_dir="/w"))[3:])
    assert (prop.command, prop.input, prop.keys, prop.output) == ("propagate", "/media/shot 1.mp4", "/keys", "/out")
    assert (prop.frames, prop.size, prop.work_dir, prop.progress) == ("3:11", 64, "/w", "json")
    sub = parser._subparsers._group_actions[0].choices
    if "run" not in sub:
        pytest.skip("rerender's key-frame commands are not installed")
    full = dict(mode="translate", keys_dir="", prompt="ink", negative_prompt="blur", model="m", lora="/l",
                control="canny", controlnet="cn", control_strength=0.9, key_interval=4, strength=0.5, seed=3)
    run = parser.parse_args(worker.build_command("py", request(**full))[3:])
    assert (run.command, run.prompt, run.negative_prompt, run.model, run.lora) == ("run", "ink", "blur", "m", ["/l:1"])
    assert (run.control, run.controlnet, run.control_strength) == (["canny"], ["cn"], [0.9])
    assert (run.interval, run.strength, run.seed, run.frames, run.output) == (4, 0.5, 3, "3:11", "/out")
    prev = parser.parse_args(worker.build_command("py", request(**dict(full, mode="preview")))[3:])
    assert prev.command == "keyframes" and prev.first_only and prev.frames == "3:11"


@pytest.mark.parametrize("kw, field", [
    (dict(mode="paint"), "mode"),
    (dict(frames=(5, 5)), "frames"),
    (dict(frames=(-1, 4)), "frames"),
    (dict(keys_dir=""), "keys_dir"),
    (dict(mode="translate", prompt="  "), "prompt"),
    (dict(size=-8), "size"),
    (dict(output_dir=""), "output_dir"),
])
def test_bad_requests_name_the_field(kw, field):
    with pytest.raises(ValueError, match=field):
        worker.build_command("py", request(**kw))
    with pytest.raises(ValueError, match="worker python"):
        worker.build_command("", request())


# ---------------------------------------------------------------------------------- protocol

def test_parse_event_and_progress_folding():
    assert worker.parse_event("  \n") is None
    assert worker.parse_event("hello world\n") == {"event": "log", "message": "hello world"}
    assert worker.parse_event('{"event": "bogus"}')["event"] == "log"
    assert worker.parse_event("[1, 2]")["event"] == "log"
    p = worker.JobProgress()
    for line in ['{"event":"stage","stage":"flow","total":8}',
                 '{"event":"progress","stage":"flow","done":2,"total":8}']:
        p.feed(worker.parse_event(line))
    assert (p.stage, p.done, p.total, p.fraction, p.text()) == ("flow", 2, 8, 0.25, "flow 2/8")
    p.feed({"event": "stage", "stage": "blend", "total": 0})
    assert p.fraction == 0.0 and p.stages_seen == ["flow", "blend"]
    p.feed({"event": "progress", "stage": "blend", "done": "x", "total": None})  # malformed: no crash
    assert (p.done, p.total) == (0, 0)
    p.feed({"event": "done", "output": "/out"})
    assert p.output == "/out" and p.error is None and p.files == []
    p.feed({"event": "done", "output": "/out", "files": ["/out/s.1001.png", "/out/s.1002.png"]})
    assert p.files == ["/out/s.1001.png", "/out/s.1002.png"]


def test_worker_environment_drops_blenders_python_settings():
    env = worker.worker_environment({"PYTHONHOME": "/blender/python", "PYTHONPATH": "/x", "HOME": "/h"})
    assert env == {"HOME": "/h", "PYTHONUNBUFFERED": "1"}


# ---------------------------------------------------------------------------------- processes

def test_successful_worker_tolerates_stray_output():
    w = worker.WorkerProcess(fake("noise", "-o", "/the/out"))
    w.start()
    p = worker.JobProgress()
    seen = []
    assert worker.run_to_completion(w, p, seen.append) is None
    assert [e["event"] for e in seen] == ["log", "stage", "progress", "done"]
    assert p.output == "/the/out" and w.returncode == 0


def test_error_event_is_the_failure_message():
    w = worker.WorkerProcess(fake("error", "--keys", "/no/such/keys"))
    w.start()
    p = worker.JobProgress()
    msg = worker.run_to_completion(w, p)
    assert msg == "--keys: folder /no/such/keys does not exist"
    assert w.returncode == 2 and p.done == 1


def test_crash_without_events_reports_stderr_and_exit_code():
    w = worker.WorkerProcess(fake("crash"))
    w.start()
    msg = worker.run_to_completion(w, worker.JobProgress())
    assert msg == "the worker exited with code 3: RuntimeError: fake crash in the worker"


def test_missing_executable_is_a_clear_error():
    w = worker.WorkerProcess(["/no/such/python", "-m", "rerender"])
    with pytest.raises(RuntimeError, match="/no/such/python"):
        w.start()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="process groups are POSIX; checks read /proc")
def test_cancel_ends_the_worker_and_its_children():
    w = worker.WorkerProcess(fake("slow"))
    w.start()
    p = worker.JobProgress()
    child = None
    deadline = time.monotonic() + 20
    while child is None and time.monotonic() < deadline:
        for e in w.events(timeout=0.2):
            p.feed(e)
            if e["event"] == "log" and e["message"].startswith("worker "):
                _, pid, _, child = e["message"].split()
                assert int(pid) == w.pid
                child = int(child)
    assert child is not None and p.done == 1 and not w.finished()
    t0 = time.monotonic()
    w.cancel(grace=2.0)
    assert time.monotonic() - t0 < 2.0  # SIGTERM suffices for a well-behaved worker
    assert w.finished() and w.returncode == -signal.SIGTERM
    assert process_gone(w.pid) and process_gone(child)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="signals are POSIX; checks read /proc")
def test_cancel_kills_a_worker_that_ignores_terminate():
    code = ("import signal, time, json; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "print(json.dumps({'event': 'log', 'message': 'ready'}), flush=True); time.sleep(60)")
    w = worker.WorkerProcess([sys.executable, "-c", code])
    w.start()
    assert w.events(timeout=10.0)[0]["message"] == "ready"
    w.cancel(grace=0.5)
    assert w.returncode == -signal.SIGKILL and process_gone(w.pid)


# ---------------------------------------------------------------------------------- placement

def test_source_frame_range_follows_trim_and_hold_offset():
    # 16-frame clip trimmed by 3 at the start and 2 at the end: 11 visible frames, source 3..13.
    assert placement.source_frame_range(3, 11, 16) == (3, 14)
    assert placement.source_frame_range(0, 16, 16) == (0, 16)
    # A hold offset of 4 skips 4 media frames before the strip content starts.
    assert placement.source_frame_range(2, 5, 10, animation_offset_start=4) == (6, 11)
    with pytest.raises(ValueError, match="beyond the media"):
        placement.source_frame_range(-2, 10, 16)
    with pytest.raises(ValueError, match="beyond the media"):
        placement.source_frame_range(10, 10, 16)
    with pytest.raises(ValueError, match="not positive"):
        placement.source_frame_range(0, 0, 16)


def test_first_free_channel_skips_only_overlapping_strips():
    occupied = [(2, 10, 20), (3, 15, 30), (4, 0, 5), (5, 19, 40)]
    assert placement.first_free_channel(occupied, above=2, start=10, end=20) == 4
    assert placement.first_free_channel(occupied, above=2, start=30, end=35) == 3  # touching is free
    assert placement.first_free_channel([], above=127, start=0, end=5) == 128
    with pytest.raises(ValueError, match="no free channel"):
        placement.first_free_channel([(128, 0, 10)], above=127, start=0, end=5)
    assert placement.output_frame_name(7) == "0007.png"
    assert placement.output_frame_name(12345) == "12345.png"


# ---------------------------------------------------------------------------------- hygiene

def test_job_folders_are_keyed_on_the_blend_file_scene_and_strip(tmp_path):
    """Two projects (or two scenes) with a strip named clip.mp4 never share a work or output folder
    (issue 21.4: both used ROOT/clip.mp4, and the second job overwrote the first's frames)."""
    root = str(tmp_path)
    a = placement.job_folder(root, str(tmp_path / "shows" / "a" / "edit.blend"), "", "Scene", "clip.mp4")
    b = placement.job_folder(root, str(tmp_path / "shows" / "b" / "edit.blend"), "", "Scene", "clip.mp4")
    assert a != b and not a.startswith(b + os.sep) and not b.startswith(a + os.sep)
    # the same file, scene and strip: the same folder, so a stopped job resumes
    assert a == placement.job_folder(root, str(tmp_path / "shows" / "a" / "edit.blend"), "", "Scene", "clip.mp4")
    # unsaved files are told apart by their stored id; names that clean to the same text stay apart
    u1 = placement.job_folder(root, "", "id-one", "Scene", "clip.mp4")
    u2 = placement.job_folder(root, "", "id-two", "Scene", "clip.mp4")
    assert len({a, u1, u2}) == 3
    assert placement.job_folder(root, "", "x", "Scene", "a b") != placement.job_folder(root, "", "x", "Scene", "a_b")
    assert placement.job_folder(root, "", "x", "S1", "clip") != placement.job_folder(root, "", "x", "S2", "clip")
    for folder in (a, b, u1, u2):
        assert os.path.dirname(os.path.dirname(folder)) == root and os.path.isabs(folder)
    with pytest.raises(ValueError, match="project id"):
        placement.job_folder(root, "", "", "Scene", "clip.mp4")


def test_strip_job_keys_its_folder_on_the_project():
    """The job's root comes from placement.job_folder with the .blend's path and stored id."""
    src = (ADDON / "strip_job.py").read_text(encoding="utf-8")
    assert "placement.job_folder(preferences.work_root(context), bpy.data.filepath, settings.project_id" in src
    assert "_safe_name(strip.name)" not in src


def test_addon_imports_neither_torch_nor_numpy_nor_rerender():
    banned = {"torch", "numpy", "rerender", "cv2", "av"}
    for path in ADDON.glob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            for name in names:
                assert name.split(".")[0] not in banned, f"{path.name} imports {name}"


# ---------------------------------------------------------------------------------- compat

compat = _load("compat")


class _Rna:
    def __init__(self, *names):
        self.properties = set(names)


class _Strip:
    """A strip as Blender 4.2-5.0 (frame_final_*) or 5.1+ (left/right_handle) expose it."""

    def __init__(self, name, channel, left, right, new_api=False):
        self.name, self.channel, self.type = name, channel, "MOVIE"
        if new_api:
            self.left_handle, self.right_handle = left, right
            self.bl_rna = _Rna("left_handle", "right_handle")
        else:
            self.frame_final_start, self.frame_final_end = left, right
            self.bl_rna = _Rna("frame_final_start", "frame_final_end")


class _Editor42:
    def __init__(self, strips):
        self.sequences = self.sequences_all = strips
        self.active_strip = None


class _Editor50:
    def __init__(self, strips):
        self.strips = self.strips_all = strips
        self.active_strip = None


class _Scene:
    def __init__(self, ed):
        self.sequence_editor = ed


@pytest.mark.parametrize("editor_cls, new_api", [(_Editor42, False), (_Editor50, False), (_Editor50, True)])
def test_compat_hides_strip_api_versions(editor_cls, new_api):
    a = _Strip("a", 1, 10, 20, new_api)
    b = _Strip("b", 3, 15, 40, new_api)
    ed = editor_cls([a, b])
    assert compat.top_level_strips(ed) is compat.all_strips(ed)
    assert compat.strip_spans(ed) == [(1, 10, 20), (3, 15, 40)]
    assert compat.strip_spans(ed, exclude=a) == [(3, 15, 40)]
    assert (compat.left_handle(b), compat.right_handle(b)) == (15, 40)
    assert compat.find_strip(ed, "b") is b and compat.find_strip(ed, "zz") is None

    class Ctx:
        scene = _Scene(ed)

    assert compat.active_strip(Ctx) is None
    compat.set_active_strip(ed, b)
    assert compat.active_strip(Ctx) is b


def test_compat_falls_back_to_the_pre_50_context_member():
    ed = _Editor42([])
    strip = _Strip("old", 1, 0, 5)

    class Ctx:
        scene = _Scene(ed)
        active_sequence_strip = strip

    assert compat.active_strip(Ctx) is strip
    Ctx.scene = _Scene(None)
    assert compat.active_strip(Ctx) is None


def test_worker_choice_propagate_runs_on_blenders_python_with_the_bundle():
    python, env = worker.choose_worker("propagate", "", site="/ext/site-packages")
    assert python == sys.executable and env["PYTHONPATH"] == "/ext/site-packages" and env["PYTHONNOUSERSITE"] == "1"
    python, env = worker.choose_worker("translate", "/venv/bin/python", site="/ext/site-packages")
    assert python == "/venv/bin/python" and "PYTHONPATH" not in env  # a set Worker Python runs every job
    with pytest.raises(ValueError, match="need a Worker Python with torch and diffusers"):
        worker.choose_worker("translate", "", site="/ext/site-packages")
    with pytest.raises(ValueError, match="no bundled rerender"):
        worker.choose_worker("propagate", "", site="")


def test_check_worker_reports_what_the_interpreter_has(tmp_path):
    ok, message = worker.check_worker(sys.executable)
    assert ok and "rerender" in message and "torch" in message and "diffusers" in message, message
    assert "CUDA" in message or "device" in message
    ok, message = worker.check_worker(str(tmp_path / "no-python"))
    assert not ok and "cannot run" in message
    bare = tmp_path / "bare-python"  # a Python without rerender
    bare.write_text('#!/bin/sh\nexec /usr/bin/env -i "' + sys.base_prefix + '/bin/python3" -I "$@"\n')
    bare.chmod(0o755)
    ok, message = worker.check_worker(str(bare))
    assert not ok and "rerender is not installed" in message, message
