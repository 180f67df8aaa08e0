"""Temporal-aware blending: the selection mask never switches back; identical candidates pass unchanged."""
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
