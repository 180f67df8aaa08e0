"""Never lose a user's files, never crash (issue 16): every case a hostile but fair user found,
each with its exact outcome (files untouched, byte for byte; a named error and exit 2; no traceback).
"""
import hashlib
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

import rerender.media as media
from _clips import write_test_video
from _stylised_clip import clip, fast_config, stylise, write_clip_and_keys, write_fast_config
from rerender import config
from rerender.cli import main
from rerender.files import atomic_path, is_own_temporary, remove_stale_temporaries
from rerender.job import JobConfig, JobError
from rerender.pipeline import propagate
from rerender.passes import PropagationConfig
from rerender.workdir import LOCK, MARKER, WorkDir


def snapshot(folder):
    """{relative path: sha256} of every file below ``folder``."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def project(tmp_path):
    """proj/frames (12 frames) and proj/keys, as an artist lays out a shot."""
    proj = tmp_path / "proj"
    inp, keys = write_clip_and_keys(proj, clip(12, 32, 48), (0, 11), input_name="frames", keys_name="keys")
    return tmp_path, proj, inp, keys


def run_cli(argv, capsys):
    code = main(argv)
    cap = capsys.readouterr()
    assert "Traceback" not in cap.err + cap.out
    return code, cap.err


# ------------------------------------------------------------------------------------------------
# data loss


def test_work_dir_holding_the_input_frames_is_refused_and_nothing_is_deleted(project, capsys):
    tmp, proj, inp, keys = project
    before = snapshot(proj)
    code, err = run_cli(["propagate", str(inp), "--keys", str(keys), "-o", str(tmp / "out.mp4"),
                         "--work-dir", str(proj), "--config", str(write_fast_config(tmp))], capsys)
    assert code == 2 and str(proj) in err and "inside the work directory's frames/ folder" in err
    assert snapshot(proj) == before
    assert not (proj / MARKER).exists()


def test_existing_folders_named_like_the_work_layout_are_never_emptied(project, capsys):
    tmp, proj, inp, keys = project
    work = tmp / "shared"
    for name in ("out", "frames", "flow", "segments"):
        (work / name).mkdir(parents=True)
        (work / name / "notes.txt").write_text(f"the artist's {name} notes")
    before = snapshot(work)
    code, err = run_cli(["propagate", str(inp), "--keys", str(keys), "-o", str(tmp / "o"), "--work-dir", str(work),
                         "--config", str(write_fast_config(tmp))], capsys)
    assert code == 2 and "not created by rerender" in err
    assert snapshot(work) == before


@pytest.mark.parametrize("pattern", ["%04d.png", "*.png"])
def test_output_folder_of_a_sequence_pattern_is_refused(project, capsys, pattern):
    tmp, proj, inp, keys = project
    before = snapshot(inp)
    code, err = run_cli(["propagate", str(inp / pattern), "--keys", str(keys), "-o", str(inp),
                         "--config", str(write_fast_config(tmp))], capsys)
    assert code == 2 and "output folder contains an input frame" in err and "overwrite" in err
    assert snapshot(inp) == before
    # nor the input folder's parent, which would receive the frames beside the input folder
    code, err = run_cli(["propagate", str(inp / pattern), "--keys", str(keys), "-o", str(proj)], capsys)
    assert code == 2 and "contains" in err
    assert snapshot(inp) == before


def test_output_through_a_symlink_to_the_input_is_refused(project, capsys):
    tmp, proj, inp, keys = project
    link = tmp / "link"
    link.symlink_to(inp, target_is_directory=True)
    before = snapshot(inp)
    code, err = run_cli(["propagate", str(inp), "--keys", str(keys), "-o", str(link)], capsys)
    assert code == 2 and "overwrite" in err
    assert snapshot(inp) == before


def test_key_folder_as_output_or_work_dir_is_refused(project):
    tmp, proj, inp, keys = project
    before = snapshot(keys)
    with pytest.raises(JobError, match="key-frame folder"):
        propagate(inp, keys, keys, config=fast_config())
    with pytest.raises(JobError, match="work directory is the key-frame folder"):
        propagate(inp, keys, tmp / "o", work_dir=keys, config=fast_config())
    assert snapshot(keys) == before


def test_input_inside_a_managed_work_folder_is_refused(project):
    tmp, proj, inp, keys = project
    work = tmp / "w"
    WorkDir(work).claim()
    (work / "frames").mkdir()
    moved = work / "frames" / "shot"
    inp.rename(moved)
    before = snapshot(moved)
    with pytest.raises(JobError, match="inside the work directory's frames/ folder"):
        propagate(moved, keys, tmp / "o", work_dir=work, config=fast_config())
    assert snapshot(moved) == before


def test_work_dir_marker_and_clearing_only_what_is_ours(tmp_path):
    wd = WorkDir(tmp_path / "w")
    with pytest.raises(JobError, match="without the"):
        wd.clear("frames")
    wd.claim()
    assert (tmp_path / "w" / MARKER).is_file()
    wd.claim()  # idempotent
    with pytest.raises(ValueError, match="not a managed sub-folder"):
        wd.clear("..")
    (tmp_path / "file").write_text("x")
    with pytest.raises(JobError, match="is a file"):
        WorkDir(tmp_path / "file").claim()
    empty = tmp_path / "empty"
    empty.mkdir()
    WorkDir(empty).claim()  # an empty folder is adopted
    assert (empty / MARKER).is_file()


# ------------------------------------------------------------------------------------------------
# concurrency


def test_a_second_job_on_a_locked_work_dir_is_refused(project):
    tmp, proj, inp, keys = project
    work = tmp / "w"
    wd = WorkDir(work)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        wd.claim()
        (work / LOCK).write_text(json.dumps({"pid": other.pid, "host": socket.gethostname(), "started": 0}))
        with pytest.raises(JobError, match=f"another rerender job.*pid {other.pid}"):
            propagate(inp, keys, tmp / "o", work_dir=work, config=fast_config())
        assert not (tmp / "o").exists()
    finally:
        other.kill()
        other.wait()
    # its process is gone: the lock is stale and taken over, then released at the end
    propagate(inp, keys, tmp / "o", work_dir=work, config=fast_config())
    assert not (work / LOCK).exists()
    assert len(list((tmp / "o").glob("*.png"))) == 12


def test_a_lock_held_on_another_machine_is_respected(tmp_path):
    wd = WorkDir(tmp_path / "w")
    wd.claim()
    (tmp_path / "w" / LOCK).write_text(json.dumps({"pid": 1, "host": "render-node-7", "started": 0}))
    with pytest.raises(JobError, match="render-node-7"):
        with wd.lock():
            pass


def test_concurrent_processes_one_runs_one_is_refused(project):
    tmp, proj, inp, keys = project
    work, cfgfile = tmp / "w", write_fast_config(tmp)

    def start(out):
        return subprocess.Popen([sys.executable, "-m", "rerender", "--progress", "quiet", "propagate", str(inp),
                                 "--keys", str(keys), "-o", str(out), "--work-dir", str(work), "--config",
                                 str(cfgfile)], stderr=subprocess.PIPE, text=True)

    procs = [start(tmp / "a"), start(tmp / "b")]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    codes = sorted(code for code, _ in results)
    refused = [err for code, err in results if code == 2]
    assert codes in ([0, 0], [0, 2])  # serialised by chance, or the second refused with a clear message
    assert all("another rerender job is using this work directory" in err for err in refused)


# ------------------------------------------------------------------------------------------------
# temporaries of killed runs


def test_temporaries_of_dead_processes_are_removed_on_the_next_run(project):
    tmp, proj, inp, keys = project
    out, work = tmp / "o", tmp / "w"
    propagate(inp, keys, out, work_dir=work, config=fast_config())
    host = socket.gethostname()
    token = "".join(c for c in host if c.isalnum())[:24]
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = [out / f".0003.png.rr-{token}-{dead.pid}-abc123.tmp.png",
             work / "frames" / f".0004.png.rr-{token}-{dead.pid}-x_y.tmp.png",
             work / f".manifest.json.rr-{token}-{dead.pid}-q1.tmp.json"]
    live = out / f".0005.png.rr-{token}-{os.getpid()}-zz.tmp.png"  # a living writer's file stays
    foreign = [out / ".notes", work / "frames" / ".0004.png.tmp", out / f".x.rr-otherhost-{dead.pid}-a.tmp"]
    for p in stale + [live] + foreign:
        p.write_bytes(b"partial")
    assert all(is_own_temporary(p.name) for p in stale + [live])
    propagate(inp, keys, out, work_dir=work, config=fast_config())
    assert not any(p.exists() for p in stale)
    assert live.exists() and all(p.exists() for p in foreign)


def test_atomic_files_follow_the_umask_and_leave_nothing_on_failure(tmp_path, monkeypatch):
    import rerender.files as files

    old = os.umask(0o022)
    try:
        # the mode the module computes from the umask at import (not a reload: that would make new
        # exception classes that modules holding the old ones no longer catch)
        monkeypatch.setattr(files, "_FILE_MODE", 0o666 & ~files._read_umask())
        with files.atomic_path(tmp_path / "a.txt") as t:
            t.write_text("x")
        assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644
    finally:
        os.umask(old)
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "b.txt") as t:
            t.write_text("half")
            raise RuntimeError("killed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]
    assert remove_stale_temporaries(tmp_path / "missing") == 0


# ------------------------------------------------------------------------------------------------
# crashes and unhelpful errors


def test_frames_too_small_for_optical_flow_get_a_named_error(tmp_path, capsys):
    inp, keys = write_clip_and_keys(tmp_path, clip(3, 8, 8), (0,))
    code, err = run_cli(["propagate", str(inp), "--keys", str(keys), "-o", str(tmp_path / "o")], capsys)
    assert code == 2 and "too small for optical flow" in err and "12 px" in err


@pytest.mark.parametrize("size, message", [("100000", "16 to 8192 pixels"),
                                           ("1e30", "invalid int value")])
def test_absurd_working_sizes_are_bounded(project, capsys, size, message):
    tmp, proj, inp, keys = project
    code, err = run_cli(["propagate", str(inp), "--keys", str(keys), "-o", str(tmp / "o"), "--size", size], capsys)
    assert code == 2 and message in err
    assert not (tmp / "o.work").exists()


def test_working_size_bounds():
    with pytest.raises(media.MediaError, match="too large"):
        media.working_size(40000, 20000, None)  # a huge plate at its own size
    with pytest.raises(ValueError, match="8192"):
        JobConfig(size=9000)
    assert media.working_size(7680, 4320, None) == (4320, 7680)  # 8K UHD fits


def test_memory_estimate_limits_parallel_passes(monkeypatch):
    import rerender.passes as prop

    monkeypatch.setattr(prop, "usable_memory", lambda: 3 * prop.pass_memory(1000))
    assert prop.PropagationConfig(workers=8).parallelism(passes=8, pixels=1000)[0] == 3
    monkeypatch.setattr(prop, "usable_memory", lambda: prop.pass_memory(1000) // 2)
    assert prop.PropagationConfig(workers=8).parallelism(passes=8, pixels=1000)[0] == 1


def test_job_refuses_frames_whose_pass_cannot_fit_in_memory(project, monkeypatch):
    import rerender.job as job

    tmp, proj, inp, keys = project
    monkeypatch.setattr(job, "usable_memory", lambda: 1000)
    with pytest.raises(JobError, match="GiB.*smaller --size"):
        propagate(inp, keys, tmp / "o", config=fast_config())
    assert not (tmp / "o.work").exists()


@pytest.mark.parametrize("command", ["run", "keyframes"])
def test_diffusion_commands_check_their_extra_before_decoding(project, capsys, monkeypatch, command):
    import importlib.util

    tmp, proj, inp, keys = project
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a))
    code, err = run_cli([command, str(inp), "--prompt", "x", "-o", str(tmp / "o.mp4")], capsys)
    assert code == 2 and "torch" in err and 'pip install "rerender[diffusion]"' in err
    assert not (tmp / "o.mp4.work").exists()


@pytest.mark.parametrize("n", [64, 100, 128, 136, 200])
def test_key_frames_at_the_input_size_pass_the_aspect_check_at_any_size(tmp_path, n):
    frames = clip(2, 144, 192)
    inp, keys = write_clip_and_keys(tmp_path, frames, (0, 1))
    propagate(inp, keys, tmp_path / "o", config=fast_config(), size=n)
    h, w = media.working_size(192, 144, n)
    assert media.read_image(tmp_path / "o" / "0001.png").shape == (h, w, 3)


def test_non_finite_option_values_are_rejected(tmp_path):
    for text in ("colour_weight: .nan\n", "uniformity: .inf\n", "poisson_lambda: -.inf\n"):
        f = tmp_path / "c.yaml"
        f.write_text(text)
        with pytest.raises(config.ConfigError, match="finite"):
            config.load(PropagationConfig, f)
    with pytest.raises(config.ConfigError, match="finite"):
        config.load(PropagationConfig, None, {"edge_weight": float("nan")})


# ------------------------------------------------------------------------------------------------
# audio


@pytest.fixture
def video_with_sound(tmp_path):
    frames = clip(12, 32, 48)
    video = write_test_video(tmp_path / "in.mp4", frames, audio_seconds=0.5)
    keys = tmp_path / "keys"
    keys.mkdir()
    for k in (0, 11):
        media.write_image(keys / f"{k:04d}.png", stylise(frames[k]))
    return tmp_path, video, keys


def has_audio(path):
    import av

    with av.open(str(path)) as c:
        return bool(c.streams.audio)


def test_no_audio_flag(video_with_sound, capsys):
    tmp, video, keys = video_with_sound
    code, _ = run_cli(["propagate", str(video), "--keys", str(keys), "-o", str(tmp / "a.mp4"), "--no-audio",
                       "--config", str(write_fast_config(tmp))], capsys)
    assert code == 0 and not has_audio(tmp / "a.mp4")


def test_audio_that_cannot_be_decoded_is_dropped_with_a_warning_not_the_job(video_with_sound, capsys, monkeypatch):
    tmp, video, keys = video_with_sound
    assert media.audio_problem(video) is None
    monkeypatch.setattr(media, "audio_problem", lambda p: f"{p}: this FFmpeg build has no decoder for 'ac3'")
    code, err = run_cli(["propagate", str(video), "--keys", str(keys), "-o", str(tmp / "a.mp4"),
                         "--config", str(write_fast_config(tmp))], capsys)
    assert code == 0 and "warning" in err and "without sound" in err
    assert not has_audio(tmp / "a.mp4") and len(list(media.read_frames(tmp / "a.mp4"))) == 12


def test_audio_failing_while_writing_still_writes_the_video(video_with_sound, capsys, monkeypatch):
    tmp, video, keys = video_with_sound

    def broken(self):
        raise media.AudioError(f"{video}: reading the audio track failed (Invalid data)")
        yield  # pragma: no cover

    monkeypatch.setattr(media.audio.AudioSource, "packets", broken)
    code, err = run_cli(["propagate", str(video), "--keys", str(keys), "-o", str(tmp / "b.mp4"),
                         "--config", str(write_fast_config(tmp))], capsys)
    assert code == 0 and "Invalid data" in err and "without sound" in err
    assert not has_audio(tmp / "b.mp4") and len(list(media.read_frames(tmp / "b.mp4"))) == 12


def test_audio_problem_names_an_undecodable_track(tmp_path):
    # an audio stream whose packets are garbage for its codec
    import av

    path = tmp_path / "bad.mkv"
    with av.open(str(path), "w") as c:
        v = c.add_stream("ffv1", rate=24)
        v.width, v.height, v.pix_fmt = 32, 32, "yuv420p"
        a = c.add_stream("aac", rate=44100)
        for i in range(3):
            f = av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")
            f.pts = i
            for p in v.encode(f):
                c.mux(p)
            junk = av.Packet(os.urandom(64) + b"\xff" * 64)
            junk.stream, junk.pts, junk.dts = a, i * 1024, i * 1024
            junk.time_base = a.time_base
            c.mux(junk)
        for p in v.encode(None):
            c.mux(p)
    problem = media.audio_problem(path)
    assert problem is not None and "bad.mkv" in problem


# ------------------------------------------------------------------------------------------------
# misc


def test_no_file_is_written_when_the_inputs_are_refused(project):
    tmp, proj, inp, keys = project
    before = snapshot(tmp)
    with pytest.raises(JobError):
        propagate(inp, keys, inp, config=fast_config())
    assert snapshot(tmp) == before and not (inp.with_name(inp.name + ".work")).exists()


def test_link_or_copy_shares_the_file_and_never_writes_through(tmp_path):
    from rerender.files import link_or_copy

    key, out = tmp_path / "keys" / "0010.png", tmp_path / "out" / "0010.png"
    key.parent.mkdir()
    out.parent.mkdir()
    key.write_bytes(b"first")
    link_or_copy(key, out)
    assert out.read_bytes() == b"first" and os.path.samefile(key, out)
    # a repainted key replaces its file atomically: the output keeps the old bytes until linked again
    (tmp_path / "new").write_bytes(b"second")
    os.replace(tmp_path / "new", key)
    assert out.read_bytes() == b"first"
    link_or_copy(key, out)
    assert out.read_bytes() == b"second" and os.path.samefile(key, out)
    assert sorted(p.name for p in out.parent.iterdir()) == ["0010.png"]  # no temporary left
    wd = WorkDir(tmp_path)
    assert wd.size() == len(b"second")  # one file, linked twice, counts once
