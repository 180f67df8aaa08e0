"""Guide images: edge (signed LoG), positional (advected coordinates, occlusions filled), temporal."""
import numpy as np
import pytest

from rerender import guides as G


def test_edge_guide_is_neutral_on_flat_and_signed_across_an_edge():
    flat = np.full((16, 20, 3), 90, np.uint8)
    e = G.edge_guide(flat)
    assert e.shape == (16, 20, 1) and e.dtype == np.uint8
    assert np.all(e == 128)
    step = np.zeros((16, 20, 3), np.uint8)
    step[:, 10:] = 200
    row = G.edge_guide(step)[8, :, 0].astype(int)
    # one side of the step darker than neutral, the other brighter, far away neutral
    assert row[9] != 128 and row[10] != 128 and np.sign(row[9] - 128) == -np.sign(row[10] - 128)
    assert row[0] == 128 and row[19] == 128


def test_edge_guide_rejects_non_rgb():
    with pytest.raises(ValueError, match="frame"):
        G.edge_guide(np.zeros((4, 4, 3), np.float64))
    with pytest.raises(ValueError, match="frame"):
        G.edge_guide(np.zeros((4, 4), np.uint8))


def test_edge_guide_of_float_frames_keeps_their_precision():
    rng = np.random.default_rng(0)
    frame = (rng.random((16, 16, 3)) * 255).astype(np.float32)
    f = G.edge_guide(frame)
    assert f.dtype == np.float32 and f.shape == (16, 16, 1)
    u = G.edge_guide(np.clip(np.rint(frame), 0, 255).astype(np.uint8))
    inside = (u > 0) & (u < 255)  # the uint8 guide clips; the float one keeps the whole range
    assert inside.mean() > 0.5 and np.abs(f - u.astype(np.float32))[inside].max() < 4  # the same guide, unrounded
    assert f.max() > 255 or f.min() < 0


def test_coordinate_map_holds_pixel_positions():
    c = G.coordinate_map(3, 4)
    assert c.shape == (3, 4, 2) and c.dtype == np.float32
    assert c[2, 3].tolist() == [3.0, 2.0] and c[0, 0].tolist() == [0.0, 0.0]


def test_fill_occluded_takes_the_nearest_valid_pixel():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (12, 15, 2)).astype(np.float32)
    occ = (rng.random((12, 15)) < 0.4).astype(np.uint8)
    out = G.fill_occluded(img, occ)
    assert np.array_equal(out[occ == 0], img[occ == 0])
    vy, vx = np.nonzero(occ == 0)
    for y, x in zip(*np.nonzero(occ)):
        d = (vy - y) ** 2 + (vx - x) ** 2
        nearest = np.flatnonzero(d == d.min())
        # ties may go either way, but the value must come from one of the nearest valid pixels
        assert any(np.array_equal(out[y, x], img[vy[k], vx[k]]) for k in nearest)


def test_fill_occluded_edge_cases():
    img = np.arange(12, dtype=np.float32).reshape(3, 4)
    assert np.array_equal(G.fill_occluded(img, np.ones((3, 4))), img)
    assert np.array_equal(G.fill_occluded(img, np.zeros((3, 4))), img)
    with pytest.raises(ValueError, match="occluded"):
        G.fill_occluded(img, np.zeros((4, 4)))


def test_advect_positions_follows_the_flow_and_fills_what_left_the_frame():
    h, w = 10, 12
    pos = G.coordinate_map(h, w)
    flow = np.zeros((h, w, 2), np.float32)
    flow[..., 0] = 2.0  # this frame's pixel x was at x + 2 in the previous frame
    occ = np.zeros((h, w), np.uint8)
    occ[:, w - 2:] = 1  # x + 2 is outside the previous frame
    out = G.advect_positions(pos, flow, occ)
    assert np.allclose(out[:, : w - 2, 0], pos[:, : w - 2, 0] + 2)
    assert np.allclose(out[..., 1], pos[..., 1])
    # the two occluded columns take the nearest valid column's value
    assert np.allclose(out[:, w - 2:, 0], out[:, w - 3: w - 2, 0])


def test_positional_guide_spans_the_byte_range():
    g = G.positional_guide(G.coordinate_map(9, 17))
    assert g.dtype == np.uint8 and g.shape == (9, 17, 2)
    assert g[0, 0].tolist() == [0, 0] and g[8, 16].tolist() == [255, 255]
    assert np.all(np.diff(g[0, :, 0].astype(int)) > 0)


def test_temporal_guide_with_zero_flow_is_the_previous_output():
    prev = np.random.default_rng(1).integers(0, 255, (8, 9, 3)).astype(np.uint8)
    assert np.array_equal(G.temporal_guide(prev, np.zeros((8, 9, 2), np.float32)), prev)


def _fill_every_pixel(image, occluded):
    """The nearest-valid fill looked up for every pixel (each valid pixel is its own nearest): what
    fill_occluded computed before it looked up only the occluded ones."""
    import cv2

    occ = np.asarray(occluded) != 0
    _, labels = cv2.distanceTransformWithLabels(occ.astype(np.uint8), cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL)
    valid = np.flatnonzero(~occ)
    lookup = np.zeros(valid.size + 1, dtype=np.int64)
    lookup[labels.ravel()[valid]] = valid
    return image.reshape(-1, *image.shape[2:])[lookup[labels.ravel()]].reshape(image.shape)


def test_fill_occluded_gives_the_same_values_as_a_lookup_of_every_pixel():
    rng = np.random.default_rng(11)
    for _ in range(60):
        h, w = rng.integers(2, 50, 2)
        occ = rng.random((h, w)) < rng.random() * 0.9
        if not occ.any() or occ.all():
            continue
        for img in (rng.standard_normal((h, w, 2)).astype(np.float32),
                    rng.integers(0, 256, (h, w, 3), dtype=np.uint8),
                    rng.standard_normal((h, w + 4, 2)).astype(np.float32)[:, 2:-2]):  # a strided view
            out = G.fill_occluded(img, occ)
            assert out.dtype == img.dtype and out.flags.c_contiguous
            assert np.array_equal(out, _fill_every_pixel(img, occ))


def test_local_slopes_recover_the_style_s_linear_response_to_its_input():
    rng = np.random.default_rng(2)
    frame = rng.integers(40, 200, (24, 28, 3)).astype(np.uint8)  # texture: variance >> the regulariser
    f = frame.astype(np.float32)
    var = f.var()
    for style, slope in ((np.clip(0.5 * f + 60, 0, 255), 0.5), (255 - f, -1.0), (np.full_like(f, 77), 0.0)):
        a = G.local_slopes(frame, style.astype(np.uint8))
        assert a.shape == frame.shape and a.dtype == np.float32
        # the regulariser shrinks the slope by var / (var + eps), and uint8 rounding adds a little noise
        expect = slope * var / (var + G.SLOPE_EPS)
        assert np.abs(a[6:-6, 6:-6] - expect).max() < 0.1 * max(abs(slope), 0.1), slope
    with pytest.raises(ValueError, match="style"):
        G.local_slopes(frame, frame[:10])


def test_local_slopes_are_zero_where_the_input_is_flat():
    frame = np.full((16, 16, 3), 120, np.uint8)
    style = np.random.default_rng(3).integers(0, 255, (16, 16, 3)).astype(np.uint8)
    assert np.abs(G.local_slopes(frame, style)).max() < 1e-3


def test_transfer_residual_adds_the_input_change_the_patches_do_not_explain():
    h, w = 6, 7
    key_frame = np.full((h, w, 3), 100, np.uint8)
    frame = key_frame.copy()
    frame[:, :, 0] = 110  # the red input rose by 10 since the key
    image = np.full((h, w, 3), 50, np.uint8)
    nnf = np.zeros((h, w, 2), np.int32)  # every pixel copied from the key's (0, 0)
    slopes = np.zeros((h, w, 3), np.float32)
    slopes[0, 0] = [0.5, 1.0, 1.0]  # only the source pixel's slope counts
    out = G.transfer_residual(image, nnf, frame, key_frame, slopes, gain=1.0)
    assert out.dtype == np.uint8
    assert np.all(out[..., 0] == 55) and np.all(out[..., 1:] == 50)
    assert np.all(G.transfer_residual(image, nnf, frame, key_frame, slopes, gain=0.4)[..., 0] == 52)
    # the input unchanged at the sources: the candidate comes back exactly (uint8 and float32)
    assert np.array_equal(G.transfer_residual(image, nnf, key_frame, key_frame, slopes, 1.0), image)
    fimg = image.astype(np.float32) + 0.25
    assert np.array_equal(G.transfer_residual(fimg, nnf, key_frame.astype(np.float32), key_frame.astype(np.float32),
                                              slopes, 1.0), fimg)
