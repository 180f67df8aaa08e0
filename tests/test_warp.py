"""Backward warping: known answers for integer, half-pixel and nearest sampling, plus bad args."""
import functools

import numpy as np
import pytest

import rerender

# These tests pin the CPU core; tests/test_cuda.py compares the CUDA backend against it.
warp = functools.partial(rerender.warp, backend="cpu")


def _const_flow(h, w, dx, dy):
    flow = np.empty((h, w, 2), np.float32)
    flow[..., 0], flow[..., 1] = dx, dy
    return flow


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
@pytest.mark.parametrize("channels", [1, 3, 5])
@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
def test_integer_flow_is_a_shift(dtype, channels, mode):
    rng = np.random.default_rng(0)
    img = (rng.random((23, 31, channels)) * 255).astype(dtype)
    out = warp(img, _const_flow(23, 31, 3, -2), mode)
    assert out.dtype == img.dtype and out.shape == img.shape
    # out(y, x) = img(y - 2, x + 3): exact wherever the source lies inside the frame
    np.testing.assert_array_equal(out[2:, :-3], img[:-2, 3:])
    # beyond the border the sample is clamped: last column / first row of the source
    np.testing.assert_array_equal(out[2:, -1], img[:-2, -1])
    np.testing.assert_array_equal(out[0, :-3], img[0, 3:])


def test_two_dimensional_input_keeps_its_shape():
    img = np.arange(20, dtype=np.uint8).reshape(4, 5)
    out = warp(img, _const_flow(4, 5, 1, 0))
    assert out.shape == (4, 5)
    np.testing.assert_array_equal(out[:, :-1], img[:, 1:])


def test_bilinear_half_pixel_known_values():
    img = np.array([[0, 10, 20, 30], [40, 50, 60, 70], [80, 90, 100, 110]], np.float32)
    out = warp(img, _const_flow(3, 4, 0.5, 0.5))
    # average of the 2x2 block to the lower right; the last row/column clamp
    np.testing.assert_allclose(out[:2, :3], [[25, 35, 45], [65, 75, 85]])
    np.testing.assert_allclose(out[2, :3], [85, 95, 105])  # bottom row: y clamped, x half-way
    np.testing.assert_allclose(out[:2, 3], [50, 90])  # last column: x clamped, y half-way
    quarter = warp(img, _const_flow(3, 4, 0.25, 0.0))
    np.testing.assert_allclose(quarter[1, :3], [42.5, 52.5, 62.5])
    u8 = warp(img.astype(np.uint8), _const_flow(3, 4, 0.25, 0.0))
    np.testing.assert_array_equal(u8[1, :3], [43, 53, 63])  # 42.5 rounds half up


def test_flow_warps_a_flow_field():
    # flows (float32, 2 channels) warp like any image
    h, w = 8, 9
    field = np.random.default_rng(1).normal(size=(h, w, 2)).astype(np.float32)
    out = warp(field, _const_flow(h, w, -1, 1))
    np.testing.assert_array_equal(out[:-1, 1:], field[1:, :-1])


def test_nearest_keeps_mask_values_in_the_set():
    rng = np.random.default_rng(2)
    mask = rng.choice(np.array([0, 7, 255], np.uint8), size=(30, 40))
    flow = rng.normal(scale=4, size=(30, 40, 2)).astype(np.float32)
    out = warp(mask, flow, "nearest")
    assert set(np.unique(out)) <= {0, 7, 255}
    # and it is the value of the rounded, clamped position
    ys, xs = np.mgrid[0:30, 0:40]
    sx = np.clip(np.floor(xs + flow[..., 0] + 0.5), 0, 39).astype(int)
    sy = np.clip(np.floor(ys + flow[..., 1] + 0.5), 0, 29).astype(int)
    np.testing.assert_array_equal(out, mask[sy, sx])


def test_bilinear_matches_a_reference_implementation():
    rng = np.random.default_rng(3)
    img = rng.random((17, 19, 3)).astype(np.float32)
    flow = rng.normal(scale=3, size=(17, 19, 2)).astype(np.float32)
    ys, xs = np.mgrid[0:17, 0:19].astype(np.float32)
    px = np.clip(xs + flow[..., 0], 0, 18)
    py = np.clip(ys + flow[..., 1], 0, 16)
    x0, y0 = np.floor(px).astype(int), np.floor(py).astype(int)
    x1, y1 = np.minimum(x0 + 1, 18), np.minimum(y0 + 1, 16)
    ax, ay = (px - x0)[..., None], (py - y0)[..., None]
    ref = (img[y0, x0] * (1 - ax) * (1 - ay) + img[y0, x1] * ax * (1 - ay)
           + img[y1, x0] * (1 - ax) * ay + img[y1, x1] * ax * ay)
    np.testing.assert_allclose(warp(img, flow), ref, atol=1e-5)


def test_valid_map_marks_samples_inside_the_frame():
    img = np.zeros((6, 8), np.uint8)
    out, valid = warp(img, _const_flow(6, 8, 2.5, 0), return_valid=True)
    assert valid.dtype == np.uint8 and valid.shape == (6, 8)
    # x + 2.5 <= 7  <=>  x <= 4.5
    np.testing.assert_array_equal(valid, np.broadcast_to([1, 1, 1, 1, 1, 0, 0, 0], (6, 8)))


def test_threads_do_not_change_the_result():
    rng = np.random.default_rng(4)
    img = (rng.random((40, 50, 3)) * 255).astype(np.uint8)
    flow = rng.normal(scale=5, size=(40, 50, 2)).astype(np.float32)
    np.testing.assert_array_equal(warp(img, flow, threads=1), warp(img, flow, threads=2))


def test_non_contiguous_input_is_accepted():
    img = np.arange(2 * 6 * 8, dtype=np.float32).reshape(6, 8, 2)[:, ::2]
    out = warp(img, _const_flow(6, 4, 1, 0))
    np.testing.assert_array_equal(out[:, :-1], img[:, 1:])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(image=np.zeros((4, 5), np.float64)), "image: unsupported dtype"),
        (dict(image=np.zeros((0, 5), np.uint8)), "image: empty"),
        (dict(image=np.zeros((4, 5, 1, 1), np.uint8)), "image: expected an H x W"),
        (dict(image=[[1, 2]]), "image: expected a numpy array"),
        (dict(image=None), "image: expected a numpy array, got None"),
        (dict(flow=np.zeros((4, 5, 2), np.uint8)), "flow: dtype uint8"),
        (dict(flow=np.zeros((4, 5, 3), np.float32)), "flow: expected 2 channel"),
        (dict(flow=np.zeros((4, 6, 2), np.float32)), "flow: size 4x6 does not match image"),
        (dict(flow=np.full((4, 5, 2), np.nan, np.float32)), "flow: contains NaN"),
        (dict(flow=np.full((4, 5, 2), np.inf, np.float32)), "flow: contains infinite"),
        (dict(mode="cubic"), "mode: expected 'bilinear' or 'nearest'"),
        (dict(threads=-1), "threads: must be in"),
        (dict(backend="tpu"), "backend: expected one of"),
    ],
)
def test_bad_arguments(kwargs, match):
    args = dict(image=np.zeros((4, 5), np.uint8), flow=np.zeros((4, 5, 2), np.float32))
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        warp(**args)


def test_cuda_backend_without_device_is_a_clear_error():
    if rerender.backends()["cuda_usable"]:
        pytest.skip("a CUDA device is usable here")
    with pytest.raises(ValueError, match="CUDA is not usable"):
        warp(np.zeros((2, 2), np.uint8), np.zeros((2, 2, 2), np.float32), backend="cuda")
