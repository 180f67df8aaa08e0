"""Long shots on one machine (issue 12): compact work-directory files, seeking to a frame range,
progress with a trustworthy time estimate, and no Dask unless a scheduler is given."""
import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

import rerender.media as media
from _clips import decode_all, moving_pattern, write_test_video
from _stylised_clip import clip, fast_config, write_clip_and_keys
from rerender import packing
from rerender.packing import load_packed, save_packed
from rerender.job import Job, JobConfig
from rerender.media import video as video_module
from rerender.progress import Progress, Stage


# ------------------------------------------------------------------------------------------------
# compact encodings


def test_images_are_stored_losslessly_in_every_layout(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {"rgb": rng.integers(0, 256, (17, 23, 3), dtype=np.uint8),
              "rgba": rng.integers(0, 256, (5, 7, 4), dtype=np.uint8),
              "grey": rng.integers(0, 256, (9, 4), dtype=np.uint8),
              "one": rng.integers(0, 256, (6, 8, 1), dtype=np.uint8),
              "index": np.int64(42), "nnf": rng.integers(-5, 5, (4, 4, 2)).astype(np.int16)}
    save_packed(tmp_path / "a.npz", **arrays)
    back = load_packed(tmp_path / "a.npz")
    assert set(back) == set(arrays)
    for name, a in arrays.items():
        assert back[name].dtype == a.dtype and back[name].shape == np.shape(a) and np.array_equal(back[name], a), name
    with np.load(tmp_path / "a.npz") as z:  # images really went in as PNG
        assert "rgb.c3.png" in z.files and "grey.g.png" in z.files


def _png_row_filters(data: bytes) -> set[int]:
    """The filter type byte of every row of an 8-bit RGB PNG (non-interlaced)."""
    import struct
    import zlib

    pos, idat, width = 8, b"", 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width = struct.unpack(">I", body[:4])[0]
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    row = 1 + 3 * width
    return {raw[i] for i in range(0, len(raw), row)}


@pytest.mark.skipif(not hasattr(cv2, "IMWRITE_PNG_FILTER"), reason="OpenCV < 4.11 picks its own filters")
def test_work_directory_pngs_filter_every_row_by_the_row_above():
    # libpng's per-row filter choice is most of a fast PNG's encoding time; "up" (type 2) keeps
    # the size (docs/method.md, "Large frames"). Lossless either way.
    img = np.ascontiguousarray(np.repeat(moving_pattern(1, 40, 64, seed=3)[0], 2, axis=1))
    for data in (media.encode_png(img), packing.encode_image(img).tobytes()):
        assert _png_row_filters(data) == {2}
        assert np.array_equal(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)[:, :, ::-1], img)


def test_float_candidates_of_high_bit_depth_plates_are_stored_exactly(tmp_path):
    """Passes over 16-bit/float plates give float32 candidates (0..255 scale, fractional): the PNG
    packing is for uint8 only, so they must come back bit for bit, never quantised to 8 bits."""
    rng = np.random.default_rng(5)
    image = (rng.random((13, 21, 3)) * 255).astype(np.float32)
    image[0, 0] = [0.1234567, 254.99998, 1e-7]
    error = rng.random((13, 21)).astype(np.float32)
    save_packed(tmp_path / "c.npz", image=image, error=error)
    back = load_packed(tmp_path / "c.npz")
    assert back["image"].dtype == np.float32 and back["image"].tobytes() == image.tobytes()
    assert np.array_equal(back["error"], packing.quantise_map(error))  # the error map is bfloat16, as for uint8
    save_packed(tmp_path / "d.npz", **back)  # a resumed job re-stores what it read: same bytes
    assert (tmp_path / "d.npz").read_bytes() == (tmp_path / "c.npz").read_bytes()


def test_float_maps_keep_8_significant_bits_and_decode_exactly():
    rng = np.random.default_rng(1)
    values = np.concatenate([rng.random(1000) * 10.0 ** rng.integers(-6, 9, 1000),
                             [0.0, 1.0, 65504.0, 1e30, np.inf]]).astype(np.float32).reshape(1, -1)
    back = packing.decode_map(packing.encode_map(values))
    assert back.dtype == np.float32
    finite = np.isfinite(values)
    rel = np.abs(back[finite] - values[finite]) / np.maximum(values[finite], 1e-30)
    assert rel.max() <= 2.0 ** -8  # rounded to nearest with 8 significant bits: half a unit of 2**-7
    assert np.isinf(back[~finite]).all()
    assert np.array_equal(back, packing.quantise_map(values))
    assert np.array_equal(packing.decode_map(packing.encode_map(back)), back)  # stable: re-encoding loses nothing
    nan = np.array([[np.nan, 2.0]], np.float32)
    assert np.isnan(packing.quantise_map(nan)[0, 0]) and packing.quantise_map(nan)[0, 1] == 2.0


def test_flows_are_stored_in_32nds_of_a_pixel():
    rng = np.random.default_rng(2)
    flow = (rng.standard_normal((40, 60, 2)) * 20).astype(np.float32)
    back = packing.quantise_flow(flow)
    assert back.dtype == np.float32 and back.shape == flow.shape
    assert np.abs(back - flow).max() <= 1 / 64 + 1e-6
    assert np.array_equal(back * 32, np.rint(back * 32))  # exact multiples of the step
    assert np.array_equal(packing.quantise_flow(back), back)
    # motion beyond +-1024 px: the step doubles until it fits, never clipped
    big = flow.copy()
    big[0, 0, 0] = 3000.4
    back = packing.quantise_flow(big)
    assert abs(back[0, 0, 0] - 3000.4) <= 1 / 16 and np.abs(back - big).max() <= 1 / 16
    huge = flow.copy()
    huge[1, 1, 1] = -1e6  # not a real motion, but stored as it is rather than wrapped
    assert np.array_equal(packing.quantise_flow(huge), huge)
    with pytest.raises(ValueError, match="NaN"):
        packing.encode_flow(np.full((4, 4, 2), np.nan, np.float32))


def test_a_stored_flow_reads_back_as_the_values_kept_in_memory():
    # the flow cache keeps the values computed with the encoding instead of decoding its PNG:
    # they must be the stored file's values bit for bit, at every step size and for raw storage
    rng = np.random.default_rng(3)
    flow = (rng.standard_normal((30, 50, 2)) * 20).astype(np.float32)
    for peak in (None, 3000.4, -1e6):
        f = flow.copy()
        if peak is not None:
            f[2, 3, 1] = peak
        entries, values = packing.encode_flow_values(f)
        read = packing.decode_flow(entries)
        assert values.dtype == read.dtype == np.float32 and values.flags.c_contiguous
        assert values.tobytes() == read.tobytes()


# ------------------------------------------------------------------------------------------------
# seeking


@pytest.fixture(scope="module")
def gop_video(tmp_path_factory):
    """90 frames of H.264 with B-frames and a key frame every 12 frames: decoding order differs from
    presentation order, and a late frame is far from the start."""
    path = tmp_path_factory.mktemp("seek") / "gop.mp4"
    frames = moving_pattern(90, 48, 64, velocity=(1.5, 0.5))
    write_test_video(path, frames, options={"crf": "18", "preset": "medium", "g": "12", "bf": "3"})
    reference, _ = decode_all(path)
    assert len(reference) == 90
    return path, reference


class _CountingContainer:
    """A PyAV container that counts the frames its decoder produces."""

    def __init__(self, container, counter):
        self._c, self._counter = container, counter

    def __getattr__(self, name):
        return getattr(self._c, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self._c.__exit__(*exc)

    def decode(self, *args, **kw):
        for frame in self._c.decode(*args, **kw):
            self._counter.append(frame.pts)
            yield frame


@pytest.mark.parametrize("start, stop", [(77, 85), (37, 45), (12, 13), (1, 5), (89, 90), (0, 3)])
def test_a_frame_range_seeks_and_gives_the_same_pixels(gop_video, monkeypatch, start, stop):
    path, reference = gop_video
    decoded = []
    real_open = video_module._open_video
    monkeypatch.setattr(video_module, "_open_video", lambda p: _CountingContainer(real_open(p), decoded))
    got = list(media.read_frames(path, frames=slice(start, stop)))
    assert len(got) == stop - start
    for i, frame in zip(range(start, stop), got):
        assert np.array_equal(frame, reference[i]), i
    # from the key frame at or before `start` (every 12th), not from frame 0; B-frames may add a few
    assert len(decoded) <= (stop - start) + start % 12 + 4


def test_seeking_falls_back_to_decoding_from_the_start_when_timestamps_cannot_name_frames(gop_video, monkeypatch):
    path, reference = gop_video
    monkeypatch.setattr(video_module, "_seek_target", lambda p, start: None)
    assert all(np.array_equal(a, b) for a, b in zip(media.read_frames(path, frames=slice(40, 44)), reference[40:44]))


def test_a_stopped_decode_resumes_where_it_stopped(gop_video, tmp_path, monkeypatch):
    path, reference = gop_video
    job = Job.open(path, JobConfig(frames="10:70", work_dir=str(tmp_path / "w")))
    with job.wd.lock():
        job.decode(Progress("quiet"))
        first = {i: job.wd.frame_path(i).read_bytes() for i in job.frames}
        for i in range(50, 70):  # as if stopped after frame 49
            job.wd.frame_path(i).unlink()
        m = job.wd.manifest()
        m["frames"]["complete"] = False
        job.wd.update_manifest(frames=m["frames"])
        asked = []
        real = media.read_frames
        monkeypatch.setattr(media, "read_frames", lambda *a, **kw: asked.append(kw["frames"]) or real(*a, **kw))
        job.decode(Progress("quiet"))
    assert asked == [slice(50, 70)]
    assert {i: job.wd.frame_path(i).read_bytes() for i in job.frames} == first


# ------------------------------------------------------------------------------------------------
# progress


class _Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def test_eta_is_the_remaining_work_at_this_runs_average_rate():
    clock = _Clock()
    stage = Stage(Progress("quiet"), "propagate", 1000, clock=clock)
    assert stage.eta() is None
    stage.skip(400)  # a resumed job: found done, took no time
    assert stage.eta() is None
    for _ in range(60):  # then 2 s per item
        clock.t += 2.0
        stage.update()
    assert stage.eta() == pytest.approx((1000 - 460) * 2.0)
    clock.t += 30.0  # a slow item: the estimate moves by its share only
    stage.update()
    assert stage.eta() == pytest.approx((1000 - 461) * 150.0 / 61)
    stage.update(539)
    assert stage.eta() == 0.0


def test_json_progress_carries_the_estimate(capsys):
    import io

    buf = io.StringIO()
    clock = _Clock()
    stage = Stage(Progress("json", stream_out=buf), "propagate", 10, clock=clock)
    stage.skip(4)
    clock.t += 3.0
    stage.update(2)
    events = [json.loads(line) for line in buf.getvalue().splitlines()]
    assert events[0] == {"event": "stage", "stage": "propagate", "total": 10}
    assert events[1] == {"event": "progress", "stage": "propagate", "done": 4, "total": 10, "eta": None}
    assert events[2] == {"event": "progress", "stage": "propagate", "done": 6, "total": 10, "eta": 6.0}


def test_timed_stage_estimates_from_its_work_not_the_wait(monkeypatch):
    """The blend waits for each segment's passes: 1 s of blending per frame after a 13 s wait must
    read 1 s/frame (26 s for 26 frames left), in JSON and on the human bar alike."""
    import io

    clock = _Clock()
    buf = io.StringIO()
    stage = Stage(Progress("json", stream_out=buf), "blend", 27, clock=clock, timed=True)
    clock.t += 13.0  # the first segment's passes
    with stage.working():
        clock.t += 1.0
        stage.update()
    assert stage.eta() == pytest.approx(26.0) and stage.rate() == pytest.approx(1.0)
    assert json.loads(buf.getvalue().splitlines()[-1])["eta"] == 26.0
    clock.t += 20.0  # waiting again does not change the estimate
    assert stage.eta() == pytest.approx(26.0)
    untimed = Stage(Progress("quiet"), "blend", 27, clock=clock)
    clock.t += 13.0
    untimed.update()
    assert untimed.eta() == pytest.approx(26 * 13.0)  # what the bar said before

    err = io.StringIO()
    bar = Stage(Progress("human", stream_err=err), "blend", 27, clock=clock, timed=True)
    clock.t += 13.0
    with bar.working():
        clock.t += 1.0
        bar.update()
    d = bar._bar.format_dict
    assert d["rate"] == pytest.approx(1.0)
    assert "00:26" in bar._bar.format_meter(**d)  # tqdm's time left, from the stage's own rate
    bar.close()


def test_human_progress_bar_does_not_count_reused_work_in_its_rate():
    import io

    err = io.StringIO()
    stage = Stage(Progress("human", stream_err=err), "propagate", 100)
    stage.skip(90)
    assert stage._bar.format_dict["initial"] == 90 and stage._bar.n == 90
    stage.close()


# ------------------------------------------------------------------------------------------------
# a finished job keeps no flows; detected cuts are remembered


def test_a_finished_job_keeps_no_flows_and_its_rerun_computes_none(tmp_path, monkeypatch):
    from rerender.flow import DISFlow
    from rerender.pipeline import propagate

    # two shots: the flows of the pair across the cut belong to no segment, yet cut detection computes them
    frames = moving_pattern(9, 48, 64, (1.0, 0.5), seed=1) + moving_pattern(8, 48, 64, (-0.5, 1.0), seed=7)
    inp, keys = write_clip_and_keys(tmp_path, frames, (0, 9, 16))
    res = propagate(inp, keys, tmp_path / "o", config=fast_config(), cuts="auto")
    assert sorted(res.segments_recomputed) == ["0000-cut0009", "0009-0016"]
    work = tmp_path / "o.work"
    assert not list((work / "flow").rglob("*.npz"))
    assert json.loads((work / "manifest.json").read_text())["cuts"]["cuts"] == [9]
    calls = []
    real = DISFlow.__call__
    monkeypatch.setattr(DISFlow, "__call__", lambda self, a, b: calls.append(1) or real(self, a, b))
    again = propagate(inp, keys, tmp_path / "o", config=fast_config(), cuts="auto")
    assert again.synthesized == 0 and calls == []  # the cuts came from the manifest, not from new flows
    kept = propagate(inp, keys, tmp_path / "k", config=fast_config(), cuts="auto", keep_intermediates=True)
    assert kept.synthesized == res.synthesized and (tmp_path / "k.work" / "flow" / "dis" / "000008_000009.npz").is_file()
    assert [(tmp_path / "k" / f"{i:04d}.png").read_bytes() for i in range(17)] == \
        [(tmp_path / "o" / f"{i:04d}.png").read_bytes() for i in range(17)]


# ------------------------------------------------------------------------------------------------
# without a scheduler, nothing of Dask


def test_a_job_without_a_scheduler_never_imports_dask(tmp_path):
    inp, keys = write_clip_and_keys(tmp_path, clip(12, 32, 48), (0, 11))
    code = f"""
import sys
from rerender.cli import main
code = main(["--progress", "quiet", "propagate", {str(inp)!r}, "--keys", {str(keys)!r}, "-o", {str(tmp_path / "o")!r},
             "--config", {str(tmp_path / "fast.yaml")!r}])
assert code == 0, code
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("dask", "distributed"))
print("LOADED", loaded)
"""
    (tmp_path / "fast.yaml").write_text("search_vote_iters: 2\npatchmatch_iters: 1\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "LOADED []" in out.stdout
    assert len(list((tmp_path / "o").glob("*.png"))) == 12
