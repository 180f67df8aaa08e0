"""Guided patch-based synthesis (rerender.synthesize): known answers and argument checks of the
CPU core (backend="cpu" throughout; the CUDA backend's parity tests are in test_cuda.py)."""
from __future__ import annotations

import functools

import cv2
import numpy as np
import pytest

import rerender

synthesize = functools.partial(rerender.synthesize, backend="cpu")  # the CPU core, also on GPU machines

N = 96  # small images keep the whole file to a few seconds on 2 cores
R = 2   # patch radius at the default patch size 5


def texture(h: int, w: int, seed: int = 0, sigma: float = 1.5) -> np.ndarray:
    """Smooth random RGB texture: every 5x5 patch is distinctive, so the true match is unique."""
    rng = np.random.default_rng(seed)
    t = cv2.GaussianBlur(rng.random((h, w, 3)).astype(np.float32), (0, 0), sigma)
    t = (t - t.min()) / (t.max() - t.min())
    return (t * 255).astype(np.uint8)


def stylise(img: np.ndarray) -> np.ndarray:
    """A pointwise 'style' (colour map of the luminance): the style of a warped image is the warped style."""
    return cv2.applyColorMap(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), cv2.COLORMAP_JET)


def sinus_field(n: int, amp: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    """Sampling maps (x + ux, y + uy) of a smooth displacement of a few pixels."""
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
    return xx + amp * np.sin(2 * np.pi * yy / n), yy + amp * np.cos(3 * np.pi * xx / n)


def coords(h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    return np.dstack([xx, yy])


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / max(mse, 1e-12)))


def remap(img: np.ndarray, mx: np.ndarray, my: np.ndarray) -> np.ndarray:
    return cv2.remap(img, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


@pytest.fixture(scope="module")
def displaced():
    """Target = texture displaced by a known smooth field; guides as Rerender's colour + positional."""
    src = texture(N, N)
    mx, my = sinus_field(N)
    tgt = remap(src, mx, my)
    style = stylise(src)
    pos_src = coords(N, N) * (255.0 / N)  # positional guide on the 0-255 scale of the colours
    pos_tgt = np.dstack([mx, my]) * (255.0 / N)
    guides = [(src, tgt, 6.0), (pos_src, pos_tgt.astype(np.float32), 2.0)]
    exact_nnf = np.dstack([np.clip(np.rint(mx), R, N - 1 - R), np.clip(np.rint(my), R, N - 1 - R)]).astype(np.int32)
    result = synthesize(style, guides, threads=1)
    return dict(style=style, guides=guides, mx=mx, my=my, exact=remap(style, mx, my),
                exact_nnf=exact_nnf, result=result)


def interior(a: np.ndarray, b: int = 6) -> np.ndarray:
    return a[b:-b, b:-b]


def test_displacement_recovered(displaced):
    res, mx, my = displaced["result"], displaced["mx"], displaced["my"]
    assert res.image.shape == (N, N, 3) and res.image.dtype == np.uint8
    assert res.nnf.shape == (N, N, 2) and res.nnf.dtype == np.int32
    assert res.error.shape == (N, N) and res.error.dtype == np.float32
    within = (np.abs(res.nnf[..., 0] - mx) <= 1) & (np.abs(res.nnf[..., 1] - my) <= 1)
    assert interior(within).mean() >= 0.95
    # PSNR bound: voting the exact NNF rounded to integers reaches ~35 dB here (the ceiling of any
    # integer NNF against the bilinearly warped style); +-1 px matches and averaging 25 overlapping
    # patches on this high-contrast colour map cost a few dB (measured ~33 dB). One in a hundred
    # pixels matched to an unrelated patch (a colour error of ~100 levels) would already pull
    # the PSNR under ~27 dB, so 28 dB tells a recovered field from a partly wrong one.
    ceiling = synthesize(displaced["style"], displaced["guides"], init_nnf=displaced["exact_nnf"],
                                  search_vote_iters=1, patchmatch_iters=0)
    assert psnr(interior(ceiling.image), interior(displaced["exact"])) > 33
    assert psnr(interior(res.image), interior(displaced["exact"])) >= 28.0
    assert np.all(res.error >= 0) and np.isfinite(res.error).all()


def test_error_is_the_plain_patch_error(displaced):
    res, style, (src_g, tgt_g, w_g), (ps, pt, w_p) = (displaced["result"], displaced["style"],
                                                      *displaced["guides"])
    y, x = 40, 50
    qx, qy = res.nnf[y, x]
    e = 0.0
    for dy in range(-R, R + 1):
        for dx in range(-R, R + 1):
            s, t = (qy + dy, qx + dx), (y + dy, x + dx)
            e += 1.0 / 3 * np.sum((style[s].astype(float) - res.image[t].astype(float)) ** 2)
            e += w_g / 3 * np.sum((src_g[s].astype(float) - tgt_g[t].astype(float)) ** 2)
            e += w_p / 2 * np.sum((ps[s].astype(float) - pt[t].astype(float)) ** 2)
    # the native error uses the float synthesis; the returned image is rounded to uint8
    assert res.error[y, x] == pytest.approx(e, rel=0.05, abs=30)


def test_error_map_is_right_with_a_single_search_vote_iteration():
    # Fewer iterations than guide-only searches: the last vote's style must still be in the
    # target when the error map is computed (it was once cleared, adding |style|^2 to E).
    src = texture(64, 64, seed=3)
    style = stylise(src)
    ident = coords(64, 64).astype(np.int32)
    for iters in (1, 2, 3):
        res = synthesize(style, [(src, src, 1.0)], init_nnf=ident, search_vote_iters=iters, patchmatch_iters=1)
        assert (res.nnf == ident).all(axis=-1)[R:-R, R:-R].all()
        assert np.array_equal(res.image[2 * R:-2 * R, 2 * R:-2 * R], style[2 * R:-2 * R, 2 * R:-2 * R])
        assert np.abs(res.error[3 * R:-3 * R, 3 * R:-3 * R]).max() < 1e-3, iters  # (edge patches are clamped inwards)


def test_identical_guides_give_identity():
    src = texture(N, N, seed=1)
    style = stylise(src)
    res = synthesize(style, [(src, src, 1.0)], threads=1)
    xx, yy = coords(N, N)[..., 0], coords(N, N)[..., 1]
    ident = (res.nnf[..., 0] == xx) & (res.nnf[..., 1] == yy)
    assert ident[R:-R, R:-R].mean() >= 0.99
    # source centres keep their whole patch inside the image, so the outer ring of R pixels maps
    # to clamped centres and its patches also reach R pixels further in
    assert psnr(res.image[2 * R:-2 * R, 2 * R:-2 * R], style[2 * R:-2 * R, 2 * R:-2 * R]) > 45


def test_float32_and_any_channel_count():
    src = texture(64, 64, seed=2)
    style = np.dstack([src, src[..., :2]]).astype(np.float32) / 2  # 5 channels, float
    guide = src[..., 0].astype(np.float32)  # 1-channel H x W guide
    res = synthesize(style, [(guide, guide, 1.0), (src, src, 1.0)], threads=1)
    assert res.image.dtype == np.float32 and res.image.shape == (64, 64, 5)
    assert np.abs(res.image[2 * R:-2 * R, 2 * R:-2 * R] - style[2 * R:-2 * R, 2 * R:-2 * R]).max() < 1e-3
    grey = synthesize(src[..., 1], [(src, src, 1.0)], threads=1).image
    assert grey.shape == (64, 64) and grey.dtype == np.uint8


def source_usage(nnf: np.ndarray, hs: int, ws: int) -> np.ndarray:
    count = np.zeros((hs, ws), np.int64)
    np.add.at(count, (nnf[..., 1].ravel(), nnf[..., 0].ravel()), 1)
    return count


def test_uniformity_spreads_source_usage():
    # The target guide is almost constant, so without the uniformity term every target patch
    # takes the same few best-matching source patches (wash-out); with it, usage spreads.
    src = texture(64, 64, seed=3)
    style = stylise(src)
    rng = np.random.default_rng(0)
    tgt = np.clip(128 + rng.normal(0, 2, (64, 64, 3)), 0, 255).astype(np.uint8)
    stats = {}
    for lam in (0.0, 3500.0 * 20):
        res = synthesize(style, [(src, tgt, 6.0)], uniformity=lam, threads=1)
        count = source_usage(res.nnf, 64, 64)
        p = count[count > 0] / count.sum()
        stats[lam] = dict(distinct=int((count > 0).sum()), max=int(count.max()), entropy=float(-(p * np.log(p)).sum()))
    flat, peaked = stats[3500.0 * 20], stats[0.0]
    assert flat["distinct"] >= 3 * peaked["distinct"]
    assert flat["max"] * 3 <= peaked["max"]
    assert flat["entropy"] > peaked["entropy"] + 1.0


def test_default_uniformity_keeps_exemplar_in_use():
    # The same wash-out case at the default weight: more of the exemplar in use than without.
    src = texture(64, 64, seed=3)
    tgt = np.full((64, 64, 3), 128, np.uint8)
    used = [int((source_usage(synthesize(stylise(src), [(src, tgt, 6.0)], uniformity=u, threads=1).nnf,
                              64, 64) > 0).sum()) for u in (0.0, 3500.0)]
    assert used[1] > used[0]


def test_warm_start_from_exact_nnf_keeps_it(displaced):
    exact = displaced["exact_nnf"]
    voted = synthesize(displaced["style"], displaced["guides"], init_nnf=exact,
                                search_vote_iters=1, patchmatch_iters=0, threads=1)
    assert np.array_equal(voted.nnf, exact)  # no search: the warm start is taken as is
    warm = synthesize(displaced["style"], displaced["guides"], init_nnf=exact, threads=1)
    near = (np.abs(warm.nnf - exact) <= 1).all(-1)
    assert interior(near).mean() >= 0.98
    assert warm.error.mean() <= voted.error.mean() * 1.001
    assert psnr(interior(warm.image), interior(displaced["exact"])) >= 28.0


def test_search_radius_caps_the_random_search(displaced):
    style, guides, exact = displaced["style"], displaced["guides"], displaced["exact_nnf"]
    init = np.clip(exact + 3, R, N - 1 - R).astype(np.int32)  # a warm start 3 px off everywhere
    whole = synthesize(style, guides, init_nnf=init, threads=1)
    # a radius at least the exemplar's size is the whole exemplar (the default 0)
    same = synthesize(style, guides, init_nnf=init, threads=1, search_radius=N)
    assert np.array_equal(same.nnf, whole.nnf) and np.array_equal(same.image, whole.image)
    # the propagation's radius still corrects a field a few pixels off (its warm starts are)
    near = synthesize(style, guides, init_nnf=init, threads=1, search_radius=16)
    assert not np.array_equal(near.nnf, whole.nnf)  # the cap changes the candidates drawn
    within = (np.abs(near.nnf[..., 0] - displaced["mx"]) <= 1) & (np.abs(near.nnf[..., 1] - displaced["my"]) <= 1)
    assert interior(within).mean() >= 0.95
    assert psnr(interior(near.image), interior(displaced["exact"])) >= 28.0


def test_warm_start_with_unknown_entries(displaced):
    init = displaced["exact_nnf"].copy()
    init[: N // 2] = -1  # top half: no guess, searched from random
    res = synthesize(displaced["style"], displaced["guides"], init_nnf=init, threads=1)
    within = (np.abs(res.nnf[..., 0] - displaced["mx"]) <= 1) & (np.abs(res.nnf[..., 1] - displaced["my"]) <= 1)
    assert interior(within).mean() >= 0.95


def test_cold_result_is_deterministic_per_seed(displaced):
    a = synthesize(displaced["style"], displaced["guides"], threads=1, seed=7)
    b = synthesize(displaced["style"], displaced["guides"], threads=1, seed=7)
    assert np.array_equal(a.nnf, b.nnf) and np.array_equal(a.image, b.image)
    two = synthesize(displaced["style"], displaced["guides"], threads=2, seed=7)
    within = (np.abs(two.nnf[..., 0] - displaced["mx"]) <= 1) & (np.abs(two.nnf[..., 1] - displaced["my"]) <= 1)
    assert interior(within).mean() >= 0.95


def test_result_does_not_depend_on_threads():
    # Large enough that PatchMatch and the vote really run on several threads (they stay on one
    # below ~16k pixels to search): bands of rows see each other only through the previous scan's
    # state, so any thread count and any scheduling give the same bytes (resumable jobs rely on it).
    n = 176
    src = texture(n, n, seed=5)
    mx, my = sinus_field(n, amp=4.0)
    guides = [(src, remap(src, mx, my), 6.0), (coords(n, n), np.dstack([mx, my]), 2.0)]
    runs = [synthesize(stylise(src), guides, seed=11, threads=t) for t in (1, 2, 2, 3)]
    for r in runs[1:]:
        assert np.array_equal(r.nnf, runs[0].nnf)
        assert np.array_equal(r.image, runs[0].image) and np.array_equal(r.error, runs[0].error)
    other_seed = synthesize(stylise(src), guides, seed=12, threads=2)
    assert not np.array_equal(other_seed.nnf, runs[0].nnf)  # the seed does drive the search


def test_warm_result_does_not_depend_on_threads():
    # A warm-started call skips converged pixels from its second PatchMatch scan on (the stamps of
    # the first scan, read across bands as of that scan): still the same bytes for any thread count.
    # Its searches compare the guides' packed features (12 channels: 45-value patch rows).
    n = 176
    src = texture(n, n, seed=6)
    mx, my = sinus_field(n, amp=4.0)
    tgt = remap(src, mx, my)
    guides = [(src, tgt, 6.0), (src[:, :, :1], tgt[:, :, :1], 0.5), (coords(n, n), np.dstack([mx, my]), 2.0),
              (stylise(src), remap(stylise(src), mx + 0.7, my), 0.5)]
    init = np.dstack([np.clip(np.rint(mx) + 2, R, n - 1 - R), np.clip(np.rint(my) - 1, R, n - 1 - R)]).astype(np.int32)
    runs = [synthesize(stylise(src), guides, init_nnf=init, seed=4, threads=t, patchmatch_iters=2, search_radius=16)
            for t in (1, 2, 3)]
    for r in runs[1:]:
        assert np.array_equal(r.nnf, runs[0].nnf)
        assert np.array_equal(r.image, runs[0].image) and np.array_equal(r.error, runs[0].error)
    within = (np.abs(runs[0].nnf[..., 0] - mx) <= 1) & (np.abs(runs[0].nnf[..., 1] - my) <= 1)
    assert interior(within).mean() >= 0.95  # the field 2 px off was corrected


def _warm_case(n: int = 176):
    """A displaced texture and a warm start: exact (rounded) in the bottom half, 2 px off in the top."""
    src = texture(n, n, seed=7)
    mx, my = sinus_field(n, amp=4.0)
    tgt = remap(src, mx, my)
    guides = [(src, tgt, 6.0), (coords(n, n), np.dstack([mx, my]), 2.0)]
    init = np.dstack([np.clip(np.rint(mx), R, n - 1 - R), np.clip(np.rint(my), R, n - 1 - R)]).astype(np.int32)
    init[: n // 2] = np.clip(init[: n // 2] + np.int32([2, -1]), R, n - 1 - R)
    return stylise(src), guides, init


def test_init_active_all_ones_changes_nothing():
    style, guides, init = _warm_case()
    opts = dict(init_nnf=init, seed=3, threads=2, patchmatch_iters=2, search_radius=16)
    plain = synthesize(style, guides, **opts)
    for ones in (np.ones(init.shape[:2], np.uint8), np.full(init.shape[:2], 7, np.uint8),
                 np.ones(init.shape[:2], bool)):
        same = synthesize(style, guides, init_active=ones, **opts)
        assert np.array_equal(same.nnf, plain.nnf)
        assert np.array_equal(same.image, plain.image) and np.array_equal(same.error, plain.error)


def test_init_active_leaves_settled_pixels_unsearched():
    style, guides, init = _warm_case()
    n = init.shape[0]
    active = np.zeros((n, n), np.uint8)
    active[: n // 2] = 1  # the top half is searched, the bottom half keeps its (2 px off) guess
    runs = [synthesize(style, guides, init_nnf=init, init_active=active, seed=3, threads=t, patchmatch_iters=2,
                       search_radius=16) for t in (1, 2, 3)]
    for r in runs[1:]:  # still the same bytes for any thread count
        assert np.array_equal(r.nnf, runs[0].nnf) and np.array_equal(r.image, runs[0].image)
    nnf = runs[0].nnf
    # far from the searched half (more than the patch radius, which a vote change can reach), the
    # guesses stay; the searched half is corrected
    assert np.array_equal(nnf[n // 2 + 4 * R:], init[n // 2 + 4 * R:])
    assert (nnf[: n // 2 - 4 * R] != init[: n // 2 - 4 * R]).any(-1).mean() > 0.9
    # nothing active: the warm start is the answer, voted
    none = synthesize(style, guides, init_nnf=init, init_active=np.zeros((n, n), np.uint8), seed=3)
    assert np.array_equal(none.nnf, init)
    # a pixel without a guess is searched whatever the mask says
    holes = init.copy()
    holes[120:130, 60:70] = -1
    filled = synthesize(style, guides, init_nnf=holes, init_active=np.zeros((n, n), np.uint8), seed=3)
    assert (np.abs(filled.nnf[120:130, 60:70] - init[120:130, 60:70]) <= 1).all(-1).mean() > 0.9
    around = np.ones((n, n), bool)
    around[120 - 4 * R:130 + 4 * R, 60 - 4 * R:70 + 4 * R] = False
    assert np.array_equal(filled.nnf[around], init[around])


def test_concurrent_calls_are_independent(displaced):
    # the GIL is released and calls share no state: concurrent runs equal a sequential one
    from concurrent.futures import ThreadPoolExecutor

    def run(_):
        return synthesize(displaced["style"], displaced["guides"], threads=1, seed=3).nnf

    ref = run(0)
    with ThreadPoolExecutor(2) as pool:
        assert all(np.array_equal(nnf, ref) for nnf in pool.map(run, range(3)))


def test_target_mask(displaced):
    mask = np.zeros((N, N), np.uint8)
    mask[20:70, 10:60] = 255
    res = synthesize(displaced["style"], displaced["guides"], target_mask=mask, threads=1)
    out = mask == 0
    assert (res.nnf[out] == -1).all() and (res.error[out] == 0).all() and (res.image[out] == 0).all()
    inside = mask > 0
    within = (np.abs(res.nnf[..., 0] - displaced["mx"]) <= 1) & (np.abs(res.nnf[..., 1] - displaced["my"]) <= 1)
    assert within[inside].mean() >= 0.95
    assert (res.error[inside] > 0).all()
    # the NNF of a masked run is a valid warm start for the next one (its -1 entries are "no guess")
    again = synthesize(displaced["style"], displaced["guides"], target_mask=mask, init_nnf=res.nnf,
                                threads=1)
    assert (again.nnf[out] == -1).all()
    empty = synthesize(displaced["style"], displaced["guides"], target_mask=np.zeros((N, N), np.uint8))
    assert (empty.nnf == -1).all() and (empty.image == 0).all()


def test_source_and_target_sizes_differ():
    src = texture(90, 120, seed=4)
    style = stylise(src)
    oy, ox, ht, wt = 13, 31, 64, 72
    tgt = src[oy:oy + ht, ox:ox + wt]
    res = synthesize(style, [(src, tgt, 6.0)], threads=1)
    assert res.image.shape == (ht, wt, 3) and res.nnf.shape == (ht, wt, 2)
    xy = coords(ht, wt)
    hit = (res.nnf[..., 0] == xy[..., 0] + ox) & (res.nnf[..., 1] == xy[..., 1] + oy)
    assert hit[R:-R, R:-R].mean() >= 0.95
    assert psnr(res.image[R:-R, R:-R], style[oy + R:oy + ht - R, ox + R:ox + wt - R]) > 35
    # and a target larger than the source
    big = synthesize(style[:40, :50], [(src[:40, :50], src[:64, :80], 1.0)], threads=1)
    assert big.image.shape == (64, 80, 3)
    assert (big.nnf[..., 0] <= 49).all() and (big.nnf[..., 1] <= 39).all() and (big.nnf >= 0).all()


def test_explicit_levels_and_iterations():
    src = texture(64, 64, seed=5)
    style = stylise(src)
    for levels in (1, 2, 3):
        res = synthesize(style, [(src, src, 1.0)], pyramid_levels=levels, search_vote_iters=3,
                                  patchmatch_iters=2, patch_size=3, threads=1)
        assert psnr(res.image[1:-1, 1:-1], style[1:-1, 1:-1]) > 40


# ---------------------------------------------------------------- argument validation

def _args():
    g = texture(32, 32, seed=6)
    return stylise(g), [(g, g, 1.0)]


@pytest.mark.parametrize(
    "change, match",
    [
        (dict(style=None), "style"),
        (dict(style=np.zeros((32, 32, 3), np.float64)), "style"),
        (dict(style=np.zeros((32,), np.uint8)), "style"),
        (dict(style=np.zeros((0, 32, 3), np.uint8)), "style"),
        (dict(style=np.full((32, 32, 3), np.nan, np.float32)), "style"),
        (dict(guides=[]), "guides"),
        (dict(guides="abc"), "guides"),
        (dict(guides=[(np.zeros((32, 32, 3), np.uint8),)]), r"guides\[0\]"),
        (dict(guides=[(np.zeros((32, 32, 3), np.uint8), np.zeros((32, 32, 2), np.uint8), 1.0)]), r"guides\[0\]"),
        (dict(guides=[(np.zeros((32, 32, 3), np.uint8), np.zeros((32, 32, 3), np.float32), 1.0)]), r"guides\[0\]"),
        (dict(guides=[(np.zeros((30, 32, 3), np.uint8), np.zeros((32, 32, 3), np.uint8), 1.0)]), r"guides\[0\]\.source"),
        (dict(guides=[(np.zeros((32, 32), np.uint8), np.zeros((32, 32), np.uint8), 1.0),
                      (np.zeros((32, 32), np.uint8), np.zeros((20, 32), np.uint8), 1.0)]), r"guides\[1\]\.target"),
        (dict(guides=[(np.zeros((32, 32), np.uint8), np.zeros((32, 32), np.int16), 1.0)]), r"guides\[0\]\.target"),
        (dict(guides=[(np.zeros((32, 32), np.uint8), np.zeros((32, 32), np.uint8), -1.0)]), r"guides\[0\]\.weight"),
        (dict(guides=[(np.zeros((32, 32), np.uint8), np.zeros((32, 32), np.uint8), float("nan"))]), r"guides\[0\]\.weight"),
        (dict(guides=[(np.zeros((32, 32), np.uint8), np.zeros((32, 32), np.uint8), "x")]), r"guides\[0\]\.weight"),
        (dict(style_weight=-1.0), "style_weight"),
        (dict(style_weight=float("inf")), "style_weight"),
        (dict(patch_size=4), "patch_size"),
        (dict(patch_size=1), "patch_size"),
        (dict(patch_size=33), "patch_size"),
        (dict(patch_size=5.0), "patch_size"),
        (dict(pyramid_levels=0), "pyramid_levels"),
        (dict(pyramid_levels=4), "pyramid_levels"),  # 32 px / 8 = 4 px < patch 5
        (dict(pyramid_levels=17), "pyramid_levels"),
        (dict(search_vote_iters=0), "search_vote_iters"),
        (dict(patchmatch_iters=-1), "patchmatch_iters"),
        (dict(uniformity=-1.0), "uniformity"),
        (dict(uniformity=float("nan")), "uniformity"),
        (dict(stop_threshold=-0.5), "stop_threshold"),
        (dict(search_radius=-1), "search_radius"),
        (dict(search_radius=1.5), "search_radius"),
        (dict(init_nnf=np.zeros((32, 32, 2), np.int64)), "init_nnf"),
        (dict(init_nnf=np.zeros((32, 31, 2), np.int32)), "init_nnf"),
        (dict(init_nnf=np.full((32, 32, 2), 32, np.int32)), "init_nnf"),
        (dict(init_nnf=np.full((32, 32, 2), -2, np.int32)), "init_nnf"),
        (dict(init_nnf=[[0, 0]]), "init_nnf"),
        (dict(init_active=np.ones((32, 32), np.uint8)), "init_active: needs init_nnf"),
        (dict(init_nnf=np.full((32, 32, 2), 10, np.int32), init_active=np.ones((32, 31), np.uint8)), "init_active"),
        (dict(init_nnf=np.full((32, 32, 2), 10, np.int32), init_active=np.ones((32, 32, 1), np.uint8)), "init_active"),
        (dict(init_nnf=np.full((32, 32, 2), 10, np.int32), init_active=np.ones((32, 32), np.float32)), "init_active"),
        (dict(init_nnf=np.full((32, 32, 2), 10, np.int32), init_active=[[1]]), "init_active"),
        (dict(target_mask=np.zeros((32, 30), np.uint8)), "target_mask"),
        (dict(target_mask=np.zeros((32, 32), np.float32)), "target_mask"),
        (dict(target_mask=np.zeros((32, 32, 2), np.uint8)), "target_mask"),
        (dict(seed=-1), "seed"),
        (dict(seed=1.5), "seed"),
        (dict(threads=-1), "threads"),
        (dict(threads=100000), "threads"),
    ],
)
def test_bad_arguments(change, match):
    style, guides = _args()
    kwargs = dict(style=style, guides=guides)
    kwargs.update(change)
    with pytest.raises(ValueError, match=match):
        synthesize(kwargs.pop("style"), kwargs.pop("guides"), **kwargs)


def test_patch_larger_than_style_is_refused():
    g = np.zeros((4, 40), np.uint8)
    with pytest.raises(ValueError, match="patch_size"):
        synthesize(g, [(g, np.zeros((40, 40), np.uint8), 1.0)])


def test_synthesis_params_are_checked_named_once_and_copyable():
    import pickle

    from rerender import SynthesisParams

    p = SynthesisParams(patch_size=7, pyramid_levels=2)
    assert p.patch_size == 7 and p.pyramid_levels == 2 and p.search_vote_iters == 12  # core defaults
    assert SynthesisParams().pyramid_levels is None
    q = p.replace(seed=3)
    assert (q.seed, p.seed, q.patch_size) == (3, 0, 7) and q != p and q == p.replace(seed=3)
    assert pickle.loads(pickle.dumps(q)) == q  # (shipped to cluster workers inside a task)
    assert repr(SynthesisParams(seed=5)).startswith("SynthesisParams(style_weight=1.0, patch_size=5,")
    with pytest.raises(ValueError, match="unknown option 'patchsize'"):
        SynthesisParams(patchsize=7)
    with pytest.raises(ValueError, match="patch_size: must be odd"):
        p.replace(patch_size=6)
    with pytest.raises(ValueError, match="params: expected a SynthesisParams"):
        rerender._native.synthesize(np.zeros((8, 8), np.uint8), [(np.zeros((8, 8), np.uint8),) * 2 + (1.0,)], {})


def test_params_and_keyword_options_give_the_same_synthesis():
    from rerender import SynthesisParams

    rng = np.random.default_rng(3)
    style = rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)
    guides = [(style, style[::-1].copy(), 1.0)]
    a = synthesize(style, guides, SynthesisParams(search_vote_iters=2, seed=4))
    b = synthesize(style, guides, search_vote_iters=2, seed=4)
    c = synthesize(style, guides, SynthesisParams(search_vote_iters=5), seed=4, search_vote_iters=2)
    assert all(np.array_equal(x, y) and np.array_equal(x, z)
               for x, y, z in zip((a.image, a.nnf, a.error), (b.image, b.nnf, b.error), (c.image, c.nnf, c.error)))
