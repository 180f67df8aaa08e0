"""Mattes: reading (alpha or luminance, single image or one per frame), validation, feathering,
the synthesis region and an exact composite over the plate."""
from __future__ import annotations

import numpy as np
import pytest

import rerender.media as media
from _clips import write_sequence
from rerender.errors import JobError
from rerender.matte import MatteSource, composite, feather, synthesis_region


def disc(h=32, w=48, r=10):
    yy, xx = np.mgrid[0:h, 0:w]
    return ((yy - h / 2) ** 2 + (xx - w / 2) ** 2 < r * r).astype(np.uint8) * 255


def test_composite_is_exact_outside_and_inside():
    rng = np.random.default_rng(0)
    for dtype, top in ((np.uint8, 255), (np.uint16, 65535)):
        plate = rng.integers(0, top + 1, (32, 48, 3), dtype=dtype)
        styled = rng.integers(0, top + 1, (32, 48, 3), dtype=dtype)
        w = feather(disc(), 6)
        out = composite(styled, plate, w)
        assert out.dtype == dtype
        assert np.array_equal(out[w == 0], plate[w == 0]) and np.array_equal(out[w == 1], styled[w == 1])
        edge = (w > 0.2) & (w < 0.8)
        assert edge.any() and not np.array_equal(out[edge], plate[edge])
    lin = rng.random((32, 48, 3)).astype(np.float16) * 8  # a linear HDR plate: bit-exact outside
    out = composite(lin * 0, lin, feather(disc(), 4))
    assert out.dtype == np.float16 and np.array_equal(out[feather(disc(), 4) == 0], lin[feather(disc(), 4) == 0])


def test_feather_and_region():
    m = disc()
    assert np.array_equal(feather(m, 0), m / np.float32(255))
    soft = feather(m, 8)
    assert 0 < soft[16, 24 - 10] < 1 and soft[16, 24] > 0.9 and soft[0, 0] < 1e-3
    region = synthesis_region(m, 5)
    assert region.dtype == np.uint8 and region[16, 24 - 14] == 1 and region[16, 24 - 16] == 0 and region[0, 0] == 0


def test_matte_sources_alpha_luminance_and_single(tmp_path):
    plate = media.probe(write_sequence(tmp_path / "plate", [np.zeros((32, 48, 3), np.uint8)] * 3)[0].parent)
    rgba = np.zeros((32, 48, 3), np.uint8)
    media.write_image(tmp_path / "m.png", rgba, alpha=disc())  # white alpha, black colour: the alpha counts
    src = MatteSource.open(tmp_path / "m.png", plate)
    got = dict(src.frames(range(3), (16, 24)))
    assert src.single and sorted(got) == [0, 1, 2] and got[0][8, 12] == 255 and got[0][0, 0] == 0
    seq = write_sequence(tmp_path / "seq", [np.repeat(disc()[:, :, None], 3, 2)] * 3)
    got = dict(MatteSource.open(seq[0].parent, plate).frames(range(1, 3), (32, 48)))
    assert sorted(got) == [1, 2] and np.array_equal(got[2], disc())


def test_bad_mattes_are_named(tmp_path):
    plate = media.probe(write_sequence(tmp_path / "plate", [np.zeros((32, 48, 3), np.uint8)] * 3)[0].parent)
    write_sequence(tmp_path / "two", [np.zeros((32, 48, 3), np.uint8)] * 2)
    with pytest.raises(JobError, match="the matte has 2 frames but the input .* has 3"):
        MatteSource.open(tmp_path / "two", plate)
    media.write_image(tmp_path / "square.png", np.zeros((40, 40, 3), np.uint8))
    with pytest.raises(JobError, match="square.png: the matte is 40x40.*aspect ratio"):
        MatteSource.open(tmp_path / "square.png", plate)
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(JobError, match="--matte: .*broken.png"):
        MatteSource.open(tmp_path / "broken.png", plate)
