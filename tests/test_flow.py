"""rerender.flow: accuracy against known flow fields, backend registry, the on-disk cache."""
from __future__ import annotations

import threading

import cv2
import numpy as np
import pytest

from _clips import moving_pattern, texture
from rerender.flow import (DISFlow, FlowCache, available_flow_backends,
                           flow_at_working_size, get_flow_backend, register_flow_backend)

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


def test_working_size_flow_is_scaled_back_to_the_frame():
    # a translation computed on copies shrunk about 2x (each axis by its own ratio: 321 -> 160,
    # 203 -> 101) must come back on the frame's grid in the frame's pixels: +v, not v / 2
    v = (5.0, -3.0)
    a, b = moving_pattern(2, 203, 321, velocity=v, seed=4)
    calls = []

    def backend(x, y):
        calls.append(x.shape)
        return DISFlow()(x, y)

    fwd = flow_at_working_size(backend, a, b, 160)
    assert calls == [(101, 160, 3)]
    assert fwd.dtype == np.float32 and fwd.shape == (203, 321, 2) and fwd.flags.c_contiguous
    # measured: 0.02 px mean; a missing or swapped scale is off by 2.5 px or more
    assert epe(fwd, *v)[M:-M, M:-M].mean() < 0.3
    assert epe(flow_at_working_size(backend, b, a, 160), -v[0], -v[1])[M:-M, M:-M].mean() < 0.3


def test_working_size_leaves_frames_within_it_alone():
    # frames up to the working side (or without one) get the backend's own flow, byte for byte
    a, b = moving_pattern(2, 120, 160, velocity=(2.0, 1.0), seed=5)
    direct = DISFlow()(a, b)
    assert np.array_equal(flow_at_working_size(DISFlow(), a, b, 160), direct)
    assert np.array_equal(flow_at_working_size(DISFlow(), a, b, None), direct)
    with pytest.raises(ValueError, match="working side"):
        flow_at_working_size(DISFlow(), a, b, 4)


def test_flow_cache_computes_large_frames_at_its_working_side(tmp_path):
    # the propagation job's cache (working_side set) stores the working-size flow, scaled back
    v = (5.0, -3.0)
    a, b = moving_pattern(2, 203, 321, velocity=v, seed=4)
    cache = FlowCache(tmp_path, "dis", working_side=160)
    got = cache.get(0, 1, a, b)
    want = flow_at_working_size(DISFlow(), a, b, 160)
    assert got.shape == (203, 321, 2)
    assert np.abs(got - want).max() <= 1 / 64  # the 1/32-px storage step, rounded
    assert not np.allclose(got, DISFlow()(a, b), atol=1 / 64)  # not the full-size flow
    assert np.array_equal(FlowCache(tmp_path, "dis").get(0, 1), got)  # read back as stored


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
