"""The OpenFX plugin's cost over the CLI, through the project's test host (tests/ofx_host).

A synthetic float shot (a texture panning under a moving light, N frames of W x H) with keys at the
first and last frame is rendered by `rerender propagate` on EXR plates, and through the plugin:
the first frame (fetch + digest + EXR plates + the worker job), then every frame as one sequence
render (each reads the finished result; later frames re-check only their own frame and the keys),
then single interactive renders (each reads and digests the whole shot again). Prints seconds.

    python benchmarks/bench_ofx.py --frames 24 --size 320x180
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"


def shot(n: int, w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    tex = rng.uniform(0.02, 1.0, (h, w + 2 * n, 3)).astype(np.float32)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    plates = []
    for i in range(n):
        light = 0.6 + 0.4 * np.exp(-((xx - w * i / n) ** 2 + (yy - h / 2) ** 2) / (0.1 * w * w))
        plates.append((tex[:, 2 * i: 2 * i + w] * light[..., None]).astype(np.float32))
    plates = np.stack(plates)
    keys = plates.copy()
    keys[0] = plates[0][:, :, ::-1] ** 0.8
    keys[-1] = plates[-1][:, :, ::-1] ** 0.8
    return plates, keys


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--size", default="320x180", help="WxH")
    ap.add_argument("--bundle", default=None, help="Rerender.ofx.bundle (default: rerender.ofx.bundle_path())")
    args = ap.parse_args()
    w, h = map(int, args.size.split("x"))
    n, first = args.frames, 1001
    import rerender.ofx as rofx
    from rerender.media.images import write_image

    bundle = args.bundle or rofx.bundle_path()
    if bundle is None:
        sys.exit("no OFX bundle built")
    plates, keys = shot(n, w, h)
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        (t / "plates").mkdir()
        (t / "keys").mkdir()
        for i, p in enumerate(plates):
            write_image(t / "plates" / f"shot.{first + i}.exr", p)
        for i in (0, n - 1):
            write_image(t / "keys" / f"shot.{first + i}.exr", keys[i])
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "rerender", "--progress", "quiet", "propagate",
                        str(t / "plates" / "shot.%04d.exr"), "--keys", str(t / "keys"), "-o",
                        str(t / "cli" / "out.####.exr")], check=True)
        cli = time.perf_counter() - start

        np.save(t / "src.npy", plates)
        np.save(t / "keys.npy", keys)
        frames = list(range(first, first + n))
        spec = {"bundle": str(bundle),
                "env": {"RERENDER_OFX_PYTHON": sys.executable, "RERENDER_OFX_CACHE": str(t / "cache")},
                "clips": {"Source": {"npy": str(t / "src.npy"), "first": first, "fps": 24.0},
                          "Keys": {"npy": str(t / "keys.npy"), "first": first, "fps": 24.0}},
                "params": {"keyFrames": f"{first},{first + n - 1}"},
                "steps": [{"render": [first], "save": False},
                          {"render": frames, "sequence": True, "save": False},
                          {"render": [first + n // 2, first + n // 3], "save": False}]}
        (t / "spec.json").write_text(json.dumps(spec))
        env = dict(os.environ, PYTHONPATH=str(TESTS))
        subprocess.run([sys.executable, "-m", "ofx_host.run", str(t / "spec.json"), str(t / "out")], check=True,
                       env=env, cwd=str(TESTS))
        result = json.loads((t / "out" / "result.json").read_text())
        steps = result["steps"]
        assert all(s == 0 for st in steps for k, s in st["statuses"].items() if k not in ("begin", "end")), steps
    print(f"shot: {n} frames of {w}x{h} float RGB, keys at the first and last frame")
    print(f"CLI `rerender propagate` on EXR plates:           {cli:7.2f} s")
    print(f"plugin, first frame (fetch, digest, plates, job): {steps[0]['seconds']:7.2f} s")
    print(f"plugin, all {n} frames as one sequence render:    {steps[1]['seconds']:7.2f} s "
          f"({steps[1]['seconds'] / n * 1000:.0f} ms per frame)")
    print(f"plugin, 2 interactive renders (whole-shot digest): {steps[2]['seconds']:7.2f} s")


if __name__ == "__main__":
    main()
