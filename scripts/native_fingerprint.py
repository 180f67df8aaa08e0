"""Fingerprints of the native core's outputs, to check that a change of the native code keeps
every CPU result byte-identical (refactors, build flags, SIMD paths).

    python scripts/native_fingerprint.py --out before.json                 # the installed module
    python scripts/native_fingerprint.py --module path/to/_native.so --out after.json
    python scripts/native_fingerprint.py --compare before.json after.json  # exit 1 on a difference

Cases: synthesis over several sizes, dtypes, channel counts, patch sizes, seeds, thread counts,
warm starts (with "no guess" entries), target masks, explicit levels and short schedules (one or
two search-vote iterations, early stops); warp, occlusion, histogram blend and min-error
combination on random data. Each output is hashed (sha256 of its bytes, dtype and shape).
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import sys

import numpy as np


def load_native(path: str | None):
    if path is None:
        from rerender import _native

        return _native
    spec = importlib.util.spec_from_file_location("_native", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def digest(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()[:24]


def smooth(rng: np.random.Generator, h: int, w: int, c: int, dtype) -> np.ndarray:
    """Random texture with structure at a few pixels' scale (bilinear upsampling of noise)."""
    coarse = rng.random((h // 4 + 2, w // 4 + 2, c)) * 255
    ys = np.linspace(0, coarse.shape[0] - 1.001, h)
    xs = np.linspace(0, coarse.shape[1] - 1.001, w)
    y0, x0 = ys.astype(int), xs.astype(int)
    fy, fx = (ys - y0)[:, None, None], (xs - x0)[None, :, None]
    img = ((1 - fy) * (1 - fx) * coarse[y0][:, x0] + (1 - fy) * fx * coarse[y0][:, x0 + 1]
           + fy * (1 - fx) * coarse[y0 + 1][:, x0] + fy * fx * coarse[y0 + 1][:, x0 + 1])
    return img.astype(dtype) if dtype == np.float32 else np.clip(img, 0, 255).astype(np.uint8)


def shifted(img: np.ndarray, dx: int, dy: int) -> np.ndarray:
    return np.roll(np.roll(img, dy, axis=0), dx, axis=1)


def synthesis_cases(native, rng: np.random.Generator) -> dict[str, str]:
    out: dict[str, str] = {}

    def run(name: str, style, guides, **kw) -> tuple:
        image, nnf, error = native.synthesize(style, guides, **kw)
        out[name] = digest(image, nnf, error)
        return image, nnf, error

    for n, dtype, cs, gc in [(48, np.uint8, 3, 3), (96, np.uint8, 3, 6), (96, np.float32, 1, 4), (130, np.uint8, 5, 3)]:
        style = smooth(rng, n, n + 7, cs, dtype)
        src = smooth(rng, n, n + 7, gc, dtype)
        tgt = shifted(src, 2, -1)[: n - 5, : n - 3].copy()
        pos_s = smooth(rng, n, n + 7, 2, np.float32)
        pos_t = shifted(pos_s, 2, -1)[: n - 5, : n - 3].copy()
        guides = [(src, tgt, 6.0), (pos_s, pos_t, 2.0)]
        for seed in (0, 7):
            for threads in (1, 2):
                tag = f"syn n{n} {np.dtype(dtype).name} c{cs} g{gc} seed{seed} t{threads}"
                _, nnf, _ = run(tag, style, guides, seed=seed, threads=threads)
        warm = nnf.copy()
        warm[::7, ::5] = -1  # "no guess" entries: random there
        run(f"syn n{n} warm", style, guides, init_nnf=warm, seed=3)
        run(f"syn n{n} warm levels2", style, guides, init_nnf=warm, pyramid_levels=2, seed=3)
        mask = np.zeros(tgt.shape[:2], np.uint8)
        mask[5:-9, 3:-20] = 2
        run(f"syn n{n} mask", style, guides, target_mask=mask, seed=1)
        run(f"syn n{n} mask warm", style, guides, target_mask=mask, init_nnf=warm)
        for svi, pmi in ((1, 1), (2, 0), (3, 2)):
            run(f"syn n{n} svi{svi} pmi{pmi}", style, guides, search_vote_iters=svi, patchmatch_iters=pmi)
        run(f"syn n{n} early stop", style, guides, stop_threshold=200.0)
        run(f"syn n{n} no stop", style, guides, stop_threshold=0.0, uniformity=0.0)
        for p in (3, 7):
            run(f"syn n{n} patch{p}", style, guides, patch_size=p, style_weight=2.5, uniformity=500.0)
    # large enough that PatchMatch and the vote run on several threads
    style = smooth(rng, 260, 256, 3, np.uint8)
    src = smooth(rng, 260, 256, 3, np.uint8)
    tgt = shifted(src, 3, 2)
    for threads in (1, 2, 3):
        run(f"syn 260 t{threads}", style, [(src, tgt, 6.0)], threads=threads, search_vote_iters=4,
            patchmatch_iters=3)
    _, nnf, _ = run("syn 260 cold", style, [(src, tgt, 6.0)], threads=2)
    run("syn 260 warm", style, [(src, shifted(src, 4, 2), 6.0)], init_nnf=nnf, threads=2)
    return out


def op_cases(native, rng: np.random.Generator) -> dict[str, str]:
    out: dict[str, str] = {}
    for dtype in (np.uint8, np.float32):
        for c in (1, 3, 4):
            img = smooth(rng, 61, 83, c, dtype)
            flow = (rng.standard_normal((61, 83, 2)) * 6).astype(np.float32)
            flow[:3] *= 40  # far outside the frame
            for mode in ("bilinear", "nearest"):
                out[f"warp {np.dtype(dtype).name} c{c} {mode}"] = digest(
                    *native.warp(img, flow, mode=mode, return_valid=True))
            back = -flow + (rng.standard_normal(flow.shape) * 0.7).astype(np.float32)
            out[f"occlusion c{c} {np.dtype(dtype).name}"] = digest(native.occlusion(flow, back))
            b = smooth(rng, 61, 83, c, dtype)
            ref = smooth(rng, 40, 30, c, dtype)
            wmap = rng.random((61, 83)).astype(np.float32)
            for name, weight in (("scalar", 0.3), ("map", wmap), ("one", 1.0), ("zero", 0.0)):
                out[f"blend {np.dtype(dtype).name} c{c} {name}"] = digest(native.histogram_blend(img, b, weight))
                out[f"blend {np.dtype(dtype).name} c{c} {name} ref"] = digest(
                    native.histogram_blend(img, b, weight, ref))
            ea, eb = rng.random((61, 83)).astype(np.float32), rng.random((61, 83)).astype(np.float32)
            out[f"combine {np.dtype(dtype).name} c{c}"] = digest(*native.min_error_combine(img, b, ea, eb))
    # larger inputs, so that differences in the last bit of any arithmetic show
    h, w = 300, 410
    flow = (rng.standard_normal((h, w, 2)) * 4).astype(np.float32)
    for dtype in (np.uint8, np.float32):
        img = (rng.random((h, w, 3)) * 255).astype(dtype)
        out[f"warp large {np.dtype(dtype).name}"] = digest(native.warp(img, flow))
        b = (rng.random((h, w, 3)) * 255).astype(dtype)
        wmap = rng.random((h, w)).astype(np.float32)
        out[f"blend large {np.dtype(dtype).name}"] = digest(native.histogram_blend(img, b, wmap))
        out[f"blend large {np.dtype(dtype).name} ref"] = digest(native.histogram_blend(img, b, wmap, b[::2, ::3]))
    for noise in (0.05, 0.2, 1.0):  # backward flows near the consistency threshold
        back = -flow + (rng.standard_normal(flow.shape) * noise).astype(np.float32)
        for alpha1, alpha2 in ((0.01, 0.5), (0.05, 0.05)):
            out[f"occlusion large {noise} {alpha1} {alpha2}"] = digest(native.occlusion(flow, back, alpha1, alpha2))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--module", help="path of a compiled _native module (default: the installed one)")
    ap.add_argument("--out", help="write the fingerprints here (JSON)")
    ap.add_argument("--compare", nargs=2, metavar=("A", "B"), help="compare two fingerprint files")
    args = ap.parse_args()
    if args.compare:
        a, b = (json.load(open(p)) for p in args.compare)
        differ = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
        for k in differ:
            print(f"DIFFERS {k}: {a.get(k)} vs {b.get(k)}")
        print(f"{len(a.keys() & b.keys()) - len([k for k in differ if k in a and k in b])} identical, "
              f"{len(differ)} different")
        return 1 if differ else 0
    native = load_native(args.module)
    rng = np.random.default_rng(20240601)
    prints = {**synthesis_cases(native, rng), **op_cases(native, rng)}
    text = json.dumps(prints, indent=1, sort_keys=True)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    else:
        print(text)
    print(f"{len(prints)} fingerprints", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
