"""The Blender extension inside real Blender (the PyPI ``bpy`` module in .venv-blender).

Each test runs tests/blender/scenario.py in .venv-blender's Python (bpy pins numpy < 2, so it
cannot share this environment), with a private BLENDER_USER_RESOURCES folder into which the
extension zip built by Blender's own tool is installed. The worker is this environment's Python
running the real ``rerender propagate`` (or the JSON-protocol test double for cancel paths).
scripts/blender_env.sh creates .venv-blender; without it these tests skip.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from _clips import moving_pattern, write_sequence, write_test_video
from _procs import process_gone

ROOT = Path(__file__).resolve().parents[1]
ADDON = ROOT / "blender_addon"
HERE = Path(__file__).resolve().parent / "blender"
SCENARIO = HERE / "scenario.py"
FAKE = HERE / "fake_worker.py"
BLENDER_PY = Path(os.environ.get("RERENDER_BLENDER_PYTHON", ROOT / ".venv-blender" / "bin" / "python"))

pytestmark = pytest.mark.skipif(
    not BLENDER_PY.exists(),
    reason=f"no Blender Python at {BLENDER_PY}: run scripts/blender_env.sh to create .venv-blender")

# The clip: 16 frames, trimmed by 3 at the start and 2 at the end -> source frames 3..13 (3:14)
# shown at scene frames 4..14 (the movie starts at scene frame 1).
N_FRAMES, TRIM_START, TRIM_END = 16, 3, 2
A, B = TRIM_START, N_FRAMES - TRIM_END
LEFT = 1 + TRIM_START
KEY_FRAMES = (A, B - 1)


def blender_ext(*args: str) -> subprocess.CompletedProcess:
    tool = next((BLENDER_PY.parents[1] / "lib").glob(
        "python3*/site-packages/bpy/*/scripts/addons_core/bl_pkg/cli/blender_ext.py"))
    return subprocess.run([str(BLENDER_PY), str(tool), *args], capture_output=True, text=True, timeout=60)


def scenario_env(tmp: Path) -> dict:
    env = dict(os.environ, BLENDER_USER_RESOURCES=str(tmp / "blender-user"), XDG_CACHE_HOME=str(tmp / "cache"))
    env.pop("PYTHONPATH", None)
    return env


def parse_result(stdout: str) -> dict:
    lines = [line for line in stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, f"the scenario printed no RESULT line:\n{stdout[-3000:]}"
    return json.loads(lines[-1][len("RESULT "):])


def run_scenario(name: str, cfg: dict, tmp: Path, timeout: float = 60) -> dict:
    proc = subprocess.run([str(BLENDER_PY), str(SCENARIO), name, json.dumps(cfg)], capture_output=True,
                          text=True, timeout=timeout, env=scenario_env(tmp))
    assert proc.returncode == 0, f"scenario {name} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return parse_result(proc.stdout)


linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="process checks read /proc; signals and process groups are POSIX")




def fake_python(tmp: Path, behaviour: str) -> str:
    """An executable that stands in for the worker's Python and runs the protocol test double."""
    path = tmp / f"fake-python-{behaviour}"
    path.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE}" {behaviour} "$@"\n')
    path.chmod(0o755)
    return str(path)


def read_rgb(path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert img is not None, path
    return img[:, :, ::-1]


def reference_run(input_path: str, keys: str, tmp: Path) -> Path:
    """The propagation job run directly (not through Blender) on the strip's visible frames."""
    ref = tmp / "ref"
    cmd = [sys.executable, "-m", "rerender", "propagate", input_path, "--keys", keys, "-o", str(ref),
           "--frames", f"{A}:{B}", "--work-dir", str(tmp / "ref-work"), "--progress", "quiet"]
    # the propagation is reproducible (any thread count), so the strip's pixels compare exactly
    subprocess.run(cmd, check=True, timeout=120)
    return ref


@pytest.fixture(scope="module")
def addon_zip(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ext")
    built = blender_ext("build", "--source-dir", str(ADDON), "--output-dir", str(out))
    assert built.returncode == 0, built.stdout + built.stderr
    zips = list(out.glob("*.zip"))
    assert len(zips) == 1, built.stdout
    return zips[0]


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict:
    """The clip and hand-'painted' key frames (colour-inverted, channel-rotated input frames)."""
    root = tmp_path_factory.mktemp("media")
    frames = moving_pattern(n=N_FRAMES, h=64, w=96)
    clip = write_test_video(root / "clip.mp4", frames)
    keys = root / "keys"
    keys.mkdir()
    for i in KEY_FRAMES:
        painted = (255 - frames[i])[:, :, [1, 2, 0]]
        cv2.imwrite(str(keys / f"{i:04d}.png"), np.ascontiguousarray(painted[:, :, ::-1]))
    seq = root / "sequence"
    write_sequence(seq, frames, name="plate.{:04d}", start=1001)  # a VFX plate: numbered from 1001
    return {"clip": str(clip), "keys": str(keys), "root": root, "sequence": str(seq)}


def base_cfg(addon_zip, media, tmp: Path, **kw) -> dict:
    cfg = {"zip": str(addon_zip), "clip": media["clip"], "keys": media["keys"],
           "trim_start": TRIM_START, "trim_end": TRIM_END, "size": 0,
           "worker_python": sys.executable, "work_dir": str(tmp / "work")}
    cfg.update(kw)
    return cfg


def test_manifest_validates_and_zip_installs(addon_zip, tmp_path):
    validated = blender_ext("validate", str(ADDON))
    assert validated.returncode == 0 and "Success" in validated.stdout, validated.stdout + validated.stderr
    packaged = blender_ext("validate", str(addon_zip))  # the built archive validates too
    assert packaged.returncode == 0, packaged.stdout + packaged.stderr
    r = run_scenario("install", {"zip": str(addon_zip)}, tmp_path)
    assert r["enabled"] and r["operators"] == [True, True] and r["panel"] and r["scene_settings"]
    # Installed from the zip into the private user folder, not imported from the source tree.
    assert r["addon_file"].startswith(str(tmp_path / "blender-user")), r["addon_file"]
    # Job files go to the user's own cache folder, never a /tmp folder shared by every user.
    assert r["default_work_root"] == str(tmp_path / "cache" / "rerender"), r["default_work_root"]


def test_poll_refuses_non_movie_strips_with_a_reason(addon_zip, media, tmp_path):
    r = run_scenario("poll", base_cfg(addon_zip, media, tmp_path), tmp_path)
    assert r["movie"] is True and r["color"] is False and r["none"] is False
    assert "'overlap' is a color strip" in r["color_error"]
    assert "movie and image-sequence strips" in r["color_error"]
    assert "No active strip" in r["none_error"]
    assert r["strips"] == 3


def test_panel_shows_each_mode_and_the_running_job(addon_zip, media, tmp_path):
    r = run_scenario("panel", base_cfg(addon_zip, media, tmp_path), tmp_path)
    props = {mode: [x[1] for x in r[mode] if x[0] == "prop"] for mode in ("TRANSLATE", "PREVIEW", "PROPAGATE")}
    assert props["PROPAGATE"] == ["mode", "keys_dir", "matte_strip", "size", "output_dir"]
    assert {"prompt", "negative_prompt", "model", "lora", "control", "controlnet", "control_strength",
            "strength", "seed", "size", "output_dir"} <= set(props["TRANSLATE"])
    assert "key_interval" in props["TRANSLATE"] and "key_interval" not in props["PREVIEW"]
    labels = [x[1] for x in r["PROPAGATE"] if x[0] == "label"]
    assert f"Source frames {A}-{B - 1} ({B - A} frames) at frame {LEFT}" in labels
    assert ["operator", "rerender.render_strip"] in r["PROPAGATE"]
    assert ["progress", 0.25, "flow 3/12"] in r["running"] and ["operator", "rerender.cancel_job"] in r["running"]
    assert r["status_idle"] == [] and ["progress", 0.25, "flow 3/12"] in r["status_running"]
    assert r["poll_while_running"] is False and r["cancel_poll_while_running"] is True
    assert r["cancel_poll_idle"] is False


def test_propagate_mode_adds_the_result_strip(addon_zip, media, tmp_path):
    render_frame = LEFT + 4  # shows source frame A + 4, between the two key frames
    cfg = base_cfg(addon_zip, media, tmp_path, render_frame=render_frame,
                   render_path=str(tmp_path / "render.png"))
    r = run_scenario("propagate", cfg, tmp_path, timeout=120)
    assert r["ret"] == ["FINISHED"], r
    assert r["source"]["left"] == LEFT and r["source"]["length"] == B - A
    (new,) = r["new"]
    # Channel 3 overlaps the source's frames, channel 4 holds a strip only later: 4 is the first free.
    assert new["type"] == "IMAGE" and new["channel"] == 4
    assert (new["left"], new["length"]) == (LEFT, B - A) and r["active_is_new"]

    # Each scene frame shows the output file of its own source frame...
    files = {int(f): Path(p) for f, p in r["files"].items()}
    # (in the job's own folder: keyed on the unsaved .blend's project id, the scene and the strip)
    out_dir = files[LEFT].parent
    project, job = out_dir.parent.relative_to(tmp_path / "work").parts
    assert out_dir.name == "render" and project.startswith("unsaved-") and job.startswith("Scene-source-"), out_dir
    assert files == {LEFT + k: out_dir / f"{A + k:04d}.png" for k in range(B - A)}
    # ...whose pixels are those of the same propagation run directly from the command line.
    ref = reference_run(media["clip"], media["keys"], tmp_path)
    for k in range(B - A):
        np.testing.assert_array_equal(read_rgb(files[LEFT + k]), read_rgb(ref / f"{A + k:04d}.png"))
    # The key frames come through (the strip is the propagated style, not the input).
    key = read_rgb(Path(media["keys"]) / f"{A:04d}.png").astype(int)
    assert np.abs(read_rgb(files[LEFT]).astype(int) - key).mean() < 3.0
    # And the sequencer renders that frame at that scene frame, fitted to the scene.
    rendered = read_rgb(tmp_path / "render.png")
    np.testing.assert_array_equal(rendered, read_rgb(ref / f"{A + render_frame - LEFT:04d}.png"))


def test_projects_with_the_same_strip_name_never_share_job_folders(addon_zip, media, tmp_path):
    """Issue 21.4: the work and output folders are keyed on the .blend file (an id stored in a file
    not saved yet), the scene and the strip; reopening a project finds its own folders again."""
    r = run_scenario("job_folders", base_cfg(addon_zip, media, tmp_path, projects=str(tmp_path / "projects")),
                     tmp_path)
    work = {k: v[0] for k, v in r.items()}
    assert r["unsaved"] == r["unsaved_again"] and r["a"] == r["a_reopened"]
    assert len({work["unsaved"], work["a"], work["b"]}) == 3
    for a, b in ((r["a"], r["b"]), (r["unsaved"], r["a"])):
        assert not set(a) & set(b)
        assert not any(x.startswith(y + os.sep) or y.startswith(x + os.sep) for x in a for y in b)
    for k, (w, o) in r.items():
        assert Path(w).parent == Path(o).parent and Path(w).name == "work" and Path(o).name == "render", k
        assert Path(w).is_relative_to(tmp_path / "work"), w


def test_image_sequence_strip_is_processed_from_its_folder(addon_zip, media, tmp_path):
    cfg = base_cfg(addon_zip, media, tmp_path, image_dir=media["sequence"])
    r = run_scenario("propagate", cfg, tmp_path, timeout=120)
    assert r["ret"] == ["FINISHED"] and r["source"]["type"] == "IMAGE"
    (new,) = r["new"]
    assert (new["channel"], new["left"], new["length"]) == (4, LEFT, B - A)
    ref = reference_run(media["sequence"], media["keys"], tmp_path)
    for k in range(B - A):
        f = Path(r["files"][str(LEFT + k)])
        assert f.name == f"plate_rerender.{1001 + A + k}.png"  # the plate's own naming and numbering
        np.testing.assert_array_equal(read_rgb(f), read_rgb(ref / f.name))


def test_a_matte_strip_restyles_only_inside_it(addon_zip, media, tmp_path):
    """An image strip chosen as the matte: the worker gets --matte, and the result strip's frames are
    the source's pixels, exactly, outside the matte (the same run as the command line's)."""
    matte = np.zeros((64, 96), np.uint8)
    matte[16:48, 24:72] = 255
    matte_path = tmp_path / "matte.png"
    cv2.imwrite(str(matte_path), matte)
    cfg = base_cfg(addon_zip, media, tmp_path, image_dir=media["sequence"], matte_image=str(matte_path))
    r = run_scenario("propagate", cfg, tmp_path, timeout=120)
    assert r["ret"] == ["FINISHED"], r
    for k in range(B - A):
        f = Path(r["files"][str(LEFT + k)])
        plate = read_rgb(Path(media["sequence"]) / f"plate.{1001 + A + k:04d}.png")
        out = read_rgb(f)
        np.testing.assert_array_equal(out[matte == 0], plate[matte == 0])
    key = read_rgb(Path(r["files"][str(LEFT)])).astype(int)
    painted = read_rgb(Path(media["keys"]) / f"{A:04d}.png").astype(int)
    assert np.abs(key[matte > 0] - painted[matte > 0]).mean() < 3.0  # the key's style inside


def test_image_strip_must_show_its_whole_folder(addon_zip, media, tmp_path):
    """The worker indexes a folder by sorted position; a strip of only some of its files would
    be processed with shifted frame numbers, so the operator refuses it with the reason."""
    names = sorted(os.listdir(media["sequence"]))[1:]
    cfg = base_cfg(addon_zip, media, tmp_path, image_dir=media["sequence"], image_names=names)
    r = run_scenario("operator", cfg, tmp_path)
    assert "are not all the images" in r.get("error", ""), r
    assert r["strips_after"] == r["strips_before"]


@pytest.mark.parametrize("change, reason", [
    ({"scene_fps": 30}, "is 24 fps in a 30 fps scene"),
    ({"reverse": True}, "plays backwards"),
])
def test_strips_not_playing_media_frames_one_to_one_are_refused(addon_zip, media, tmp_path, change, reason):
    r = run_scenario("operator", base_cfg(addon_zip, media, tmp_path, **change), tmp_path)
    assert reason in r.get("error", ""), r
    assert r["strips_after"] == r["strips_before"]


def test_preview_mode_adds_the_first_key_frame_as_a_still(addon_zip, media, tmp_path):
    cfg = base_cfg(addon_zip, media, tmp_path, mode="PREVIEW", prompt="a watercolor fox",
                   worker_python=fake_python(tmp_path, "preview"))
    r = run_scenario("propagate", cfg, tmp_path)
    assert r["ret"] == ["FINISHED"], r
    (new,) = r["new"]
    assert (new["channel"], new["left"], new["length"], r["elements"]) == (4, LEFT, B - A, 1)
    (still,) = {Path(f) for f in r["files"].values()}
    project, job, *rest = still.relative_to(tmp_path / "work").parts  # the job's own folder
    assert project.startswith("unsaved-") and job.startswith("Scene-source-"), still
    assert rest == ["work", "keys", f"{A:04d}.png"]


def test_worker_error_reaches_the_report_and_adds_no_strip(addon_zip, media, tmp_path):
    missing = tmp_path / "no-such-keys"
    r = run_scenario("operator", base_cfg(addon_zip, media, tmp_path, keys=str(missing), invoke=True), tmp_path)
    assert "error" in r, r
    assert "Rerender failed:" in r["error"] and str(missing) in r["error"], r["error"]
    assert r["strips_after"] == r["strips_before"] and r["running"] is False


@linux_only
def test_cancel_mid_job_leaves_no_strip_and_no_worker(addon_zip, media, tmp_path):
    cfg = base_cfg(addon_zip, media, tmp_path, worker_python=fake_python(tmp_path, "slow"))
    r = run_scenario("cancel_job", cfg, tmp_path)
    assert r["mid"] == {"done": 1, "stage": "flow"}  # it was cancelled mid-job
    assert r["command"][1:4] == ["-m", "rerender", "propagate"]
    assert r["command"][r["command"].index("--frames") + 1] == f"{A}:{B}"
    assert r["finished"] is True and r["returncode"] == -signal.SIGTERM
    assert r["strips_after"] == r["strips_before"]
    assert process_gone(r["worker_pid"]) and process_gone(r["child_pid"])


def test_modal_path_adds_the_strip_when_the_worker_finishes(addon_zip, media, tmp_path):
    r = run_scenario("modal", base_cfg(addon_zip, media, tmp_path), tmp_path, timeout=120)
    # Other events pass through (the UI stays responsive) until a timer tick sees the end.
    assert set(r["returns"][:-1]) == {"PASS_THROUGH"} and r["returns"][-1] == "FINISHED", r["returns"]
    (new,) = r["new"]
    assert (new["channel"], new["left"], new["length"]) == (4, LEFT, B - A)
    assert r["reports"][-1][0] == "INFO" and r["returncode"] == 0
    assert not r["active_after"] and not r["cancel_poll_after"]


@linux_only
@pytest.mark.parametrize("stop", ["ESC", "CANCEL_BUTTON"])
def test_modal_path_stops_on_esc_or_cancel_button(addon_zip, media, tmp_path, stop):
    cfg = base_cfg(addon_zip, media, tmp_path, worker_python=fake_python(tmp_path, "slow"), stop=stop)
    r = run_scenario("modal", cfg, tmp_path)
    assert r["returns"][-1] == "CANCELLED" and r["reports"][-1] == ["WARNING", "Rerender cancelled"]
    assert r["strips_after"] == r["strips_before"] and r["new"] == []
    assert r["returncode"] == -signal.SIGTERM and process_gone(r["worker_pid"])
    assert not r["active_after"]


@linux_only
def test_ctrl_c_cancels_the_synchronous_operator(addon_zip, media, tmp_path):
    """``blender -b`` runs the job in execute(); Ctrl+C there stops the worker, adds no strip."""
    cfg = base_cfg(addon_zip, media, tmp_path, worker_python=fake_python(tmp_path, "slow"))
    proc = subprocess.Popen([str(BLENDER_PY), str(SCENARIO), "operator", json.dumps(cfg)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=scenario_env(tmp_path))
    watchdog = threading.Timer(60, proc.kill)  # never hang the suite on a stuck scenario
    watchdog.start()
    try:
        pids = None
        for line in proc.stderr:  # the operator prints the worker's log lines in background mode
            if line.startswith("rerender: worker "):
                _, _, worker_pid, _, child_pid = line.split()
                pids = int(worker_pid), int(child_pid)
                break
        assert pids is not None, "the job never reported progress"
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr[-2000:]
    r = parse_result(stdout)
    assert r["ret"] == ["CANCELLED"] and r["strips_after"] == r["strips_before"]
    assert "Rerender cancelled" in stdout + stderr
    assert process_gone(pids[0]) and process_gone(pids[1])


@pytest.fixture(scope="module")
def bundled_zip(rerender_wheel, tmp_path_factory) -> Path:
    """The extension zip with rerender and its propagation dependencies bundled as wheels, built by
    the project's own script and Blender's extension tool."""
    out = tmp_path_factory.mktemp("bundled")
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "build_blender_extension.py"), "--out", str(out),
                           "--wheel", str(rerender_wheel), "--blender-python", str(BLENDER_PY)],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    (zip_path,) = out.glob("rerender-*-linux_x64.zip")
    # the portable rerender wheel (OpenMP vendored) and OpenCV's contrib build (DeepFlow) are inside
    names = [Path(n).name for n in zipfile.ZipFile(zip_path).namelist() if n.endswith(".whl")]
    assert any(n.startswith("rerender-") and "manylinux_" in n for n in names), names
    assert any(n.startswith("opencv_contrib_python_headless-") for n in names), names
    return zip_path


@linux_only
def test_bundled_extension_propagates_with_blenders_own_python(bundled_zip, media, tmp_path):
    """Installed from the zip, "Propagate My Key Frames" runs with no Worker Python set: Blender's own
    Python and the bundled wheels (Blender's numpy < 2). The strip's pixels equal a CLI run's."""
    cfg = base_cfg(bundled_zip, media, tmp_path, worker_python="")
    r = run_scenario("propagate", cfg, tmp_path, timeout=300)
    assert r["ret"] == ["FINISHED"], r
    (new,) = r["new"]
    assert (new["left"], new["length"]) == (LEFT, B - A)
    ref = reference_run(media["clip"], media["keys"], tmp_path)
    for k in range(B - A):
        f = Path(r["files"][str(LEFT + k)])
        assert f.name == f"{A + k:04d}.png"
        np.testing.assert_array_equal(read_rgb(f), read_rgb(ref / f.name))
    # the bundled rerender, not one from this test environment, ran the job
    assert str(tmp_path / "blender-user") in r["worker_site"]
