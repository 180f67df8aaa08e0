"""CUDA backend: parity with the CPU core on the same inputs (needs a device; skipped without),
and, wherever the backend is compiled in, the device probe and argument validation (which run
before any device work, so they are tested here even without a GPU).

The CUDA kernels' logic on machines without a GPU (csrc/cuda/*.cu compiled as C++ against a host
emulation of the runtime, checked against the CPU core) is the ctest target cuda_emulation
(tests/cpp/CMakeLists.txt), run by scripts/test.sh."""
import numpy as np
import pytest

import rerender
from rerender import _native
from rerender.backend import backends, resolve_backend

COMPILED = "cuda" in _native.compiled_backends()
USABLE = backends()["cuda_usable"]
needs_compiled = pytest.mark.skipif(not COMPILED, reason="built without the CUDA backend")
needs_device = pytest.mark.skipif(not USABLE, reason="no usable CUDA device")


class FakeDeviceArray:
    """Exposes __cuda_array_interface__ over host memory: enough to test interface parsing."""

    def __init__(self, array, typestr=None, strides=None):
        self._array = array  # keep the memory alive
        self.__cuda_array_interface__ = {
            "shape": array.shape,
            "typestr": typestr or array.dtype.str,
            "data": (array.ctypes.data, False),
            "strides": strides,
            "version": 3,
        }


def _rng_image(rng, shape, dtype):
    return (rng.random(shape) * 255).astype(dtype)


# ---- without a device ----------------------------------------------------------------------


def test_backends_report_is_consistent():
    info = backends()
    assert info["compiled"] == list(_native.compiled_backends())
    assert info["cuda_usable"] == (info["cuda_devices"] > 0)
    if not info["cuda_usable"]:
        assert isinstance(info["cuda_reason"], str) and info["cuda_reason"]
        assert resolve_backend("auto") == "cpu"
        with pytest.raises(ValueError, match="backend: 'cuda' was requested but CUDA is not usable"):
            resolve_backend("cuda")
    else:
        assert resolve_backend("auto") == "cuda"
    assert resolve_backend("cpu") == "cpu"


def test_environment_overrides_auto(monkeypatch):
    monkeypatch.setenv("RERENDER_BACKEND", "cpu")
    assert resolve_backend("auto", image=np.zeros((2, 2))) == "cpu"
    monkeypatch.setenv("RERENDER_BACKEND", "gpu")
    with pytest.raises(ValueError, match="RERENDER_BACKEND: expected"):
        resolve_backend("auto")
    assert resolve_backend("cpu") == "cpu"  # an explicit choice does not read it
    if not USABLE:
        monkeypatch.setenv("RERENDER_BACKEND", "cuda")
        with pytest.raises(ValueError, match="CUDA is not usable"):
            resolve_backend("auto")


def test_gpu_input_with_cpu_backend_is_rejected():
    fake = FakeDeviceArray(np.zeros((4, 4, 2), np.float32))
    with pytest.raises(ValueError, match="flow: is a GPU array but backend='cpu'"):
        resolve_backend("cpu", image=np.zeros((4, 4)), flow=fake)
    if not USABLE:
        with pytest.raises(ValueError, match="flow: is a GPU array but CUDA is not usable"):
            rerender.warp(np.zeros((4, 4), np.uint8), fake)


def _messages(cpu_call, cuda_call):
    with pytest.raises(ValueError) as cpu_error:
        cpu_call()
    with pytest.raises(ValueError) as cuda_error:
        cuda_call()
    return str(cpu_error.value), str(cuda_error.value)


_IMG = np.zeros((4, 5, 3), np.uint8)
_FLOW = np.zeros((4, 5, 2), np.float32)
_BAD_CASES = [
    ("warp", dict(image=np.zeros((4, 5), np.float64), flow=_FLOW)),
    ("warp", dict(image=_IMG, flow=np.zeros((4, 6, 2), np.float32))),
    ("warp", dict(image=_IMG, flow=np.full((4, 5, 2), np.nan, np.float32))),
    ("warp", dict(image=_IMG, flow=_FLOW, mode="cubic")),
    ("warp", dict(image=_IMG, flow=_FLOW, threads=-1)),
    ("occlusion", dict(flow_ab=_FLOW, flow_ba=np.zeros((4, 5, 3), np.float32))),
    ("occlusion", dict(flow_ab=_FLOW, flow_ba=_FLOW, alpha1=2.0)),
    ("occlusion", dict(flow_ab=_FLOW, flow_ba=_FLOW, alpha2=float("nan"))),
    ("histogram_blend", dict(a=_IMG, b=np.zeros((4, 5, 3), np.float32), weight_a=0.5)),
    ("histogram_blend", dict(a=_IMG, b=_IMG, weight_a=1.5)),
    ("histogram_blend", dict(a=_IMG, b=_IMG, weight_a=np.full((4, 5), -1, np.float32))),
    ("histogram_blend", dict(a=_IMG, b=_IMG, weight_a=0.5, reference=np.zeros((4, 5), np.uint8))),
    ("min_error_combine", dict(a=_IMG, b=_IMG, error_a=np.zeros((4, 5), np.float32),
                               error_b=np.full((4, 5), np.nan, np.float32))),
    ("min_error_combine", dict(a=_IMG, b=_IMG, error_a=np.zeros((4, 4), np.float32),
                               error_b=np.zeros((4, 5), np.float32))),
]


@needs_compiled
@pytest.mark.parametrize("op, kwargs", _BAD_CASES)
def test_cuda_bindings_validate_like_the_cpu(op, kwargs):
    cpu, cuda = _messages(lambda: getattr(_native, op)(**kwargs), lambda: getattr(_native, f"cuda_{op}")(**kwargs))
    assert cpu == cuda


@needs_compiled
@pytest.mark.parametrize(
    "flow, cpu_equivalent",
    [
        (FakeDeviceArray(np.zeros((4, 5, 2), np.float64)), np.zeros((4, 5, 2), np.float64)),
        (FakeDeviceArray(np.zeros((4, 5, 3), np.float32)), np.zeros((4, 5, 3), np.float32)),
        (FakeDeviceArray(np.zeros((4, 5, 2, 1), np.float32)), np.zeros((4, 5, 2, 1), np.float32)),
        (FakeDeviceArray(np.zeros((0, 5, 2), np.float32)), np.zeros((0, 5, 2), np.float32)),
        (FakeDeviceArray(np.zeros((4, 5, 2), np.uint8)), np.zeros((4, 5, 2), np.uint8)),
    ],
)
def test_device_array_metadata_is_validated_like_numpy(flow, cpu_equivalent):
    cpu, cuda = _messages(lambda: _native.warp(_IMG, cpu_equivalent), lambda: _native.cuda_warp(_IMG, flow))
    assert cpu == cuda


@needs_compiled
def test_device_array_layout_and_memory_are_checked():
    base = np.zeros((4, 10, 2), np.float32)
    strided = FakeDeviceArray(base[:, ::2], strides=base[:, ::2].strides)
    with pytest.raises(ValueError, match="flow: GPU arrays must be C-contiguous"):
        _native.cuda_warp(_IMG, strided)
    # C-contiguous strides spelled out are fine; host memory behind the interface is not
    host = FakeDeviceArray(np.zeros((4, 5, 2), np.float32), strides=(40, 8, 4))
    with pytest.raises(ValueError, match="flow: __cuda_array_interface__ does not point to CUDA device memory"):
        _native.cuda_warp(_IMG, host)


# ---- on a device: parity with the CPU core ----------------------------------------------------


def _smooth_flow(rng, h, w, scale):
    """A smooth random field (bilinear upsampling of a coarse grid) plus sub-pixel noise."""
    import cv2

    coarse = rng.normal(scale=scale, size=(h // 8 + 2, w // 8 + 2, 2)).astype(np.float32)
    return cv2.resize(coarse, (w, h), interpolation=cv2.INTER_LINEAR) + rng.normal(
        scale=0.3, size=(h, w, 2)).astype(np.float32)


def _assert_u8_close(a, b, max_fraction=1e-3):
    """uint8 results: rounding of x.5 may differ in the last ulp (FMA contraction on the GPU)."""
    diff = np.abs(a.astype(int) - b.astype(int))
    assert diff.max() <= 1 and np.mean(diff > 0) <= max_fraction


@needs_device
@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
def test_warp_matches_cpu(dtype, mode):
    rng = np.random.default_rng(0)
    img = _rng_image(rng, (120, 160, 5), dtype)
    flow = _smooth_flow(rng, 120, 160, 6)
    cpu, cpu_valid = rerender.warp(img, flow, mode, return_valid=True, backend="cpu")
    gpu, gpu_valid = rerender.warp(img, flow, mode, return_valid=True, backend="cuda")
    assert isinstance(gpu, np.ndarray) and gpu.dtype == dtype and gpu.shape == img.shape
    np.testing.assert_array_equal(gpu_valid, cpu_valid)
    if mode == "nearest":
        np.testing.assert_array_equal(gpu, cpu)
    elif dtype == np.uint8:
        _assert_u8_close(gpu, cpu)
    else:
        np.testing.assert_allclose(gpu, cpu, atol=1e-4)


@needs_device
def test_occlusion_matches_cpu():
    rng = np.random.default_rng(1)
    fwd = _smooth_flow(rng, 120, 160, 1.5)
    bwd = -fwd + rng.normal(scale=0.3, size=fwd.shape).astype(np.float32)  # roughly half consistent
    cpu = rerender.occlusion(fwd, bwd, backend="cpu")
    gpu = rerender.occlusion(fwd, bwd, backend="cuda")
    assert 0.01 < cpu.mean() < 0.99  # both outcomes occur
    assert np.mean(gpu != cpu) <= 1e-3  # only exact threshold ties may differ
    # consistent translation: identical masks
    t = np.zeros((50, 60, 2), np.float32)
    t[..., 0] = 3
    np.testing.assert_array_equal(rerender.occlusion(t, -t, backend="cuda"), rerender.occlusion(t, -t, backend="cpu"))


@needs_device
@pytest.mark.parametrize("with_reference", [False, True])
@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_histogram_blend_matches_cpu(dtype, with_reference):
    rng = np.random.default_rng(2)
    a, b = _rng_image(rng, (96, 128, 3), dtype), _rng_image(rng, (96, 128, 3), dtype)
    ref = _rng_image(rng, (80, 90, 3), dtype) if with_reference else None
    weight = rng.random((96, 128)).astype(np.float32)
    weight[:10] = 1.0
    weight[10:20] = 0.0
    cpu = rerender.histogram_blend(a, b, weight, ref, backend="cpu")
    gpu = rerender.histogram_blend(a, b, weight, ref, backend="cuda")
    if dtype == np.uint8:
        _assert_u8_close(gpu, cpu)
    else:
        np.testing.assert_allclose(gpu, cpu, atol=1e-3)
    if not with_reference:  # endpoint identities hold on the GPU too
        np.testing.assert_array_equal(gpu[:10], a[:10])
        np.testing.assert_array_equal(gpu[10:20], b[10:20])


@needs_device
@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_min_error_combine_matches_cpu(dtype):
    rng = np.random.default_rng(3)
    a, b = _rng_image(rng, (50, 70, 4), dtype), _rng_image(rng, (50, 70, 4), dtype)
    ea, eb = rng.random((50, 70)).astype(np.float32), rng.random((50, 70)).astype(np.float32)
    cpu = rerender.min_error_combine(a, b, ea, eb, backend="cpu")
    gpu = rerender.min_error_combine(a, b, ea, eb, backend="cuda")
    np.testing.assert_array_equal(gpu[0], cpu[0])
    np.testing.assert_array_equal(gpu[1], cpu[1])


@needs_device
def test_torch_tensors_stay_on_the_device():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA")
    rng = np.random.default_rng(4)
    img = _rng_image(rng, (64, 80, 3), np.float32)
    flow = _smooth_flow(rng, 64, 80, 3)
    out = rerender.warp(torch.from_numpy(img).cuda(), torch.from_numpy(flow).cuda())
    assert isinstance(out, torch.Tensor) and out.is_cuda and out.shape == img.shape
    np.testing.assert_allclose(out.cpu().numpy(), rerender.warp(img, flow, backend="cpu"), atol=1e-4)
    # mixed inputs: the numpy one is copied up, the result stays on the device
    mask = rerender.occlusion(torch.from_numpy(flow).cuda(), -flow)
    assert isinstance(mask, torch.Tensor) and mask.is_cuda
    # device-side value checks give the CPU's messages
    bad = torch.from_numpy(flow).cuda()
    bad[3, 4, 1] = float("nan")
    with pytest.raises(ValueError, match=r"flow: contains NaN values \(first at flat index 489\)"):
        rerender.warp(torch.from_numpy(img).cuda(), bad)


# ---- synthesis: rerender.synthesize(..., backend=) -----------------------------------------------

_SYN_FAST = dict(search_vote_iters=6, patchmatch_iters=4)  # small and quick; the same on both backends


def _psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(255.0 ** 2 / max(mse, 1e-12))


def _textured(n, seed, channels=3):
    import cv2

    rng = np.random.default_rng(seed)
    noise = rng.random((n // 4, n // 4, channels)).astype(np.float32) * 255
    return cv2.resize(noise, (n, n), interpolation=cv2.INTER_CUBIC).clip(0, 255).astype(np.uint8).reshape(n, n, channels)


def _displaced_case(n, amp=1.0):
    """Style, guide and the guide moved by a smooth field; the style moved by the same field (the
    exact answer) and the field's sampling maps."""
    import cv2

    style, guide = _textured(n, 2), _textured(n, 3)
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
    mx = xx + amp * 3 * np.sin(2 * np.pi * yy / n)
    my = yy + amp * 2 * np.cos(2 * np.pi * xx / n)
    moved = cv2.remap(guide, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    exact = cv2.remap(style, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return style, [(guide, moved, 6.0)], exact, (mx, my)


def _nnf_agreement(a, b, where=None):
    """Fraction of pixels whose two NNF entries are within 1 px of each other (in x and y)."""
    close = np.abs(a.astype(int) - b.astype(int)).max(axis=-1) <= 1
    return close[where].mean() if where is not None else close.mean()


_INTERIOR = np.s_[8:-8, 8:-8]


def _gpu(style, guides, **kw):
    return rerender.synthesize(style, guides, backend="cuda", **{**_SYN_FAST, **kw})


def _cpu(style, guides, **kw):
    return rerender.synthesize(style, guides, backend="cpu", **{**_SYN_FAST, **kw})


# without a device (also on GPU machines where the checks do not need one)

def test_synthesis_backend_cuda_without_a_device_is_a_clear_error():
    if USABLE:
        pytest.skip("a CUDA device is usable here")
    style = _textured(32, 0)
    with pytest.raises(ValueError, match=r"backend: 'cuda' was requested but CUDA is not usable \(.+\)"):
        rerender.synthesize(style, [(style, style, 1.0)], backend="cuda")
    with pytest.raises(ValueError, match="backend: expected one of 'auto', 'cpu', 'cuda', got 'gpu'"):
        rerender.synthesize(style, [(style, style, 1.0)], backend="gpu")
    # a GPU input cannot silently fall back to the CPU
    fake = FakeDeviceArray(style)
    with pytest.raises(ValueError, match=r"guides\[0\]\.target: is a GPU array but CUDA is not usable"):
        rerender.synthesize(style, [(style, fake, 1.0)])
    with pytest.raises(ValueError, match=r"guides\[0\]\.target: is a GPU array but backend='cpu'"):
        rerender.synthesize(style, [(style, fake, 1.0)], backend="cpu")


def test_synthesis_auto_runs_the_cpu_core_without_a_device(monkeypatch):
    if USABLE:
        pytest.skip("a CUDA device is usable here")
    style, guides, _, _ = _displaced_case(48)
    monkeypatch.delenv("RERENDER_BACKEND", raising=False)
    auto = rerender.synthesize(style, guides, threads=1, seed=5, **_SYN_FAST)
    cpu = rerender.synthesize(style, guides, threads=1, seed=5, backend="cpu", **_SYN_FAST)
    for a, c in zip((auto.image, auto.nnf, auto.error), (cpu.image, cpu.nnf, cpu.error)):
        np.testing.assert_array_equal(a, c)  # deterministic with one thread: the very same computation


_S = _textured(32, 0)
_SG = [(_S, _S, 1.0)]
_S_INF = _S.astype(np.float32)
_S_INF[3, 4, 1] = np.inf
_SYN_BAD_CASES = [
    dict(style=_S.astype(np.float64), guides=_SG),
    dict(style=_S, guides=[]),
    dict(style=_S, guides=[(_S, _S)]),
    dict(style=_S, guides=[(_S, _S[:20], 1.0), (_S, _S, 1.0)]),
    dict(style=_S, guides=[(_S[:31], _S, 1.0)]),
    dict(style=_S, guides=[(_S.astype(np.float32), _S, 1.0)]),
    dict(style=_S, guides=[(_S, np.full(_S.shape, np.nan, np.float32), 1.0)]),
    dict(style=_S_INF, guides=[(np.zeros_like(_S_INF), np.zeros_like(_S_INF), 1.0)]),
    dict(style=_S, guides=[(_S, _S, -1.0)]),
    dict(style=_S, guides=_SG, patch_size=4),
    dict(style=_S, guides=_SG, pyramid_levels=9),
    dict(style=_S, guides=_SG, search_vote_iters=0),
    dict(style=_S, guides=_SG, uniformity=float("nan")),
    dict(style=_S, guides=_SG, init_nnf=np.zeros((32, 32, 2), np.int64)),
    dict(style=_S, guides=_SG, init_nnf=np.full((32, 32, 2), 40, np.int32)),
    dict(style=_S, guides=_SG, target_mask=np.zeros((32, 31), np.uint8)),
    dict(style=_S, guides=_SG, target_mask=np.zeros((32, 32), np.float32)),
    dict(style=_S, guides=_SG, seed=-1),
    dict(style=_S, guides=_SG, threads=-1),
]


@needs_compiled
@pytest.mark.parametrize("kwargs", _SYN_BAD_CASES)
def test_cuda_synthesize_validates_like_the_cpu(kwargs):
    def call(fn):  # the options go into a SynthesisParams (made inside the call: its checks count too)
        arrays = {k: v for k, v in kwargs.items() if k in ("style", "guides", "init_nnf", "target_mask")}
        options = {k: v for k, v in kwargs.items() if k not in arrays}
        return lambda: fn(**arrays, params=_native.SynthesisParams(**options))

    cpu, cuda = _messages(call(_native.synthesize), call(_native.cuda_synthesize))
    assert cpu == cuda


@needs_compiled
def test_cuda_synthesize_checks_device_array_metadata_and_memory():
    cpu, cuda = _messages(lambda: _native.synthesize(_S.astype(np.float64), _SG),
                          lambda: _native.cuda_synthesize(FakeDeviceArray(_S.astype(np.float64)), _SG))
    assert cpu == cuda == "style: unsupported dtype float64 (expected uint8 or float32)"
    with pytest.raises(ValueError, match=r"guides\[0\]\.source: __cuda_array_interface__ does not point to CUDA"):
        _native.cuda_synthesize(_S, [(FakeDeviceArray(_S), _S, 1.0)])
    with pytest.raises(ValueError, match="init_nnf: __cuda_array_interface__ does not point to CUDA device memory"):
        _native.cuda_synthesize(_S, _SG, init_nnf=FakeDeviceArray(np.zeros((32, 32, 2), np.int32)))


# on a device: parity with the CPU core on the same inputs

needs_synthesis = pytest.mark.skipif(not (USABLE and hasattr(_native, "cuda_synthesize")),
                                     reason="no usable CUDA device or no cuda_synthesize binding")


@needs_synthesis
def test_synthesis_identical_guides_give_the_identity():
    style = _textured(96, 0)
    guide = _textured(96, 1)
    res = _gpu(style, [(guide, guide, 6.0)])
    ys, xs = np.mgrid[0:96, 0:96]
    exact = (res.nnf[..., 0] == xs) & (res.nnf[..., 1] == ys)
    assert exact[4:-4, 4:-4].mean() >= 0.95
    assert _psnr(res.image[4:-4, 4:-4], style[4:-4, 4:-4]) > 40  # the border's patches are clamped inwards
    assert res.error.dtype == np.float32 and res.error.shape == (96, 96) and np.all(res.error >= 0)


@needs_synthesis
@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_synthesis_matches_the_cpu_on_a_smooth_displacement(dtype):
    n = 128
    style, guides, exact, (mx, my) = _displaced_case(n)
    style = style.astype(dtype)
    guides = [(g[0].astype(dtype), g[1].astype(dtype), g[2]) for g in guides]
    gpu, cpu = _gpu(style, guides), _cpu(style, guides)
    assert isinstance(gpu.image, np.ndarray) and gpu.image.dtype == dtype and gpu.image.shape == style.shape
    assert gpu.nnf.dtype == np.int32 and gpu.nnf.shape == (n, n, 2) and gpu.error.shape == (n, n)
    # the outputs of the two backends agree (PSNR between backends)
    assert _psnr(gpu.image[_INTERIOR], cpu.image[_INTERIOR]) >= 30
    # both find the field, and mostly the same source pixels
    on_field = (np.abs(gpu.nnf[..., 0] - mx) <= 1) & (np.abs(gpu.nnf[..., 1] - my) <= 1)
    assert on_field[_INTERIOR].mean() >= 0.95
    assert _nnf_agreement(gpu.nnf[_INTERIOR], cpu.nnf[_INTERIOR]) >= 0.9
    # at the CPU backend's quality: against the exact answer, and by the patch error statistics
    assert _psnr(gpu.image, exact) >= _psnr(cpu.image, exact) - 1.0
    assert np.median(gpu.error[_INTERIOR]) <= 1.5 * np.median(cpu.error[_INTERIOR]) + 1e-3
    assert gpu.error[_INTERIOR].mean() <= 1.5 * cpu.error[_INTERIOR].mean() + 1e-3


@needs_synthesis
def test_synthesis_warm_start_matches_the_cpu():
    """The next frame warm-started from this frame's NNF (one level, as in the propagation)."""
    n = 96
    style, guides, _, _ = _displaced_case(n, 1.0)
    style2, guides2, exact2, _ = _displaced_case(n, 1.2)
    init = _cpu(style, guides).nnf  # one warm start for both backends
    gpu = _gpu(style2, guides2, init_nnf=init)
    cpu = _cpu(style2, guides2, init_nnf=init)
    assert _psnr(gpu.image[_INTERIOR], cpu.image[_INTERIOR]) >= 30
    assert _nnf_agreement(gpu.nnf[_INTERIOR], cpu.nnf[_INTERIOR]) >= 0.9
    assert _psnr(gpu.image, exact2) >= _psnr(cpu.image, exact2) - 1.0
    # a warm start from the identity with identical guides keeps it
    ys, xs = np.mgrid[0:n, 0:n]
    identity = np.dstack([xs, ys]).astype(np.int32)
    same = _gpu(style, [(guides[0][0], guides[0][0], 6.0)], init_nnf=identity)
    assert (same.nnf == identity)[4:-4, 4:-4].all(axis=-1).mean() >= 0.95


@needs_synthesis
def test_synthesis_mask_matches_the_cpu():
    n = 96
    style, guides, _, _ = _displaced_case(n)
    mask = np.zeros((n, n), np.uint8)
    mask[:, : n // 2] = 3  # any nonzero value selects
    gpu, cpu = _gpu(style, guides, target_mask=mask), _cpu(style, guides, target_mask=mask)
    outside = np.s_[:, n // 2:]
    for res in (gpu, cpu):
        assert np.all(res.nnf[outside] == -1) and np.all(res.image[outside] == 0) and np.all(res.error[outside] == 0)
    inside = np.s_[8:-8, 8: n // 2 - 8]
    assert _psnr(gpu.image[inside], cpu.image[inside]) >= 30
    assert _nnf_agreement(gpu.nnf[inside], cpu.nnf[inside]) >= 0.9


def _torch_cuda():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA")
    return torch


# uniformity 0 makes the parallel search deterministic (no concurrent occupancy updates), so the
# device and host paths of one backend can be compared exactly
_EXACT = dict(uniformity=0.0, seed=3)


@needs_synthesis
@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_synthesis_torch_in_gives_torch_out_on_the_same_device(dtype):
    torch = _torch_cuda()
    n = 64
    style, ((src, tgt, w),), _, _ = _displaced_case(n)
    style, src, tgt = (a.astype(dtype) for a in (style, src, tgt))
    mask = np.ones((n, n), np.uint8)
    mask[:, -8:] = 0
    host = _gpu(style, [(src, tgt, w)], target_mask=mask, **_EXACT)
    assert all(isinstance(a, np.ndarray) for a in (host.image, host.nnf, host.error))  # numpy in, numpy out

    def check(device):
        cu = lambda a: torch.from_numpy(a).to(device)  # noqa: E731
        dev = _gpu(cu(style), [(cu(src), cu(tgt), w)], target_mask=cu(mask), **_EXACT)
        expected = zip((dev.image, dev.nnf, dev.error), (host.image, host.nnf, host.error),
                       (torch.uint8 if dtype == np.uint8 else torch.float32, torch.int32, torch.float32))
        for got, ref, torch_dtype in expected:
            assert isinstance(got, torch.Tensor) and got.device == torch.device(device)
            assert got.dtype == torch_dtype and tuple(got.shape) == ref.shape and got.is_contiguous()
            np.testing.assert_array_equal(got.cpu().numpy(), ref)
        assert bool((dev.nnf[:, -8:] == -1).all()) and bool((dev.error[:, -8:] == 0).all())

    check("cuda:0")
    if torch.cuda.device_count() > 1:  # results are made on the inputs' device, not the current one
        check("cuda:1")


@needs_synthesis
def test_synthesis_device_results_for_mixed_inputs_and_device_warm_starts():
    torch = _torch_cuda()
    n = 64
    style, ((src, tgt, w),), _, _ = _displaced_case(n)
    cu = lambda a: torch.from_numpy(a).cuda()  # noqa: E731
    # one device input (auto picks CUDA) puts every result on the device
    first = rerender.synthesize(style, [(cu(src), tgt, w)], **_SYN_FAST, **_EXACT)
    assert isinstance(first.nnf, torch.Tensor) and first.nnf.is_cuda and first.nnf.dtype == torch.int32
    reference = _gpu(style, [(src, tgt, w)], **_EXACT)
    np.testing.assert_array_equal(first.nnf.cpu().numpy(), reference.nnf)
    np.testing.assert_array_equal(first.image.cpu().numpy(), reference.image)
    # the device NNF warm-starts the next frame; a device init_nnf alone also keeps results there
    warm = rerender.synthesize(style, [(src, tgt, w)], init_nnf=first.nnf, **_SYN_FAST, **_EXACT)
    host_warm = _gpu(style, [(src, tgt, w)], init_nnf=reference.nnf, **_EXACT)
    assert isinstance(warm.image, torch.Tensor) and warm.image.is_cuda and warm.image.dtype == torch.uint8
    np.testing.assert_array_equal(warm.image.cpu().numpy(), host_warm.image)
    np.testing.assert_array_equal(warm.nnf.cpu().numpy(), host_warm.nnf)
    # with the default uniformity term (concurrent occupancy updates): the same quality
    dev = _gpu(cu(style), [(cu(src), cu(tgt), w)])
    host = _gpu(style, [(src, tgt, w)])
    assert _psnr(dev.image.cpu().numpy(), host.image) >= 40
    assert _nnf_agreement(dev.nnf.cpu().numpy(), host.nnf) >= 0.95
    # a single-channel H x W style gives an H x W image
    gray = _gpu(cu(style[..., 0].astype(np.float32)), [(cu(src), cu(tgt), w)], **_EXACT)
    assert gray.image.shape == (n, n) and gray.image.dtype == torch.float32
    # device-side value checks give the CPU's messages
    bad = cu(style.astype(np.float32))
    bad[1, 2, 0] = float("nan")
    with pytest.raises(ValueError, match=r"style: contains NaN values \(first at flat index 198\)"):
        rerender.synthesize(bad, [(cu(src).float(), cu(tgt).float(), w)])


@needs_synthesis
def test_cuda_synthesize_returns_cuda_arrays_for_device_inputs():
    """The binding itself: CudaArray results (uint8 image, int32 NNF, float32 error) exposing
    __cuda_array_interface__, copied to numpy by get()."""
    torch = _torch_cuda()
    n = 48
    style, ((src, tgt, w),), _, _ = _displaced_case(n)
    cu = lambda a: torch.from_numpy(a).cuda()  # noqa: E731
    image, nnf, error = _native.cuda_synthesize(cu(style), [(cu(src), cu(tgt), w)],
                                                _native.SynthesisParams(search_vote_iters=2, patchmatch_iters=2))
    for arr, dtype, typestr, shape in ((image, np.uint8, "|u1", (n, n, 3)), (nnf, np.int32, "<i4", (n, n, 2)),
                                       (error, np.float32, "<f4", (n, n))):
        assert type(arr).__name__ == "CudaArray" and arr.dtype == dtype and arr.shape == shape
        assert arr.device == torch.cuda.current_device()
        cai = arr.__cuda_array_interface__
        assert cai["typestr"] == typestr and cai["shape"] == shape
        host = arr.get()
        assert isinstance(host, np.ndarray) and host.dtype == dtype and host.shape == shape
        np.testing.assert_array_equal(torch.as_tensor(arr, device="cuda").cpu().numpy(), host)
    assert "int32" in repr(nnf)
    nnf_host = nnf.get()
    assert nnf_host[..., 0].min() >= 2 and nnf_host[..., 0].max() <= n - 3  # valid patch centres
