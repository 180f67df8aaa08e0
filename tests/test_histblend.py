"""Histogram-preserving blending and min-error combination: endpoint identities, histogram
preservation against a reference, variance preservation, a direct numpy re-implementation, bad args."""
import functools

import numpy as np
import pytest

import rerender

# These tests pin the CPU core; tests/test_cuda.py compares the CUDA backend against it.
histogram_blend = functools.partial(rerender.histogram_blend, backend="cpu")
min_error_combine = functools.partial(rerender.min_error_combine, backend="cpu")

H, W = 64, 96


def _bimodal(seed, shape=(H, W, 3)):
    """A texture whose histogram a linear blend destroys (two modes collapse into one)."""
    r = np.random.default_rng(seed)
    x = np.where(r.random(shape) < 0.5, r.normal(60, 15, shape), r.normal(190, 20, shape))
    return np.clip(x, 0, 255).astype(np.uint8)


def _w1(x, y):
    """Mean over channels of the Wasserstein-1 distance between value distributions, / 255
    (integral of |quantile_x - quantile_y|, sampled at 4096 levels so sizes may differ)."""
    levels = (np.arange(4096) + 0.5) / 4096
    x = x.reshape(-1, x.shape[-1]).astype(np.float64)
    y = y.reshape(-1, y.shape[-1]).astype(np.float64)
    return float(np.mean([
        np.abs(np.quantile(x[:, c], levels, method="inverted_cdf")
               - np.quantile(y[:, c], levels, method="inverted_cdf")).mean() / 255
        for c in range(x.shape[1])
    ]))


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_weights_one_and_zero_return_the_inputs_exactly(dtype):
    a, b = _bimodal(1).astype(dtype), _bimodal(2).astype(dtype)
    np.testing.assert_array_equal(histogram_blend(a, b, 1.0), a)
    np.testing.assert_array_equal(histogram_blend(a, b, 0.0), b)
    # per pixel too: a where the weight is 1, b where it is 0
    wmap = (np.random.default_rng(3).random((H, W)) < 0.5).astype(np.float32)
    out = histogram_blend(a, b, wmap)
    np.testing.assert_array_equal(out, np.where(wmap[..., None] == 1, a, b))


def test_reference_round_trip_is_exact_for_uint8():
    # weight 1 with reference a: G = T_a(a) and T_a^-1(T_a(a)) = a (also through the tie handling)
    a, b = _bimodal(1), _bimodal(2)
    np.testing.assert_array_equal(histogram_blend(a, b, 1.0, reference=a), a)
    af, bf = a.astype(np.float32) / 255, b.astype(np.float32) / 255
    np.testing.assert_allclose(histogram_blend(af, bf, 1.0, reference=af), af, atol=1e-6)


@pytest.mark.parametrize("weight", [0.5, 0.3, "map"])
@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_blend_keeps_the_reference_histogram_where_a_linear_blend_does_not(weight, dtype):
    a, b = _bimodal(1), _bimodal(2)
    if weight == "map":
        weight = np.random.default_rng(5).uniform(0.2, 0.8, (H, W)).astype(np.float32)
    scale = 1.0 if dtype == np.uint8 else 1 / 255
    af, bf = (a * scale).astype(dtype), (b * scale).astype(dtype)
    out = histogram_blend(af, bf, weight, reference=af)
    assert out.dtype == dtype and out.shape == a.shape
    w = weight[..., None] if isinstance(weight, np.ndarray) else weight
    linear = w * a.astype(np.float64) + (1 - w) * b
    d_blend, d_linear = _w1(out / scale, a), _w1(linear, a)
    assert d_blend < 0.005
    assert d_linear > 10 * d_blend and d_linear > 0.05


def test_reference_may_differ_in_size():
    a, b = _bimodal(1), _bimodal(2)
    ref = _bimodal(7, shape=(40, 50, 3))
    out = histogram_blend(a, b, 0.5, reference=ref)
    assert _w1(out, ref) < 0.005


def test_variance_is_preserved():
    rng = np.random.default_rng(3)
    a = rng.normal(0.5, 0.1, (H, W, 3)).astype(np.float32)
    b = rng.normal(0.5, 0.1, (H, W, 3)).astype(np.float32)
    out = histogram_blend(a, b, 0.5)
    linear = 0.5 * a + 0.5 * b
    assert abs(out.std() / a.std() - 1) < 0.03
    assert abs(linear.std() / a.std() - 1 / np.sqrt(2)) < 0.03
    assert abs(out.mean() - 0.5) < 0.005


def test_constant_channels_survive():
    # all-tied channels: every pixel shares the mid-rank; the reference's constant comes back
    a = np.full((H, W, 2), 17, np.uint8)
    b = _bimodal(2, shape=(H, W, 2))
    np.testing.assert_array_equal(histogram_blend(b, a, 0.5, reference=a), a)
    out = histogram_blend(a.astype(np.float32), b.astype(np.float32), 0.5, reference=a.astype(np.float32))
    np.testing.assert_allclose(out, 17.0)


def _numpy_reference_blend(a, b, wa, ref):
    """Independent re-implementation (scipy's ranks and normal quantiles)."""
    special = pytest.importorskip("scipy.special")
    stats = pytest.importorskip("scipy.stats")
    out = np.empty(a.shape, np.float64)
    wb = 1 - wa
    for c in range(a.shape[-1]):
        ga = special.ndtri((stats.rankdata(a[..., c].ravel()) - 0.5) / a[..., c].size)
        gb = special.ndtri((stats.rankdata(b[..., c].ravel()) - 0.5) / b[..., c].size)
        g = (wa.ravel() * ga + wb.ravel() * gb) / np.sqrt(wa.ravel() ** 2 + wb.ravel() ** 2)
        u = special.ndtr(g)
        r = np.sort(ref[..., c].ravel()).astype(np.float64)
        if a.dtype == np.uint8:  # discrete quantile: smallest v with P(ref <= v) >= u
            cdf = np.cumsum(np.bincount(r.astype(int), minlength=256)) / r.size
            out[..., c] = np.searchsorted(cdf, u, side="left").reshape(a.shape[:2])
        else:  # continuous quantile at sorted position u N - 0.5
            out[..., c] = np.interp(u * r.size - 0.5, np.arange(r.size), r).reshape(a.shape[:2])
    return out


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_matches_a_numpy_reimplementation(dtype):
    rng = np.random.default_rng(11)
    a = _bimodal(1, (24, 32, 3)).astype(dtype)
    b = (rng.random((24, 32, 3)) * 255).astype(np.uint8).astype(dtype)
    ref = _bimodal(9, (20, 30, 3)).astype(dtype)
    wa = rng.random((24, 32)).astype(np.float32)
    out = histogram_blend(a, b, wa, reference=ref)
    expected = _numpy_reference_blend(a, b, wa.astype(np.float64), ref)
    if dtype == np.uint8:
        # a value exactly on a CDF step may round either way in the last ulp
        assert np.mean(out != expected) < 1e-3 and np.abs(out - expected).max() <= 1
    else:
        np.testing.assert_allclose(out, expected, atol=1e-3)


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_threads_do_not_change_the_result(dtype):
    a, b = _bimodal(1).astype(dtype), _bimodal(2).astype(dtype)
    wmap = np.random.default_rng(0).random((H, W)).astype(np.float32)
    for ref in (None, a):
        np.testing.assert_array_equal(histogram_blend(a, b, wmap, ref, threads=1),
                                      histogram_blend(a, b, wmap, ref, threads=2))


def test_scalar_weight_forms_agree():
    a, b = _bimodal(1), _bimodal(2)
    expected = histogram_blend(a, b, np.full((H, W), 0.25, np.float32), reference=a)
    for w in (0.25, np.float32(0.25), np.array(0.25)):
        np.testing.assert_array_equal(histogram_blend(a, b, w, reference=a), expected)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(a=np.zeros((8, 8, 3), np.int16)), "a: unsupported dtype"),
        (dict(a=None), "a: expected a numpy array"),
        (dict(b=np.zeros((8, 8, 3), np.float32)), r"b: dtype float32 does not match a \(uint8\)"),
        (dict(b=np.zeros((8, 9, 3), np.uint8)), r"b: shape \(8, 9, 3\) does not match a"),
        (dict(b=np.zeros((8, 8, 2), np.uint8)), "b: shape"),
        (dict(weight_a=1.5), r"weight_a: must be in \[0, 1\]"),
        (dict(weight_a=float("nan")), "weight_a: must be finite"),
        (dict(weight_a=True), "weight_a: expected a number"),
        (dict(weight_a=None), "weight_a: expected a number"),
        (dict(weight_a="0.5"), "weight_a: expected a numpy array"),
        (dict(weight_a=np.zeros((8, 8), np.uint8)), "weight_a: dtype uint8"),
        (dict(weight_a=np.zeros((8, 7), np.float32)), "weight_a: size 8x7 does not match a"),
        (dict(weight_a=np.zeros((8, 8, 2), np.float32)), "weight_a: expected 1 channel"),
        (dict(weight_a=np.full((8, 8), -0.1, np.float32)), r"weight_a: values must be in \[0, 1\]"),
        (dict(weight_a=np.full((8, 8), np.nan, np.float32)), r"weight_a: values must be in \[0, 1\]"),
        (dict(reference=np.zeros((8, 8, 3), np.float32)), "reference: dtype float32"),
        (dict(reference=np.zeros((8, 8, 1), np.uint8)), "reference: 1 channel"),
        (dict(reference=np.zeros((0, 8, 3), np.uint8)), "reference: empty"),
        (dict(threads=-2), "threads: must be in"),
        (dict(backend="gpu"), "backend: expected one of"),
    ],
)
def test_histogram_blend_bad_arguments(kwargs, match):
    args = dict(a=np.zeros((8, 8, 3), np.uint8), b=np.zeros((8, 8, 3), np.uint8), weight_a=0.5)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        histogram_blend(**args)


def test_float_inputs_must_be_finite():
    a = np.zeros((4, 4, 3), np.float32)
    bad = a.copy()
    bad[1, 2, 0] = np.nan
    for name in ("a", "b", "reference"):
        args = dict(a=a, b=a, weight_a=0.5, reference=a)
        args[name] = bad
        with pytest.raises(ValueError, match=f"{name}: contains NaN"):
            histogram_blend(**args)


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_min_error_combine_picks_per_pixel(dtype):
    rng = np.random.default_rng(0)
    a = (rng.random((H, W, 3)) * 255).astype(dtype)
    b = (rng.random((H, W, 3)) * 255).astype(dtype)
    ea = rng.random((H, W)).astype(np.float32)
    eb = rng.random((H, W)).astype(np.float32)
    eb[::7] = ea[::7]  # ties go to a
    ea[5, 5], eb[6, 6] = np.inf, np.inf
    out, mask = min_error_combine(a, b, ea, eb)
    take = ea <= eb
    assert mask.dtype == np.uint8 and mask.shape == (H, W)
    np.testing.assert_array_equal(mask, take.astype(np.uint8))
    np.testing.assert_array_equal(out, np.where(take[..., None], a, b))
    assert mask[5, 5] == 0 and mask[6, 6] == 1


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(a=np.zeros((8, 8, 3), np.float64)), "a: unsupported dtype"),
        (dict(b=np.zeros((8, 8, 3), np.float32)), "b: dtype float32 does not match a"),
        (dict(b=np.zeros((8, 8), np.uint8)), "b: shape"),
        (dict(error_a=np.zeros((8, 8), np.uint8)), "error_a: dtype uint8"),
        (dict(error_a=np.zeros((9, 8), np.float32)), "error_a: size 9x8"),
        (dict(error_b=np.zeros((8, 8, 2), np.float32)), "error_b: expected 1 channel"),
        (dict(error_b=np.full((8, 8), np.nan, np.float32)), "error_b: contains NaN"),
        (dict(error_b=None), "error_b: expected a numpy array"),
        (dict(threads=2000), "threads: must be in"),
        (dict(backend=""), "backend: expected one of"),
    ],
)
def test_min_error_combine_bad_arguments(kwargs, match):
    args = dict(a=np.zeros((8, 8, 3), np.uint8), b=np.zeros((8, 8, 3), np.uint8),
                error_a=np.zeros((8, 8), np.float32), error_b=np.zeros((8, 8), np.float32))
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        min_error_combine(**args)
