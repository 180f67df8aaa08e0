"""Temporal-aware blending: the selection mask never switches back; identical candidates pass unchanged."""
import cv2
import numpy as np
import pytest

from rerender.temporal_blend import blend_candidates, distance_weights, next_selection_mask, prefer_a


def test_distance_weights_and_range_check():
    assert distance_weights(13, 10, 20) == (3.0, 7.0)
    with pytest.raises(ValueError, match="segment"):
        distance_weights(21, 10, 20)


def test_prefer_a_weighs_errors_by_distance():
    ea = np.array([[10.0, 10.0]])
    eb = np.array([[20.0, 40.0]])
    # frame 1 of 0..4: a is 1 away, b 3 away -> a wins both; frame 3: a needs 3*10 < 1*eb
    assert prefer_a(ea, eb, 1, 3).tolist() == [[1, 1]]
    assert prefer_a(ea, eb, 3, 1).tolist() == [[0, 1]]
    assert prefer_a(ea, eb, 2, 2).tolist() == [[1, 1]]


def test_first_mask_is_the_choice_itself():
    rng = np.random.default_rng(0)
    ea, eb = rng.random((2, 6, 7)).astype(np.float32)
    assert np.array_equal(next_selection_mask(None, None, ea, eb, 1, 9), prefer_a(ea, eb, 1, 9))


@pytest.mark.parametrize("shift", [(0, 0), (1, 0), (-1, 2)])
def test_a_pixel_never_switches_back_to_the_earlier_key(shift):
    rng = np.random.default_rng(1)
    h, w, a, b = 20, 24, 0, 10
    flow = np.zeros((h, w, 2), np.float32)
    flow[..., 0], flow[..., 1] = shift  # frame i's pixel x was at x + shift in frame i-1
    mask = None
    for i in range(a + 1, b):
        ea, eb = (rng.random((2, h, w)) * 100).astype(np.float32)
        new = next_selection_mask(mask, flow if mask is not None else None, ea, eb, i - a, b - i)
        assert set(np.unique(new)) <= {0, 1}
        if mask is not None:
            ys, xs = np.mgrid[0:h, 0:w]
            src = mask[np.clip(ys + shift[1], 0, h - 1), np.clip(xs + shift[0], 0, w - 1)]
            assert np.all(new <= src), f"frame {i}: a pixel went back to key {a}"
        mask = new
    assert mask.mean() < 0.5  # near the later key most pixels have moved over to it


def test_blending_identical_candidates_returns_them_unchanged():
    rng = np.random.default_rng(2)
    img = rng.integers(0, 256, (32, 40, 3)).astype(np.uint8)
    mask = (rng.random((32, 40)) < 0.5).astype(np.uint8)
    assert np.array_equal(blend_candidates(img, img, mask), img)
    assert np.array_equal(blend_candidates(img, img, mask, poisson=True), img)


def test_full_masks_select_one_candidate():
    rng = np.random.default_rng(3)
    a, b = rng.integers(0, 256, (2, 16, 16, 3)).astype(np.uint8)
    assert np.array_equal(blend_candidates(a, b, np.ones((16, 16), np.uint8)), a)
    assert np.array_equal(blend_candidates(a, b, np.zeros((16, 16), np.uint8)), b)


def test_blend_maps_each_candidate_monotonically_towards_the_combination():
    rng = np.random.default_rng(4)
    a = rng.integers(0, 128, (24, 24, 3)).astype(np.uint8)
    b = rng.integers(128, 256, (24, 24, 3)).astype(np.uint8)
    mask = np.zeros((24, 24), np.uint8)
    mask[:, :12] = 1
    out = blend_candidates(a, b, mask).astype(int)
    for src, sel in ((a, mask > 0), (b, mask == 0)):
        for c in range(3):
            v, o = src[..., c][sel].astype(int), out[..., c][sel]
            order = np.argsort(v, kind="stable")
            assert np.all(np.diff(o[order]) >= 0)  # brighter in the candidate -> not darker out
    # the result takes the range of the combination (both candidates), not of one candidate
    assert out.min() < 64 and out.max() > 192


def test_mismatched_candidates_are_rejected():
    with pytest.raises(ValueError, match="candidates"):
        blend_candidates(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 5, 3), np.uint8), np.ones((4, 4)))


# ------------------------------------------------------------------------------------------------
# the "soft" blend (default): known answers and invariants

from rerender.temporal_blend import (  # noqa: E402
    BLEND_METHODS, WEIGHT_STEP, BlendOptions, SegmentInputs, blend_segment, mix, restore_detail, soft_blend, soft_weights)


def _texture(seed, shape=(40, 48, 3)):
    """Fine-grained texture: the kind of content averaging two candidates washes out."""
    r = np.random.default_rng(seed)
    return np.clip(r.normal(128, 40, shape), 0, 255).astype(np.uint8)


def _segment(frames_a, frames_b, errors_a, errors_b, flows=None, keys=None, **options):
    """Run blend_segment over frames 1..n of a segment 0..n+1; returns (images, weights) lists."""
    n = len(frames_a)
    h, w = frames_a[0].shape[:2]
    zero = np.zeros((h, w, 2), np.float32)
    key_a, key_b = keys if keys is not None else (frames_a[0], frames_b[-1])
    options.setdefault("method", "soft")
    inputs = {k: options.pop(k) for k in ("region", "scratch") if k in options}
    got = list(blend_segment(SegmentInputs(0, n + 1, key_a, key_b,
                                           lambda i: (frames_a[i - 1], frames_b[i - 1], errors_a[i - 1], errors_b[i - 1]),
                                           lambda i, j: zero if flows is None else flows(i, j), **inputs),
                             BlendOptions(**options)))
    assert [i for i, _, _ in got] == list(range(1, n + 1))
    return [img for _, img, _ in got], [wt for _, _, wt in got]


def test_soft_blend_weight_one_or_zero_returns_that_candidate():
    a, b = _texture(1), _texture(2)
    ones = np.ones(a.shape[:2], np.float32)
    assert np.array_equal(soft_blend(a, b, ones), a)
    assert np.array_equal(soft_blend(a, b, 0 * ones), b)
    # per pixel too, away from where the weight changes (the energy window reaches 16 px)
    a, b = _texture(1, (40, 96, 3)), _texture(2, (40, 96, 3))
    half = np.zeros(a.shape[:2], np.float32)
    half[:, :48] = 1
    out = soft_blend(a, b, half)
    assert np.array_equal(out[:, :31], a[:, :31]) and np.array_equal(out[:, 65:], b[:, 65:])


@pytest.mark.parametrize("smoothing", [0.0, 0.5, 0.9])
def test_identical_candidates_come_back_unchanged(smoothing):
    rng = np.random.default_rng(4)
    frames = [_texture(10 + i) for i in range(6)]  # a different texture every frame: nothing to carry
    errors = [rng.random((40, 48)).astype(np.float32) * 100 for _ in range(6)]
    keys = (_texture(30), _texture(31))
    flows = lambda i, j: rng.normal(0, 2, (40, 48, 2)).astype(np.float32)  # noqa: E731
    out, _ = _segment(frames, frames, errors, errors[::-1], flows=flows, keys=keys, smoothing=smoothing)
    for got, want in zip(out, frames):
        assert np.array_equal(got, want)
    w = rng.random((40, 48)).astype(np.float32)
    assert np.array_equal(soft_blend(frames[0], frames[0], w), frames[0])


def test_constant_colours_stay_flat():
    h, w = 24, 32
    c1 = np.full((h, w, 3), (200, 40, 90), np.uint8)
    c2 = np.full((h, w, 3), (20, 140, 250), np.uint8)
    # the same colour in both candidates, in the keys and every frame: that colour exactly
    rng = np.random.default_rng(5)
    errs = [rng.random((h, w)).astype(np.float32) for _ in range(4)]
    flows = lambda i, j: rng.normal(0, 3, (h, w, 2)).astype(np.float32)  # noqa: E731
    out, _ = _segment([c1] * 4, [c1] * 4, errs, errs[::-1], flows=flows, keys=(c1, c1))
    assert all(np.array_equal(o, c1) for o in out)
    # two flat colours with a uniform weight: the flat linear mix, no texture invented
    for wa in (0.0, 0.25, 0.5, 1.0):
        got = soft_blend(c1, c2, np.full((h, w), wa, np.float32)).astype(int)
        want = np.rint(wa * c1[0, 0] + (1 - wa) * c2[0, 0].astype(float)).astype(int)
        assert np.abs(got - want).max() <= 1 and (got == got[0, 0]).all()


def _w1(x, y):
    """Mean over channels of the Wasserstein-1 distance between the value distributions, / 255."""
    levels = (np.arange(2048) + 0.5) / 2048
    x = x.reshape(-1, 3).astype(np.float64)
    y = y.reshape(-1, 3).astype(np.float64)
    return float(np.mean([np.abs(np.quantile(x[:, c], levels) - np.quantile(y[:, c], levels)).mean() / 255
                          for c in range(3)]))


@pytest.mark.parametrize("wa", [0.5, 0.3])
def test_fine_texture_keeps_the_candidates_histogram_where_a_linear_blend_narrows_it(wa):
    # two independently synthesised versions of a fine texture: averaging them halves its variance
    # (the histogram narrows around the mean); the detail restoration gives the energy back
    a, b = _texture(6, (64, 96, 3)), _texture(7, (64, 96, 3))
    w = np.full(a.shape[:2], wa, np.float32)
    ref = np.concatenate([a, b])
    linear = np.rint(mix(a, b, w)).astype(np.uint8)
    out = soft_blend(a, b, w)
    # measured: 0.006 against 0.030-0.036 for the linear blend
    assert _w1(out, ref) < 0.012 < 0.025 < _w1(linear, ref)
    assert abs(out.std() - ref.std()) < 0.1 * ref.std() < abs(linear.std() - ref.std())


def test_detail_restoration_only_amplifies_what_averaging_attenuated():
    a, b = _texture(8), _texture(9)
    w = np.full(a.shape[:2], 0.5, np.float32)
    blend = mix(a, b, w)
    restored = restore_detail(blend, a, b, w)
    # the local mean is kept, the fine band is scaled by a gain in [1, cap]
    assert abs(float(restored.mean()) - float(blend.mean())) < 0.5
    assert restored.std() > blend.std()
    assert np.array_equal(restore_detail(blend, a, b, w, strength=0.0), blend)


def test_weights_change_by_a_bounded_step_between_frames_on_a_static_scene():
    # error maps that swap from frame to frame (a random half of the pixels prefers a on even frames
    # and b on odd ones): the raw weights would flicker between the candidates
    rng = np.random.default_rng(11)
    h, w, n = 30, 36, 9
    frames_a = [_texture(40 + i, (h, w, 3)) for i in range(n)]
    frames_b = [_texture(60 + i, (h, w, 3)) for i in range(n)]
    pattern = cv2.GaussianBlur(rng.random((h, w)).astype(np.float32), (0, 0), 2) > 0.5
    low, high = np.float32(1.0), np.float32(1e4)
    ea = [np.where(pattern ^ (k % 2 == 1), low, high).astype(np.float32) for k in range(n)]
    eb = [np.where(pattern ^ (k % 2 == 1), high, low).astype(np.float32) for k in range(n)]
    raw = [soft_weights(ea[k], eb[k], k + 1, n - k) for k in range(n)]
    assert min(np.abs(raw[k + 1] - raw[k]).max() for k in range(n - 1)) > 0.9
    _, weights = _segment(frames_a, frames_b, ea, eb)
    steps = [np.abs(weights[k + 1].astype(int) - weights[k].astype(int)).max() / 255 for k in range(n - 1)]
    assert max(steps) <= WEIGHT_STEP + 1 / 255
    assert max(steps) >= WEIGHT_STEP - 1 / 255  # the weights do follow the errors, at the bounded pace


def test_soft_weights_prefer_the_lower_error_and_the_nearer_key():
    e_low = np.full((8, 8), 10.0, np.float32)
    e_high = np.full((8, 8), 1000.0, np.float32)
    assert (soft_weights(e_low, e_high, 5, 5) > 0.9).all()
    assert (soft_weights(e_high, e_low, 5, 5) < 0.1).all()
    same = np.full((8, 8), 50.0, np.float32)
    assert np.allclose(soft_weights(same, same, 5, 5), 0.5)
    assert (soft_weights(same, same, 1, 9) > 0.5).all() and (soft_weights(same, same, 9, 1) < 0.5).all()


def test_temporal_filtering_reduces_flicker_of_independently_noisy_candidates():
    # a static scene; each candidate is the truth plus fresh noise every frame (synthesis flicker)
    rng = np.random.default_rng(12)
    h, w, n = 40, 48, 9
    truth = cv2.GaussianBlur(rng.random((h, w, 3)).astype(np.float32), (0, 0), 3) * 255

    def noisy():
        return np.clip(truth + rng.normal(0, 12, truth.shape), 0, 255).astype(np.uint8)

    fa, fb = [noisy() for _ in range(n)], [noisy() for _ in range(n)]
    errs = [np.full((h, w), 100.0, np.float32)] * n
    keys = (np.rint(truth).astype(np.uint8),) * 2

    def flicker(frames):
        return np.mean([np.abs(frames[k + 1].astype(float) - frames[k]).mean() for k in range(n - 1)])

    def error(frames):
        return np.mean([np.abs(f.astype(float) - truth).mean() for f in frames])

    linear, _ = _segment(fa, fb, errs, errs, keys=keys, method="linear")
    filtered, _ = _segment(fa, fb, errs, errs, keys=keys, smoothing=0.5, detail=0.0)
    unfiltered, _ = _segment(fa, fb, errs, errs, keys=keys, smoothing=0.0, detail=0.0)
    assert flicker(filtered) < 0.8 * flicker(linear)
    assert flicker(unfiltered) == pytest.approx(flicker(linear), rel=0.1)
    assert error(filtered) < error(linear)


def test_a_moving_scene_is_filtered_along_the_flow():
    # a texture translating by (1, 0) px per frame: candidates carry it with noise; filtering along
    # the true flow must not smear it (the output stays closer to the truth than the linear blend)
    rng = np.random.default_rng(13)
    h, w, n = 40, 64, 7
    base = cv2.GaussianBlur(rng.random((h, w + n + 2, 3)).astype(np.float32), (0, 0), 1.5) * 255
    truth = [np.ascontiguousarray(base[:, k:k + w]) for k in range(n + 2)]  # frame k shifted by k px

    def cand(k):
        return np.clip(truth[k] + rng.normal(0, 10, truth[k].shape), 0, 255).astype(np.uint8)

    fa, fb = [cand(k) for k in range(1, n + 1)], [cand(k) for k in range(1, n + 1)]
    errs = [np.full((h, w), 100.0, np.float32)] * n

    def flows(i, j):  # frame i's pixel x shows what frame j shows at x - (i - j)... here x + (j - i)
        f = np.zeros((h, w, 2), np.float32)
        f[..., 0] = j - i
        return f

    keys = (np.rint(truth[0]).astype(np.uint8), np.rint(truth[n + 1]).astype(np.uint8))
    soft, _ = _segment(fa, fb, errs, errs, flows=flows, keys=keys, detail=0.0)
    linear, _ = _segment(fa, fb, errs, errs, flows=flows, keys=keys, method="linear")
    inner = (slice(None), slice(n + 2, w - n - 2))  # away from the borders the flow leaves

    def err(frames):
        return np.mean([np.abs(f.astype(float) - truth[k + 1])[inner].mean() for k, f in enumerate(frames)])

    assert err(soft) < 0.85 * err(linear)


def test_every_method_blends_a_segment():
    rng = np.random.default_rng(14)
    fa = [_texture(70 + i, (16, 20, 3)) for i in range(3)]
    fb = [_texture(80 + i, (16, 20, 3)) for i in range(3)]
    errs = [rng.random((16, 20)).astype(np.float32) for _ in range(3)]
    for method in BLEND_METHODS:
        for poisson in (False, True):
            out, weights = _segment(fa, fb, errs, errs[::-1], method=method, poisson=poisson)
            assert all(o.shape == (16, 20, 3) and o.dtype == np.uint8 for o in out)
            assert all(wt.shape == (16, 20) and wt.dtype == np.uint8 for wt in weights)
    # linear: weights by temporal distance exactly
    _, weights = _segment(fa, fb, errs, errs, method="linear")
    assert [int(wt[0, 0]) for wt in weights] == [191, 128, 64]


def test_soft_blend_scratch_folder_is_left_clean(tmp_path):
    fa = [_texture(90 + i, (16, 20, 3)) for i in range(3)]
    errs = [np.ones((16, 20), np.float32)] * 3
    (tmp_path / "mine.txt").write_text("not the blend's")
    a, _ = _segment(fa, fa[::-1], errs, errs, scratch=tmp_path / "s")
    b, _ = _segment(fa, fa[::-1], errs, errs)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.txt"]
    # a job stopped in the middle of a segment (the generator closed early) cleans up too
    zero = np.zeros((16, 20, 2), np.float32)
    gen = blend_segment(SegmentInputs(0, 4, fa[0], fa[-1], lambda i: (fa[i - 1], fa[-i], errs[0], errs[0]),
                                      lambda i, j: zero, scratch=tmp_path / "s"), BlendOptions("soft"))
    next(gen)
    gen.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.txt"]


@pytest.mark.parametrize("call, match", [
    (lambda a, b, w: soft_blend(a, b[:, :-1], w), "candidates"),
    (lambda a, b, w: soft_blend(a.astype(np.float64), b, w), "cand_a"),
    (lambda a, b, w: soft_blend(a.astype(np.float32), b, w), "candidates: dtypes"),
    (lambda a, b, w: soft_blend(a, b.astype(np.uint16), w), "cand_b"),
    (lambda a, b, w: soft_blend(a, b, w + 0.6), "weight_a"),
    (lambda a, b, w: soft_blend(a, b, w - 0.6), "weight_a"),
    (lambda a, b, w: soft_blend(a, b, np.full_like(w, np.nan)), "weight_a"),
    (lambda a, b, w: soft_blend(a, b, w[:-1]), "weight_a"),
    (lambda a, b, w: soft_blend(a, b, (w > 0.5).astype(np.uint8)), "weight_a"),
    (lambda a, b, w: soft_blend(a, b, w, detail=1.5), "strength"),
    (lambda a, b, w: restore_detail(a[:-1].astype(np.float32), a, b, w), "blend"),
    (lambda a, b, w: soft_weights(-w, w, 1, 1), "error_a"),
    (lambda a, b, w: soft_weights(w, w[:-1], 1, 1), "error maps"),
    (lambda a, b, w: soft_weights(w, w.astype(np.uint8), 1, 1), "error_b"),
    (lambda a, b, w: soft_weights(w, w, 0, 1), "distances"),
    (lambda a, b, w: soft_blend(a, b, w, region=w), "region"),
    (lambda a, b, w: soft_blend(a, b, w, region=np.ones((12, 13), bool)), "region"),
    (lambda a, b, w: blend_candidates(a, b, w > 0.5, region=np.ones((11, 14), bool)), "region"),
])
def test_bad_arguments_are_named(call, match):
    a, b = _texture(20, (12, 14, 3)), _texture(21, (12, 14, 3))
    w = np.full((12, 14), 0.5, np.float32)
    with pytest.raises(ValueError, match=match):
        call(a, b, w)


def test_float_candidates_blend_in_float_without_quantising():
    # float32 frames of a high-bit-depth plate (the working format: the 0..255 scale, fractional
    # values): every method returns float32 and agrees with the uint8 path up to the rounding
    rng = np.random.default_rng(23)
    fa = [_texture(100 + i, (24, 28, 3)).astype(np.float32) + rng.random((24, 28, 3), np.float32) for i in range(3)]
    fb = [_texture(110 + i, (24, 28, 3)).astype(np.float32) + rng.random((24, 28, 3), np.float32) for i in range(3)]
    errs = [rng.random((24, 28)).astype(np.float32) for _ in range(3)]
    for method in BLEND_METHODS:
        for poisson in (False, True):
            out, _ = _segment(fa, fb, errs, errs[::-1], method=method, poisson=poisson)
            assert all(o.dtype == np.float32 for o in out)
            assert any(np.abs(o - np.rint(o)).max() > 0.01 for o in out), method  # not rounded to 8 bits
        as_u8 = [np.clip(np.rint(f), 0, 255).astype(np.uint8) for f in (*fa, *fb)]
        ref, _ = _segment(as_u8[:3], as_u8[3:], errs, errs[::-1], method=method)
        out, _ = _segment(fa, fb, errs, errs[::-1], method=method)
        # rounding the inputs moves an output by at most a few levels (select: ranks of ties move)
        tol = 2.0 if method != "select" else 40.0
        assert all(np.abs(o - r.astype(np.float32)).mean() < tol for o, r in zip(out, ref)), method
    # identical float candidates come back unchanged, bit for bit
    out, _ = _segment(fa, fa, errs, errs[::-1], keys=(fa[0], fa[-1]))
    assert all(np.array_equal(o, f) for o, f in zip(out, fa))


def _disc(h, w, cx, r):
    yy, xx = np.mgrid[0:h, 0:w]
    return ((yy - h / 2) ** 2 + (xx - cx) ** 2) < r ** 2


@pytest.mark.parametrize("method", BLEND_METHODS)
def test_outside_a_region_the_plate_comes_back_and_is_never_read(method):
    # a matte's region moving by one pixel a frame; outside it both candidates hold the plate
    h, w, n = 32, 48, 4
    rng = np.random.default_rng(24)
    regions = [_disc(h, w, 18 + k, 10) for k in range(n + 2)]  # frames 0..n+1, keys included

    def frames(seed, outside):
        out = []
        for k in range(1, n + 1):
            f = _texture(seed + k, (h, w, 3))
            f[~regions[k]] = outside[k][~regions[k]]
            out.append(f)
        return out

    plate = [_texture(200 + k, (h, w, 3)) for k in range(n + 2)]
    other = [np.full((h, w, 3), 255 * (k % 2), np.uint8) for k in range(n + 2)]  # wildly different
    errs = [np.where(regions[k + 1], rng.random((h, w)) + 0.1, 0).astype(np.float32) for k in range(n)]

    def flows(i, j):
        f = np.zeros((h, w, 2), np.float32)
        f[..., 0] = j - i
        return f

    def run(outside):
        fa, fb = frames(300, outside), frames(400, outside)
        ka, kb = _texture(500, (h, w, 3)), _texture(501, (h, w, 3))
        ka[~regions[0]], kb[~regions[n + 1]] = outside[0][~regions[0]], outside[n + 1][~regions[n + 1]]
        got = list(blend_segment(SegmentInputs(0, n + 1, ka, kb, lambda i: (fa[i - 1], fb[i - 1], errs[i - 1], errs[-i]),
                                               flows, region=lambda i: regions[i]), BlendOptions(method)))
        return fa, [img for _, img, _ in got]

    fa, with_plate = run([p for p in plate])
    for k, img in enumerate(with_plate, start=1):
        assert np.array_equal(img[~regions[k]], plate[k][~regions[k]])  # the plate, exactly
        assert not np.array_equal(img[regions[k]], fa[k - 1][regions[k]])  # inside: blended
    _, with_other = run(other)
    for k, (x, y) in enumerate(zip(with_plate, with_other), start=1):
        assert np.array_equal(x[regions[k]], y[regions[k]])  # nothing from outside reached the inside


@pytest.mark.parametrize("options, match", [
    ({"method": "median"}, "method"), ({"smoothing": 1.0}, "smoothing"), ({"smoothing": -0.1}, "smoothing"),
    ({"detail": 2.0}, "detail"),
])
def test_bad_segment_options_are_named(options, match):
    img = _texture(22, (8, 8, 3))
    e = np.ones((8, 8), np.float32)
    inputs = SegmentInputs(0, 3, img, img, lambda i: (img, img, e, e), lambda i, j: np.zeros((8, 8, 2), np.float32))
    with pytest.raises(ValueError, match=match):
        list(blend_segment(inputs, BlendOptions(**{"method": "soft", **options})))
    with pytest.raises(ValueError, match="segment"):
        SegmentInputs(0, 1, img, img, lambda i: (img, img, e, e), lambda i, j: None)
