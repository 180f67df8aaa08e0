"""rerender.flow: accuracy against known flow fields, backend registry, the on-disk cache."""
from __future__ import annotations

import threading

import cv2
import numpy as np
import pytest

from _clips import moving_pattern, texture
from rerender.flow import (DISFlow, FlowCache, available_flow_backends, get_flow_backend,
                           register_flow_backend)

BACKENDS = ["dis", "deepflow"]
M = 8  # border excluded from error statistics: content enters/leaves there


def epe(flow: np.ndarray, fx, fy) -> np.ndarray:
    return np.hypot(flow[..., 0] - fx, flow[..., 1] - fy)[M:-M, M:-M]


@pytest.mark.parametrize("name", BACKENDS)
def test_translation_known_answer(name):
    # frame t shows the scene shifted by t * v, so flow_{0->1} = +v and flow_{1->0} = -v
    v = (2.5, -1.25)
    a, b = moving_pattern(2, 96, 128, velocity=v, seed=1)
    be = get_flow_backend(name)
    fwd, bwd = be(a, b), be(b, a)
    assert fwd.dtype == np.float32 and fwd.shape == (96, 128, 2) and fwd.flags.c_contiguous
    # Measured EPE ~0.04 px for both (the cubic resampling of the test texture limits it);
    # 0.15 px leaves noise margin yet fails for a sign/axis mix-up or any pixel-level bias.
    assert epe(fwd, *v).mean() < 0.15
    assert epe(bwd, -v[0], -v[1]).mean() < 0.15
    assert np.percentile(epe(fwd, *v), 99) < 0.5


def _smooth_field_pair():
    """(a, b, fx, fy) with a(x) = b(x + f(x)) by construction: f is exactly flow_{a->b}."""
    h, w = 96, 128
    b = texture(h, w, seed=3)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    fx = 3 * np.sin(2 * np.pi * yy / h) * np.cos(np.pi * xx / w) + 1
    fy = 2 * np.cos(2 * np.pi * xx / w)
    a = cv2.remap(b, xx + fx, yy + fy, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    return a, b, fx, fy


@pytest.mark.parametrize("name", BACKENDS)
def test_smooth_field_known_answer(name):
    a, b, fx, fy = _smooth_field_pair()
    err = epe(get_flow_backend(name)(a, b), fx, fy)
    # measured: 0.07 px mean for both, 95th percentile 0.15 px; the bounds are 2x that and far
    # below the 2.3 px mean magnitude of the field
    assert err.mean() < 0.15
    assert np.percentile(err, 95) < 0.3


def test_dis_fine_preset_beats_opencv_medium():
    # the default refines to full resolution; OpenCV's MEDIUM stops one level above (0.16 px)
    a, b, fx, fy = _smooth_field_pair()
    fine = epe(DISFlow()(a, b), fx, fy).mean()
    medium = epe(DISFlow("medium")(a, b), fx, fy).mean()
    assert fine < 0.7 * medium
    assert DISFlow().name == "dis" and DISFlow("medium").name == "dis_medium"
    assert get_flow_backend("dis_medium").preset == "medium"


@pytest.fixture(scope="module")
def motorcycle():
    """Middlebury 2014 'Motorcycle' stereo pair at half resolution with its disparity map."""
    data = pytest.importorskip("skimage.data")
    try:
        left, right, disp = data.stereo_motorcycle()
    except Exception as e:  # the images are fetched on first use; offline CI has no copy
        pytest.skip(f"stereo_motorcycle unavailable: {e}")
    half = dict(fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    d = cv2.resize(disp, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_NEAREST) / 2
    return cv2.resize(left, None, **half), cv2.resize(right, None, **half), d


@pytest.mark.parametrize("name", BACKENDS)
def test_stereo_motorcycle_real_images(motorcycle, name):
    # left(x) = right(x - d(x)): the true flow left -> right is (-d, 0); inf = unknown disparity.
    # Measured (half resolution, disparities up to 30 px): DIS mean EPE 1.34 px / median 0.22 px /
    # 12% > 3 px, DeepFlow 1.47 / 0.25 / 13% (the errors concentrate in regions visible in one
    # image only and in textureless areas, which no flow method can know).
    left, right, d = motorcycle
    valid = np.isfinite(d)
    flow = get_flow_backend(name)(left, right)
    err = np.hypot(flow[..., 0] + np.where(valid, d, 0), flow[..., 1])[valid]
    assert err.mean() < 2.0
    assert np.median(err) < 0.4
    assert (err > 3).mean() < 0.16


def test_registry_and_validation():
    assert {"dis", "deepflow"} <= set(available_flow_backends())
    assert get_flow_backend().name == "dis"
    with pytest.raises(ValueError, match="unknown; available: .*deepflow.*dis"):
        get_flow_backend("raft")
    with pytest.raises(ValueError, match="preset"):
        DISFlow("slowest")
    be = get_flow_backend("dis")
    a = np.zeros((16, 16, 3), np.uint8)
    with pytest.raises(ValueError, match="differ in size"):
        be(a, np.zeros((16, 17, 3), np.uint8))
    with pytest.raises(ValueError, match="flow input b: expected uint8 or float32"):
        be(a, a.astype(np.float64))
    # float frames of the working format (high bit depth, 0..255 scale) give the uint8 frames' flow
    moving = [np.ascontiguousarray(np.roll(np.tile(np.arange(32, dtype=np.uint8)[None, :, None] * 8, (32, 1, 3)), k, 1))
              for k in (0, 1)]
    np.testing.assert_array_equal(be(moving[0].astype(np.float32), moving[1].astype(np.float32)), be(*moving))
    with pytest.raises(ValueError, match="already registered"):
        register_flow_backend("dis", DISFlow)
    with pytest.raises(ValueError, match="plain identifier"):
        register_flow_backend("../x", DISFlow)


class _ConstantFlow:
    """A stand-in learned backend: returns a known flow and counts calls."""

    name = "constant_test"

    def __init__(self):
        self.calls = 0

    def __call__(self, a, b):
        self.calls += 1
        f = np.empty((*a.shape[:2], 2), np.float32)
        f[..., 0], f[..., 1] = 0.1, -1234.567  # neither is a multiple of the stored 1/32 px step
        return f


def test_custom_backend_registration():
    register_flow_backend("constant_test", _ConstantFlow, replace=True)
    be = get_flow_backend("constant_test")
    assert isinstance(be, _ConstantFlow)
    assert get_flow_backend(be) is be  # backend objects pass through


def test_cache_computes_once_and_roundtrips(tmp_path):
    frames = moving_pattern(4, 32, 40)
    be = _ConstantFlow()
    cache = FlowCache(tmp_path, be)
    fresh = cache.get(0, 1, frames[0], frames[1])
    assert be.calls == 1 and cache.path(0, 1).parent.name == "constant_test"
    # the fresh result already went through the stored fixed point, so cached reads are bit-identical;
    # one step per flow: 1/32 px, doubled while the largest motion exceeds 1024 px (here 1/16 px)
    assert fresh.dtype == np.float32
    assert fresh[0, 0, 1] == np.float32(-1234.5625) and fresh[0, 0, 0] == np.float32(2 / 16)
    again = FlowCache(tmp_path, be).get(0, 1)  # no frames needed once cached
    np.testing.assert_array_equal(again, fresh)
    assert be.calls == 1
    assert not list(cache.directory.glob("*.tmp"))
    with pytest.raises(ValueError, match="not cached"):
        cache.get(2, 3)
    # a truncated file (e.g. copied partially) and a size change are recomputed, not trusted
    cache.path(0, 1).write_bytes(cache.path(0, 1).read_bytes()[:50])
    cache.get(0, 1, frames[0], frames[1])
    assert be.calls == 2
    small = [f[:16, :16] for f in frames]
    assert cache.get(0, 1, small[0], small[1]).shape == (16, 16, 2)
    assert be.calls == 3


def test_cache_keeps_backends_apart(tmp_path):
    a, b = moving_pattern(2, 32, 40, velocity=(1.0, 0.0))
    FlowCache(tmp_path, _ConstantFlow()).get(0, 1, a, b)
    dis = FlowCache(tmp_path, "dis").get(0, 1, a, b)
    assert abs(float(np.median(dis[..., 1]))) < 0.5  # DIS's own flow, not the cached constant
    assert sorted(p.name for p in tmp_path.iterdir()) == ["constant_test", "dis"]


def test_precompute_pair_and_occlusion(tmp_path):
    frames = moving_pattern(5, 40, 48, velocity=(2.0, 0.0))
    calls = []
    cache = FlowCache(tmp_path, "dis", frames=lambda i: frames[i])
    assert cache.precompute(enumerate(frames), progress=calls.append) == 8
    assert calls == [1, 2, 3, 4]
    assert cache.precompute(enumerate(frames)) == 0  # everything cached already
    fwd, bwd = cache.pair(2)
    assert np.median(fwd[..., 0]) == pytest.approx(2.0, abs=0.1)
    assert np.median(bwd[..., 0]) == pytest.approx(-2.0, abs=0.1)
    occ_i, occ_next = cache.occlusion(2)
    assert occ_i.dtype == np.uint8 and occ_i.shape == (40, 48)
    # moving right by 2 px: on frame i the pixels in the last 2 columns leave the frame,
    # on frame i+1 the first 2 columns come from outside; the interior is consistent
    assert occ_i[:, -2:].mean() > 0.9 and occ_next[:, :2].mean() > 0.9
    assert occ_i[4:-4, 4:-6].max() == 0 and occ_next[4:-4, 6:-4].max() == 0
    with pytest.raises(ValueError, match="consecutive"):
        cache.precompute([(0, frames[0]), (2, frames[2])])


def test_backends_are_thread_safe():
    frames = moving_pattern(6, 64, 80, velocity=(1.5, 1.0))
    be = get_flow_backend("dis")
    expected = [be(frames[i], frames[i + 1]) for i in range(5)]
    results: dict[int, np.ndarray] = {}

    def work(i):
        for _ in range(3):
            results[i] = be(frames[i], frames[i + 1])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(5):
        np.testing.assert_array_equal(results[i], expected[i])


# ------------------------------------------------------------------------------------------------
# the flow stage's own costs: storage codec, frames read once, a flow computed once


def _png_flow_entries(flow: np.ndarray, step_log2: int = 5) -> dict[str, np.ndarray]:
    """A flow as work directories before the zlib codec stored it: fixed point in steps of
    2**-step_log2 px, offset by 32768, the dx plane above the dy plane, in a 16-bit PNG."""
    q = np.rint(flow.astype(np.float64) * 2.0 ** step_log2).astype(np.int32) + 32768
    ok, buf = cv2.imencode(".png", np.concatenate([q[..., 0], q[..., 1]]).astype(np.uint16))
    assert ok
    return {"png": buf.reshape(-1), "step_log2": np.int32(step_log2)}


def test_flow_codec_is_exact_and_reads_the_older_png_files():
    from rerender import packing

    rng = np.random.default_rng(4)
    flow = (rng.standard_normal((33, 47, 2)) * 30).astype(np.float32)
    entries, values = packing.encode_flow_values(flow)
    assert "png" not in entries and entries["z16"].dtype == np.uint8
    assert packing.decode_flow(entries).tobytes() == values.tobytes()
    # the values are those the 16-bit PNG held: an older work directory's flow reads the same
    assert packing.decode_flow(_png_flow_entries(flow)).tobytes() == values.tobytes()
    bad = dict(entries, z16=entries["z16"][: len(entries["z16"]) // 2])
    with pytest.raises(ValueError, match="flow"):
        packing.decode_flow(bad)
    with pytest.raises(ValueError, match="do not hold"):
        packing.decode_flow(dict(entries, shape=np.array([33, 48], np.int32)))


def test_cache_reads_an_older_png_flow_and_recomputes_a_damaged_one(tmp_path):
    from rerender.files import save_npz

    frames = moving_pattern(2, 32, 40)
    be = _ConstantFlow()
    cache = FlowCache(tmp_path, be)
    expected = cache.get(0, 1, frames[0], frames[1])
    assert be.calls == 1
    # an older work directory: the PNG flow (with its digest record) is read, not recomputed
    save_npz(cache.path(1, 0), **_png_flow_entries(be(frames[1], frames[0]), 4))  # motion > 1024 px
    be.calls = 0
    older = FlowCache(tmp_path, be).get(1, 0, frames[1], frames[0])
    assert be.calls == 0 and older.tobytes() == expected.tobytes()
    # damage that the digest record cannot catch (no record, as an older version may leave): the
    # zlib data is cut short, so the file does not decode and the flow is computed again
    entries = dict(np.load(cache.path(0, 1)))
    entries["z16"] = entries["z16"][:20]
    np.savez(cache.path(0, 1), **entries)
    cache.path(0, 1).with_name(f".{cache.path(0, 1).name}.b2").unlink()
    again = FlowCache(tmp_path, be).get(0, 1, frames[0], frames[1])
    assert be.calls == 1 and again.tobytes() == expected.tobytes()


def test_cache_reads_each_frame_once_and_passes_grey_to_dis(tmp_path):
    frames = moving_pattern(5, 40, 48, velocity=(1.5, 0.5))
    reads = []

    def frame(i):
        reads.append(i)
        return frames[i]

    cache = FlowCache(tmp_path, "dis", frames=frame)
    for i in range(4):
        fwd, bwd = cache.get(i, i + 1), cache.get(i + 1, i)
    assert sorted(reads) == [0, 1, 2, 3, 4]  # not once per flow (16 reads)
    # DIS takes grey frames: the kept grey frames give the flow of the colour frames, bit for bit
    from rerender.flow import grey
    from rerender.packing import quantise_flow

    dis = DISFlow()
    assert dis.takes_grey
    assert np.array_equal(dis(grey(frames[3]), grey(frames[4])), dis(frames[3], frames[4]))
    assert np.array_equal(fwd, quantise_flow(dis(frames[3], frames[4])))
    assert np.array_equal(bwd, quantise_flow(dis(frames[4], frames[3])))


def test_a_flow_asked_for_by_two_threads_is_computed_once(tmp_path):
    started, release = threading.Event(), threading.Event()

    class Slow(_ConstantFlow):
        def __call__(self, a, b):
            started.set()
            release.wait(10)
            return super().__call__(a, b)

    frames = moving_pattern(2, 24, 32)
    be = Slow()
    cache = FlowCache(tmp_path, be, frames=lambda i: frames[i])
    results = []
    first = threading.Thread(target=lambda: results.append(cache.get(0, 1)))
    second = threading.Thread(target=lambda: results.append(cache.get(0, 1)))
    first.start()
    assert started.wait(10)
    second.start()  # waits for the first thread's flow instead of computing it again
    second.join(0.2)
    release.set()
    first.join(10)
    second.join(10)
    assert be.calls == 1 and len(results) == 2 and results[0] is results[1]
