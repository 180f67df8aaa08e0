"""Benchmark of rerender.synthesize on a Rerender-like propagation case.

The case: a natural image (skimage's astronaut) is the key frame; the next "frame" is it displaced
by a smooth known field. The style is a stylised key frame (cv2.stylization), and the four guides
are those Rerender gives EbSynth: colour (RGB frames, weight 6), edge (RGB high-pass of the frames,
0.5), temporal (a previous output warped by an imperfect flow, 0.5) and positional (an RGB
coordinate map advected by the field, 2): 12 guide channels. Quality = PSNR of the output against
the style warped by the exact field.

The temporal guide (--temporal): "frame" (default) = the previous frame (phase t - 0.3)
synthesised with the other guides, warped to this frame by a flow 15% short of the true
frame-to-frame motion, as in a real propagation, where the flow spans one frame step; "drift" = the style misaligned by 15% of the whole displacement
from the key frame (a stress case: a lagging output dragged along; 1 px at 512, 2 px at 1024, and
as the temporal guide compares against the outlines of the style, the energy's minimum then lies
off the exact warp: ~3.5 dB lower PSNR at 512 for any solver of this energy).

Timings: "cold" = a full pyramid from a random NNF; "warm" = the next frame (field advanced a
little more) started from the cold NNF (the previous frame's) warped to it.

    python benchmarks/bench_synthesis.py --sizes 256 512 1024 --threads 1 2 --repeat 1

To compare builds of the native core, --native PATH runs a given compiled _native module instead
of the installed one (e.g. a copy of an older build); RERENDER_SIMD=sse2|avx2|avx512 forces the
SIMD path of a build that dispatches at run time.
"""
from __future__ import annotations

import argparse
import resource
import time

import cv2
import numpy as np
from skimage import data

import rerender


def use_native_module(path: str) -> None:
    """Make rerender run the compiled module at `path` (before anything imports rerender._native)."""
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location("rerender._native", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules["rerender._native"] = module


def displacement(n: int, t: float) -> tuple[np.ndarray, np.ndarray]:
    """Smooth field (ux, uy) of a few pixels (scaled with the size), phase t."""
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
    amp = 6.0 * n / 512
    ux = amp * np.sin(2 * np.pi * (yy / n * 1.3 + 0.1 * t)) + 2.0 * t * n / 512
    uy = amp * 0.7 * np.cos(2 * np.pi * (xx / n * 0.9 + 0.2 * t))
    return ux, uy


def edge_guide(img: np.ndarray) -> np.ndarray:
    """RGB high-pass (Laplacian-of-Gaussian-like) of a frame, offset to mid grey."""
    f = img.astype(np.float32)
    return np.clip(128 + 2 * (f - cv2.GaussianBlur(f, (0, 0), 1.5)), 0, 255).astype(np.uint8)


def warp(img: np.ndarray, ux: np.ndarray, uy: np.ndarray) -> np.ndarray:
    n = img.shape[0]
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
    return cv2.remap(img, xx + ux, yy + uy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def stylise(key: np.ndarray, kind: str) -> np.ndarray:
    """'stylization': cv2.stylization (flat colours, dark outlines); 'recolour': an
    edge-preserving filter with its hues rotated and saturation boosted (softer, no outlines)."""
    if kind == "stylization":
        return cv2.stylization(key, sigma_s=40, sigma_r=0.35)
    smooth = cv2.edgePreservingFilter(key, flags=cv2.RECURS_FILTER, sigma_s=40, sigma_r=0.3)
    hsv = cv2.cvtColor(smooth, cv2.COLOR_RGB2HSV).astype(np.int32)
    hsv[..., 0] = (hsv[..., 0] + 60) % 180
    hsv[..., 1] = np.clip(hsv[..., 1] * 1.4 + 20, 0, 255)
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)


def make_case(n: int, t: float = 1.0, image: str = "astronaut", style_kind: str = "stylization",
              temporal_model: str = "frame"):
    """(style, guides, exact warped style, exact NNF) for frame phase t at size n x n."""
    key = cv2.resize(getattr(data, image)(), (n, n), interpolation=cv2.INTER_AREA)
    style = stylise(key, style_kind)
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
    pos = np.dstack([xx * 255 / (n - 1), yy * 255 / (n - 1), np.full_like(xx, 128)]).astype(np.uint8)
    ux, uy = displacement(n, t)
    frame = warp(key, ux, uy)
    exact = warp(style, ux, uy)
    edge, pos_frame = edge_guide(key), warp(pos, ux, uy)
    if temporal_model == "frame":
        # the previous frame (phase t - 0.3) synthesised (with the other guides) and warped to this
        # frame by a flow 15% short of the true one, (fx, fy): x + f(x) + u_prev(x + f(x)) = x + u(x)
        px, py = displacement(n, t - 0.3)
        prev = warp(key, px, py)
        prev_out = rerender.synthesize(style, [(key, prev, 6.0), (edge, edge_guide(prev), 0.5),
                                               (pos, warp(pos, px, py), 2.0)], seed=1).image
        fx, fy = ux - px, uy - py
        for _ in range(3):  # fixed point of f = u - u_prev(x + f)
            fx, fy = ux - warp(px, fx, fy), uy - warp(py, fx, fy)
        temporal = warp(prev_out, 0.85 * fx, 0.85 * fy)
    else:  # "drift": misaligned by 15% of the whole displacement from the key frame
        temporal = warp(style, 0.85 * ux, 0.85 * uy)
    guides = [
        (key, frame, 6.0),
        (edge, edge_guide(frame), 0.5),
        (style, temporal, 0.5),
        (pos, pos_frame, 2.0),
    ]
    nnf = np.dstack([np.rint(xx + ux), np.rint(yy + uy)]).astype(np.int32)
    nnf[..., 0] = np.clip(nnf[..., 0], 0, n - 1)
    nnf[..., 1] = np.clip(nnf[..., 1], 0, n - 1)
    return style, guides, exact, nnf


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / max(mse, 1e-12)))


def advect_nnf(nnf: np.ndarray, ux0, uy0, ux1, uy1) -> np.ndarray:
    """Previous frame's NNF moved to the next frame: next(x) ~ prev(x + u1(x) - u0(.))."""
    n = nnf.shape[0]
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
    # frame_t(x) = key(x + u_t(x)); pixel x of the next frame shows what the previous frame
    # showed near x + (u1 - u0): take the previous NNF there.
    dx, dy = ux1 - ux0, uy1 - uy0
    mx = np.clip(np.rint(xx + dx), 0, n - 1).astype(np.intp)
    my = np.clip(np.rint(yy + dy), 0, n - 1).astype(np.intp)
    return np.ascontiguousarray(nnf[my, mx])


def timed(fn):
    c0, w0 = time.process_time(), time.perf_counter()
    out = fn()
    return out, time.process_time() - c0, time.perf_counter() - w0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeat", type=int, default=1, help="runs per setting (the best is reported)")
    ap.add_argument("--search-vote-iters", type=int, default=12)
    ap.add_argument("--patchmatch-iters", type=int, default=6)
    ap.add_argument("--image", default="astronaut", help="skimage.data image (astronaut, coffee, chelsea, ...)")
    ap.add_argument("--style", default="stylization", choices=["stylization", "recolour"])
    ap.add_argument("--temporal", default="frame", choices=["frame", "drift"], help="temporal guide model")
    ap.add_argument("--native", help="path of a compiled _native module to run instead of the installed one")
    args = ap.parse_args()
    if args.native:
        use_native_module(args.native)
    from rerender import _native

    simd = _native.simd() if hasattr(_native, "simd") else "build-time (-march)"
    params = dict(search_vote_iters=args.search_vote_iters, patchmatch_iters=args.patchmatch_iters,
                  patch_size=5, uniformity=3500.0)
    print(f"image {args.image}, style {args.style}, temporal {args.temporal}; SIMD {simd}; "
          "cpu = process CPU time, wall = elapsed")
    print(f"{'size':>5} {'thr':>3} {'cold cpu s':>10} {'cold wall s':>11} {'cold dB':>8}"
          f" {'warm cpu s':>10} {'warm wall s':>11} {'warm dB':>8} {'exact-nnf dB':>12}")
    for n in args.sizes:
        style, guides, exact, exact_nnf = make_case(n, 1.0, args.image, args.style, args.temporal)
        style2, guides2, exact2, _ = make_case(n, 1.3, args.image, args.style, args.temporal)
        ux0, uy0 = displacement(n, 1.0)
        ux1, uy1 = displacement(n, 1.3)
        # reference: what voting the exact NNF gives (the integer-NNF ceiling of this metric)
        ceil = rerender.synthesize(style, guides, init_nnf=exact_nnf, search_vote_iters=1, patchmatch_iters=0)
        for th in args.threads:
            best = None
            for _ in range(args.repeat):
                cold, cc, cw = timed(lambda: rerender.synthesize(style, guides, threads=th, **params))
                init = advect_nnf(cold.nnf, ux0, uy0, ux1, uy1)
                warm, wc, ww = timed(lambda: rerender.synthesize(style2, guides2, init_nnf=init, threads=th, **params))
                row = (cc, cw, psnr(cold.image, exact), wc, ww, psnr(warm.image, exact2))
                best = row if best is None or row[1] + row[4] < best[1] + best[4] else best
            cc, cw, cp, wc, ww, wp = best
            print(f"{n:>5} {th:>3} {cc:>10.2f} {cw:>11.2f} {cp:>8.2f} {wc:>10.2f} {ww:>11.2f} {wp:>8.2f}"
                  f" {psnr(ceil.image, exact):>12.2f}", flush=True)
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
