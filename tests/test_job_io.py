"""What a job reads and writes besides its propagation (issue 23): each input frame decoded once
per process, work-directory PNGs written with the output's own encoder so that an output frame is
the bytes already encoded for WORK/out, the outputs' digests taken from the bytes as written, and
no video library imported for a job on image files."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from _stylised_clip import clip, run_propagate_cli, write_clip_and_keys, write_fast_config
from rerender import media
from rerender.files import content_digest
from rerender.packing import load_packed, quantise_map, save_packed


@pytest.fixture
def shot(tmp_path):
    inp, keys = write_clip_and_keys(tmp_path, clip(8, 32, 48), (0, 4, 7))
    return tmp_path, inp, keys


def propagate(shot, out, capsys, *extra):
    code = run_propagate_cli(*shot, out, *extra)
    err = capsys.readouterr().err
    assert code == 0 and "Traceback" not in err, err
    return err


def test_encode_png_gives_the_bytes_write_image_writes(tmp_path):
    rng = np.random.default_rng(3)
    smooth = cv2.GaussianBlur(rng.integers(0, 256, (37, 53, 3), dtype=np.uint8), (0, 0), 3)
    for img in (smooth, rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)):
        media.write_image(tmp_path / "a.png", img)
        assert media.encode_png(img) == (tmp_path / "a.png").read_bytes()
        assert np.array_equal(media.read_image(tmp_path / "a.png"), img)
    grey = smooth[:, :, 0]
    assert np.array_equal(cv2.imdecode(np.frombuffer(media.encode_png(grey), np.uint8), cv2.IMREAD_UNCHANGED), grey)


def test_candidates_come_back_exactly_compact_or_raw(tmp_path):
    """The candidates' files (PNG with OpenCV's default settings when kept, raw while a job runs)
    hold exactly what the blend reads from memory: the image, and the error map as quantised."""
    rng = np.random.default_rng(4)
    image = rng.integers(0, 256, (29, 41, 3), dtype=np.uint8)
    error = rng.gamma(2.0, 40.0, (29, 41)).astype(np.float32)
    for compact in (True, False):
        path = tmp_path / f"c{compact}.npz"
        save_packed(path, compact=compact, image=image, error=error)
        with np.load(path) as z:
            assert any(name.endswith(".png") for name in z.files) == compact, z.files
        got = load_packed(path)
        assert np.array_equal(got["image"], image)
        assert np.array_equal(got["error"], quantise_map(error))


def test_output_frames_are_what_write_image_gives_and_their_recorded_digests(shot, capsys):
    tmp = shot[0]
    out, work = tmp / "o", tmp / "o.work"
    propagate(shot, out, capsys)
    files = sorted(out.iterdir())
    assert [p.name for p in files] == [f"{i:04d}.png" for i in range(8)]
    for p in files:  # the bytes the job wrote before it copied WORK/out's encoding
        assert p.read_bytes() == media.encode_png(media.read_image(p)), p
        if int(p.stem) not in (0, 4, 7):
            assert p.read_bytes() == (work / "out" / p.name).read_bytes()
    record = json.loads((work / "manifest.json").read_text())["outputs"]
    assert record == {os.path.realpath(p): content_digest(p) for p in files}


def test_a_key_encoded_otherwise_is_encoded_again_for_the_output(shot, capsys):
    """A key painted into the work directory's own keys/ (any PNG settings) is the source itself:
    its output frame is still the output encoder's bytes of its pixels."""
    tmp, inp, _ = shot
    out, work = tmp / "o", tmp / "o.work"
    propagate(shot, out, capsys)
    key = work / "keys" / "0004.png"
    pixels = media.read_image(key)
    ok, buf = cv2.imencode(".png", pixels[:, :, ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 9])
    key.write_bytes(buf.tobytes())
    assert key.read_bytes() != media.encode_png(pixels)
    propagate((tmp, inp, work / "keys"), out, capsys)
    assert (out / "0004.png").read_bytes() == media.encode_png(pixels)


def test_each_input_frame_is_decoded_once(shot, capsys, monkeypatch):
    """The frames are decoded from the input once; the passes, flows and guides read them from
    memory, not from WORK/frames."""
    import rerender.workdir as workdir

    reads = []
    working = workdir.WorkDir._working

    def counted(self, path):
        reads.append(path)
        return working(self, path)

    monkeypatch.setattr(workdir.WorkDir, "_working", counted)
    tmp = shot[0]
    propagate(shot, tmp / "o", capsys)
    frames_read = [p for p in reads if p.parent.name == "frames"]
    assert frames_read == [], frames_read


def test_a_resumed_job_reads_the_stored_frames_and_gives_the_same_bytes(shot, capsys, monkeypatch):
    """A later run finds the frames in WORK/frames (checked against their digests, decoded once
    more) and recomputes a segment whose result is gone to the same bytes."""
    import rerender.workdir as workdir

    tmp = shot[0]
    out, work = tmp / "o", tmp / "o.work"
    propagate(shot, out, capsys)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    (work / "segments" / "0004-0007" / "stamp.json").unlink()
    (work / "out" / "0005.png").unlink()
    reads = []
    working = workdir.WorkDir._working
    monkeypatch.setattr(workdir.WorkDir, "_working", lambda self, path: reads.append(path) or working(self, path))
    propagate(shot, out, capsys)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    frames_read = sorted(p.name for p in reads if p.parent.name == "frames")
    assert frames_read == sorted(set(frames_read)) and "0005.png" in frames_read, frames_read


def test_a_job_on_image_files_does_not_import_the_video_library(shot):
    tmp, inp, keys = shot
    code = ("import sys; from rerender.cli import main; "
            f"rc = main(['propagate', {str(inp)!r}, '--keys', {str(keys)!r}, '-o', {str(tmp / 'o')!r}, "
            f"'--progress', 'quiet', '--config', {str(write_fast_config(tmp))!r}]); "
            "print(rc, 'av' in sys.modules, 'torch' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.stdout.split() == ["0", "False", "False"], r.stderr[-2000:]


def test_png_input_frames_are_stored_as_they_are_and_a_damaged_one_again(shot, capsys):
    """A PNG sequence at the working size is stored in WORK/frames as its own bytes (no second
    encoding); a stored frame damaged later is detected by its digest and stored again."""
    tmp, inp, _ = shot
    out, work = tmp / "o", tmp / "o.work"
    propagate(shot, out, capsys)
    inputs = sorted(inp.iterdir())
    assert [(work / "frames" / p.name).read_bytes() for p in inputs] == [p.read_bytes() for p in inputs]
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    damaged = work / "frames" / "0003.png"
    damaged.write_bytes(damaged.read_bytes()[:-20] + bytes(20))
    err = propagate(shot, out, capsys)
    assert str(damaged) in err, err
    assert damaged.read_bytes() == (inp / "0003.png").read_bytes()
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_a_resized_input_is_encoded_for_the_work_directory(shot, capsys):
    tmp, inp, _ = shot
    out, work = tmp / "o", tmp / "o.work"
    propagate(shot, out, capsys, "--size", "24")
    stored = media.read_image(work / "frames" / "0002.png")
    assert stored.shape[:2] == (24, 40)
    assert (work / "frames" / "0002.png").read_bytes() == media.encode_png(stored)


def test_an_uncompressed_png_input_is_encoded_for_the_work_directory(tmp_path, capsys):
    frames = clip(6, 32, 48)
    inp, keys = write_clip_and_keys(tmp_path, frames, (0, 5))
    for i, f in enumerate(frames):
        ok, buf = cv2.imencode(".png", f[:, :, ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 0])
        (inp / f"{i:04d}.png").write_bytes(buf.tobytes())
    propagate((tmp_path, inp, keys), tmp_path / "o", capsys)
    stored = tmp_path / "o.work" / "frames" / "0002.png"
    assert stored.read_bytes() == media.encode_png(frames[2])
