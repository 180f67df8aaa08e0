"""Colour management: linear plates round-trip through the working space (built in and OpenColorIO)."""
from __future__ import annotations

import numpy as np
import pytest

from rerender import colour
from rerender.errors import MediaError


def plate(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((16, 24, 3)).astype(np.float32) ** 2.2 * 4.0 - 0.05  # highlights above 1, a few negatives
    return x


def test_builtin_srgb_curve_round_trips_beyond_zero_one():
    x = plate()
    cs = colour.colour_space_for(is_float=True)
    assert isinstance(cs, colour.SceneLinearSRGB)
    w = cs.to_working(x)
    np.testing.assert_allclose(cs.from_working(w), x, rtol=2e-6, atol=1e-7)
    # the standard curve on [0, 1]: 0.18 mid grey is ~118/255, 1.0 stays 1.0
    np.testing.assert_allclose(colour.srgb_encode(np.float32([0.18, 1.0])), [0.4613561, 1.0], rtol=1e-5)
    assert (w[x > 1] > 1).all() and (w[x < 0] < 0).all()  # not clipped


def test_integer_sources_are_their_own_working_space():
    cs = colour.colour_space_for(is_float=False)
    x = np.float32([[[0.2, 0.4, 0.6]]])
    assert np.array_equal(cs.to_working(x), x) and np.array_equal(cs.from_working(x), x)


def test_ocio_config_round_trips_within_half_float_precision(monkeypatch):
    pytest.importorskip("PyOpenColorIO")
    monkeypatch.delenv("OCIO", raising=False)
    cs = colour.colour_space_for(True, "ocio://studio-config-latest", "Linear Rec.709 (sRGB)")
    assert cs.colorspace == "Linear Rec.709 (sRGB)" and cs.working == "sRGB Encoded Rec.709 (sRGB)"  # color_picking
    x = plate(1)
    w = cs.to_working(x)
    np.testing.assert_allclose(w[x > 0.01], colour.srgb_encode(x)[x > 0.01], rtol=2e-3)  # the same curve
    back = cs.from_working(w)
    assert np.abs(back - x).max() <= np.abs(x.astype(np.float16).astype(np.float32) - x).max() + 1e-4
    monkeypatch.setenv("OCIO", "ocio://studio-config-latest")  # $OCIO works like --ocio
    assert colour.colour_space_for(True).colorspace == "ACEScg"  # the scene_linear role


def test_ocio_errors_name_the_config_and_the_space(monkeypatch, tmp_path):
    pytest.importorskip("PyOpenColorIO")
    monkeypatch.delenv("OCIO", raising=False)
    with pytest.raises(MediaError, match="no colour space 'Linear Nonsense'"):
        colour.colour_space_for(True, "ocio://studio-config-latest", "Linear Nonsense")
    with pytest.raises(MediaError, match="missing.ocio: cannot load"):
        colour.colour_space_for(True, str(tmp_path / "missing.ocio"))
    with pytest.raises(MediaError, match="--colorspace: naming a colour space needs an OpenColorIO config"):
        colour.colour_space_for(True, None, "ACEScg")
