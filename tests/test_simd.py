"""The native core picks its SIMD path at run time; every path gives the same bytes. Each path
this CPU supports is forced in turn (rerender._native.set_simd, or RERENDER_SIMD at import) and
the outputs of synthesize, histogram_blend and warp compared. (The AVX-512 kernels are also
checked on machines without AVX-512, and the NEON ones on x86, on an emulation of their
instructions: the ctest target emulated_kernels; the AArch64 build runs its tests under
qemu-aarch64: scripts/cpp_tests.sh arm64.)"""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import rerender
from rerender import _native


@pytest.fixture
def restore_simd():
    before = _native.simd()
    yield
    _native.set_simd(before)


def _texture(n: int, seed: int, c: int = 3) -> np.ndarray:
    import cv2

    rng = np.random.default_rng(seed)
    small = (rng.random((n // 4, n // 4, c)) * 255).astype(np.float32)
    return cv2.resize(small, (n, n), interpolation=cv2.INTER_CUBIC).clip(0, 255).astype(np.uint8).reshape(n, n, c)


def _outputs() -> list[np.ndarray]:
    """A cold and a warm-started synthesis big enough for several threads, float and uint8 blends
    and warps."""
    n = 192
    style, src = _texture(n, 1), _texture(n, 2)
    tgt = np.roll(src, (2, -3), axis=(0, 1))
    pos = np.dstack(np.mgrid[0:n, 0:n][::-1]).astype(np.float32)
    guides = [(src, tgt, 6.0), (pos, np.roll(pos, (2, -3), axis=(0, 1)), 2.0)]
    cold = rerender.synthesize(style, guides, search_vote_iters=4, patchmatch_iters=3, threads=2, backend="cpu")
    warm = rerender.synthesize(style, guides, init_nnf=cold.nnf, threads=2, backend="cpu")
    some = np.zeros((n, n), np.uint8)
    some[: n // 2] = 1  # the warm start's guesses below are taken as answers (initial active set)
    part = rerender.synthesize(style, guides, init_nnf=cold.nnf, init_active=some, threads=2, backend="cpu")
    f = rerender.synthesize(style.astype(np.float32), guides, search_vote_iters=3, patchmatch_iters=2, seed=3,
                            backend="cpu")
    rng = np.random.default_rng(5)
    flow = (rng.standard_normal((n, n, 2)) * 5).astype(np.float32)
    wmap = rng.random((n, n)).astype(np.float32)
    return [cold.image, cold.nnf, cold.error, warm.image, warm.nnf, warm.error, part.image, part.nnf, f.image, f.nnf, f.error,
            rerender.histogram_blend(style, src, wmap, backend="cpu"),
            rerender.histogram_blend(style.astype(np.float32), src.astype(np.float32), 0.3, tgt.astype(np.float32),
                                     backend="cpu"),
            rerender.warp(style, flow, backend="cpu"), rerender.warp(pos, flow, "nearest", backend="cpu")]


def test_every_supported_simd_path_gives_the_same_bytes(restore_simd):
    paths = _native.simd_paths()
    assert paths[0] in ("sse2", "scalar")  # the baseline is always there
    results = {}
    for path in paths:
        _native.set_simd(path)
        assert _native.simd() == path and rerender.backends()["simd"] == path
        results[path] = _outputs()
    for path in paths[1:]:
        for a, b in zip(results[path], results[paths[0]]):
            assert a.dtype == b.dtype and a.shape == b.shape
            assert a.tobytes() == b.tobytes(), path


def test_unsupported_or_unknown_paths_are_refused(restore_simd):
    with pytest.raises(ValueError, match=r"^path: unknown SIMD path 'avx9' \(this CPU supports: "):
        _native.set_simd("avx9")
    for known in ("avx512", "neon"):  # (AVX-512 on x86-64-v4 CPUs, NEON on AArch64)
        if known not in _native.simd_paths():
            with pytest.raises(ValueError, match=rf"^path: this CPU does not support '{known}' \(it supports: "):
                _native.set_simd(known)
    assert _native.simd() in _native.simd_paths()


def test_baseline_names_the_baseline_path(restore_simd):
    _native.set_simd("baseline")
    assert _native.simd() == _native.simd_paths()[0] and _native.simd() in ("sse2", "scalar")


def test_rerender_simd_environment_variable_is_read_at_import():
    def run(value: str) -> subprocess.CompletedProcess:
        env = {**os.environ, "RERENDER_SIMD": value}
        return subprocess.run([sys.executable, "-c", "import rerender; print(rerender.backends()['simd'])"],
                              capture_output=True, text=True, env=env)

    baseline = _native.simd_paths()[0]
    out = run(baseline)
    assert out.returncode == 0 and out.stdout.strip() == baseline, out.stderr
    bad = run("avx9")
    assert bad.returncode != 0 and "RERENDER_SIMD: unknown SIMD path 'avx9'" in bad.stderr
