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
