"""GPU benchmark: the Rerender-like synthesis of bench_synthesis.py (4 guides, 12 guide channels,
RGB style; 12 search-vote x 6 PatchMatch iterations, patch 5, uniformity 3500) on the CUDA
backend at 512, 1024 and 2048, plus the CUDA blending ops at the same sizes.

Seconds are wall time per call from numpy in to numpy out (uploads and downloads included), best
of --repeat after one warm-up call. Quality = PSNR against the style warped by the exact field,
as in bench_synthesis.py; --cpu also runs the CPU backend for comparison (slow at 2048).

    python benchmarks/bench_cuda.py --sizes 512 1024 2048 --repeat 3 [--cpu]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_synthesis import advect_nnf, displacement, make_case, psnr  # noqa: E402  (one scene definition)

import rerender  # noqa: E402
from rerender import _native  # noqa: E402


def best_time(fn, repeat: int):
    fn()  # warm-up: CUDA context, module load, allocator
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return out, best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[512, 1024, 2048])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--cpu", action="store_true", help="also time the CPU backend (2 threads is slow at 2048)")
    args = ap.parse_args()

    info = rerender.backends()
    if not info["cuda_usable"]:
        print(f"no usable CUDA device ({info['cuda_reason']}); nothing to benchmark")
        return 1
    print(f"device: {_native.cuda_device_name(0)}")
    has_synthesis = hasattr(_native, "cuda_synthesize")
    if not has_synthesis:
        print("this build has no cuda_synthesize binding: timing the blending ops only")

    params = dict(style_weight=1.0, patch_size=5, search_vote_iters=12, patchmatch_iters=6, uniformity=3500.0,
                  stop_threshold=5.0)

    def run(backend: str, style, guides, **kw):
        """The public API on one backend; (image, nnf, error)."""
        res = rerender.synthesize(style, guides, backend=backend, **{**params, **kw})
        return res.image, res.nnf, res.error

    print(f"{'size':>5} {'cold ms':>8} {'cold dB':>8} {'warm ms':>8} {'warm dB':>8} {'cpu s':>7} {'cpu dB':>7}"
          f" {'hblend ms':>9} {'occl ms':>8} {'warp ms':>8}")
    for n in args.sizes:
        style, guides, exact, _ = make_case(n, 1.0)
        style2, guides2, exact2, _ = make_case(n, 1.3)
        row = [f"{n:>5}"]
        if has_synthesis:
            (img, nnf, _err), cold = best_time(lambda: run("cuda", style, guides), args.repeat)
            init = advect_nnf(nnf, *displacement(n, 1.0), *displacement(n, 1.3))
            (img2, _, _), warm = best_time(lambda: run("cuda", style2, guides2, init_nnf=init), args.repeat)
            row += [f"{cold * 1e3:>8.1f}", f"{psnr(img, exact):>8.2f}", f"{warm * 1e3:>8.1f}", f"{psnr(img2, exact2):>8.2f}"]
        else:
            row += [f"{'-':>8}"] * 4
        if args.cpu:
            t0 = time.perf_counter()
            cpu_img = run("cpu", style, guides)[0]
            row += [f"{time.perf_counter() - t0:>7.2f}", f"{psnr(cpu_img, exact):>7.2f}"]
        else:
            row += [f"{'-':>7}"] * 2
        ux, uy = displacement(n, 1.0)
        flow = np.dstack([ux, uy]).astype(np.float32)
        weight = np.random.default_rng(0).random((n, n)).astype(np.float32)
        _, hb = best_time(lambda: rerender.histogram_blend(style, exact, weight, exact, backend="cuda"), args.repeat)
        _, oc = best_time(lambda: rerender.occlusion(flow, -flow, backend="cuda"), args.repeat)
        _, wp = best_time(lambda: rerender.warp(style, flow, backend="cuda"), args.repeat)
        row += [f"{hb * 1e3:>9.1f}", f"{oc * 1e3:>8.1f}", f"{wp * 1e3:>8.1f}"]
        print(" ".join(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
