"""Forward-backward occlusion check: consistent flows, an inconsistent region, out-of-frame motion."""
import functools

import numpy as np
import pytest

import rerender

# These tests pin the CPU core; tests/test_cuda.py compares the CUDA backend against it.
occlusion = functools.partial(rerender.occlusion, backend="cpu")


def _const_flow(h, w, dx, dy):
    flow = np.empty((h, w, 2), np.float32)
    flow[..., 0], flow[..., 1] = dx, dy
    return flow


def _rotation_flow(h, w, angle):
    """Flow of a rotation by `angle` about the image centre: f(x) = R (x - c) + c - x."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    cx, cy = (w - 1) / 2, (h - 1) / 2
    c, s = np.cos(angle), np.sin(angle)
    rx = c * (xs - cx) - s * (ys - cy) + cx
    ry = s * (xs - cx) + c * (ys - cy) + cy
    return np.stack([rx - xs, ry - ys], axis=-1).astype(np.float32)


def test_translation_with_its_inverse_is_consistent_and_exits_the_frame():
    h, w = 20, 30
    mask = occlusion(_const_flow(h, w, 3, -2), _const_flow(h, w, -3, 2))
    assert mask.dtype == np.uint8 and mask.shape == (h, w)
    expected = np.zeros((h, w), np.uint8)
    expected[:, w - 3:] = 1  # x + 3 > w - 1
    expected[:2, :] = 1      # y - 2 < 0
    np.testing.assert_array_equal(mask, expected)


def test_rotation_with_its_inverse_has_no_interior_occlusion():
    h, w = 48, 64
    fwd, bwd = _rotation_flow(h, w, 0.1), _rotation_flow(h, w, -0.1)
    mask = occlusion(fwd, bwd)
    ys, xs = np.mgrid[0:h, 0:w]
    target_x, target_y = xs + fwd[..., 0], ys + fwd[..., 1]
    inside = (target_x >= 0) & (target_x <= w - 1) & (target_y >= 0) & (target_y <= h - 1)
    assert inside.mean() > 0.7
    np.testing.assert_array_equal(mask, (~inside).astype(np.uint8))


def test_inconsistent_region_is_exactly_occluded():
    h, w = 32, 40
    fwd, bwd = _const_flow(h, w, 2, 1), _const_flow(h, w, -2, -1)
    bwd[10:18, 12:22] = (5.0, -4.0)  # b disagrees with f in this block of b's grid
    mask = occlusion(fwd, bwd)
    expected = np.zeros((h, w), np.uint8)
    expected[10 - 1:18 - 1, 12 - 2:22 - 2] = 1  # pixels of a that land in the block
    expected[:, w - 2:] = 1
    expected[h - 1:, :] = 1
    np.testing.assert_array_equal(mask, expected)


def test_thresholds_follow_the_formula():
    # |f + b| = 1 for f = (10, 0), b = (-9, 0): occluded iff 1 > alpha1 * 19 + alpha2
    h, w = 5, 30
    fwd, bwd = _const_flow(h, w, 10, 0), _const_flow(h, w, -9, 0)
    interior = np.s_[:, :w - 10]
    assert occlusion(fwd, bwd, alpha1=0.0, alpha2=0.99)[interior].all()
    assert not occlusion(fwd, bwd, alpha1=0.0, alpha2=1.01)[interior].any()
    assert occlusion(fwd, bwd, alpha1=0.01, alpha2=0.5)[interior].all()  # 1 > 0.69
    assert not occlusion(fwd, bwd, alpha1=0.03, alpha2=0.5)[interior].any()  # 1 < 1.07


def test_motion_out_of_frame_is_occluded_even_when_consistent():
    h, w = 10, 10
    fwd = _const_flow(h, w, 0, 0)
    fwd[4, 4] = (100.0, 0.0)
    fwd[6, 2] = (0.0, -7.0)
    mask = occlusion(fwd, np.zeros((h, w, 2), np.float32), alpha1=0.0, alpha2=1e4)
    expected = np.zeros((h, w), np.uint8)
    expected[4, 4] = expected[6, 2] = 1
    np.testing.assert_array_equal(mask, expected)


def test_threads_do_not_change_the_result():
    rng = np.random.default_rng(0)
    fwd = rng.normal(scale=2, size=(40, 50, 2)).astype(np.float32)
    bwd = rng.normal(scale=2, size=(40, 50, 2)).astype(np.float32)
    np.testing.assert_array_equal(occlusion(fwd, bwd, threads=1), occlusion(fwd, bwd, threads=2))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(flow_ab=np.zeros((4, 5, 2), np.uint8)), "flow_ab: dtype uint8"),
        (dict(flow_ab=np.zeros((4, 5), np.float32)), "flow_ab: expected 2 channel"),
        (dict(flow_ab=None), "flow_ab: expected a numpy array"),
        (dict(flow_ab=np.full((4, 5, 2), np.nan, np.float32)), "flow_ab: contains NaN"),
        (dict(flow_ba=np.zeros((4, 5, 3), np.float32)), "flow_ba: expected 2 channel"),
        (dict(flow_ba=np.zeros((5, 5, 2), np.float32)), "flow_ba: size 5x5 does not match flow_ab"),
        (dict(flow_ba=np.full((4, 5, 2), np.inf, np.float32)), "flow_ba: contains infinite"),
        (dict(alpha1=-0.1), r"alpha1: must be in \[0, 1\]"),
        (dict(alpha1=1.5), r"alpha1: must be in \[0, 1\]"),
        (dict(alpha1=float("nan")), "alpha1: must be finite"),
        (dict(alpha2=-1.0), "alpha2: must be in"),
        (dict(alpha2=float("inf")), "alpha2: must be finite"),
        (dict(threads=5000), "threads: must be in"),
        (dict(backend=3), "backend: expected one of"),
    ],
)
def test_bad_arguments(kwargs, match):
    args = dict(flow_ab=np.zeros((4, 5, 2), np.float32), flow_ba=np.zeros((4, 5, 2), np.float32))
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        occlusion(**args)
