"""Screened Poisson blending solved with the DCT: exactness of the solver and blending invariants."""
import time

import numpy as np
import pytest

from rerender.poisson import divergence, gradients, poisson_blend, screened_poisson


def test_divergence_is_the_negative_adjoint_of_the_gradient():
    rng = np.random.default_rng(0)
    u = rng.random((7, 9, 2)).astype(np.float32)
    gx, gy = rng.random((2, 7, 9, 2)).astype(np.float32)
    ux, uy = gradients(u)
    lhs = float((ux.astype(np.float64) * gx).sum() + (uy.astype(np.float64) * gy).sum())
    rhs = -float((u.astype(np.float64) * divergence(gx, gy)).sum())
    assert lhs == pytest.approx(rhs, rel=1e-5)


def test_solution_satisfies_the_normal_equations():
    rng = np.random.default_rng(1)
    h = rng.random((20, 31, 3)) * 255
    gx, gy = (rng.random((2, 20, 31, 3)) * 20 - 10).astype(np.float32)
    lam = 0.3
    u = screened_poisson(h, gx, gy, lam).astype(np.float64)
    ux, uy = gradients(u)
    residual = lam * u - divergence(ux.astype(np.float64), uy.astype(np.float64)) \
        - (lam * h - divergence(gx.astype(np.float64), gy.astype(np.float64)))
    assert np.abs(residual).max() < 1e-2  # float32 gradients; the terms are O(100)


def test_gradients_of_the_anchor_reproduce_it():
    rng = np.random.default_rng(2)
    img = rng.integers(0, 256, (16, 24, 3)).astype(np.float32)
    gx, gy = gradients(img)
    assert np.allclose(screened_poisson(img, gx, gy, 0.05), img, atol=1e-3)
    # a constant colour offset of the anchor passes through (the gradients fix everything else)
    assert np.allclose(screened_poisson(img + 7, gx, gy, 0.05), img + 7, atol=1e-3)


def test_poisson_blend_of_identical_candidates_is_identity_and_seams_disappear():
    rng = np.random.default_rng(3)
    a = rng.integers(20, 230, (24, 32, 3)).astype(np.uint8)
    mask = np.zeros((24, 32), np.uint8)
    mask[:, :16] = 1
    assert np.array_equal(poisson_blend(a, a, a, mask), a)
    # b = a + 10: the masked combination has a 10-level seam at column 16; the gradient-domain
    # result keeps a's texture on both sides, so the jump across the seam shrinks to the texture's
    b = (a.astype(int) + 10).clip(0, 255).astype(np.uint8)
    combined = np.where(mask[..., None] > 0, a, b)
    out = poisson_blend(combined, a, b, mask, lam=0.01).astype(int)
    seam = np.abs((out[:, 16] - out[:, 15]) - (a[:, 16].astype(int) - a[:, 15])).mean()
    assert seam < 2.0


def test_solver_is_fast_at_512():
    img = np.random.default_rng(4).random((512, 512, 3)).astype(np.float32) * 255
    gx, gy = gradients(img)
    t = time.process_time()
    screened_poisson(img, gx, gy, 0.1)
    assert time.process_time() - t < 2.0


def test_rejects_bad_arguments():
    img = np.zeros((4, 5, 3), np.float32)
    with pytest.raises(ValueError, match="lam"):
        screened_poisson(img, img, img, 0.0)
    with pytest.raises(ValueError, match="gradients"):
        screened_poisson(img, np.zeros((4, 4, 3)), img, 0.1)
